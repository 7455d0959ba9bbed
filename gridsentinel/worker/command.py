"""`gridsentinel worker`: run the Faust app in the foreground, supervised.

Faust crashes its worker on some broker errors instead of retrying (a failed offset commit while
the group rejoins after a Kafka restart is one; streams/faust_compat.py now tolerates that one). Nothing is
lost when that happens - offsets are committed only after the work is done - but the stages would stay
down. So the command runs the app in a child process (``python -m gridsentinel.worker.child``) and restarts
it with backoff when it exits on its own. Signals are forwarded, and the child dies with its supervisor
(PR_SET_PDEATHSIG), so `kill -9` of the worker behaves like a crash.
"""

from __future__ import annotations

import argparse
import logging
import signal
import subprocess
import sys
import time

from gridsentinel.children import die_with_parent
from gridsentinel.observability import MetricsPortInUse, new_registry, port_free, serve_metrics
from gridsentinel.settings import Settings
from gridsentinel.worker.metrics import SupervisorMetrics

log = logging.getLogger(__name__)
PORT_SETTING = "GS_WORKER_METRICS_PORT"


def metrics_port(settings: Settings, args: argparse.Namespace) -> int:
    """The stages' /metrics port: ``--metrics-port``, else GS_WORKER_METRICS_PORT (0: off)."""
    given = getattr(args, "metrics_port", None)
    return settings.worker_metrics_port if given is None else int(given)


def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    port = metrics_port(settings, args)
    args.metrics_port = port
    if args.no_supervise:
        return run_app(settings, args)
    metrics = None
    if port:
        # the child's port is checked here, before it starts: taken, it would fail at every restart
        if not port_free(port):
            raise MetricsPortInUse(
                f"port {port} for the worker's /metrics is already in use (another worker on this machine?); "
                f"give each worker its own with --metrics-port N or {PORT_SETTING}=N (the supervisor takes "
                "N + 1), or 0 to turn /metrics off")
        registry = new_registry()
        metrics = SupervisorMetrics(registry)
        serve_metrics(registry, port + 1, what="worker supervisor", setting=PORT_SETTING)
    return supervise([sys.executable, "-m", "gridsentinel.worker.child", *child_arguments(args)],
                     metrics=metrics, check_port=port)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """What the child entry takes: the app's options of `gridsentinel worker` (all given explicitly)."""
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--bucket", default=None)
    parser.add_argument("--loglevel", required=True)
    parser.add_argument("--stats-file", default=None)
    parser.add_argument("--stages", nargs="+", required=True)
    parser.add_argument("--metrics-port", type=int, default=0)
    parser.add_argument("-v", "--verbose", action="store_true")


def child_arguments(args: argparse.Namespace) -> list[str]:
    """The child entry's arguments for the parsed `gridsentinel worker` arguments.

    >>> child_arguments(argparse.Namespace(app_id="gs", bucket=None, loglevel="warning", stats_file=None,
    ...                                    stages=["ingest", "detect"], verbose=True, metrics_port=19102))
    ['--app-id', 'gs', '--loglevel', 'warning', '--metrics-port', '19102', '--verbose', '--stages', 'ingest', 'detect']
    """
    argv = ["--app-id", args.app_id, "--loglevel", args.loglevel,
            "--metrics-port", str(getattr(args, "metrics_port", 0) or 0)]
    if args.bucket is not None:
        argv += ["--bucket", args.bucket]
    if args.stats_file is not None:
        argv += ["--stats-file", args.stats_file]
    if getattr(args, "verbose", False):
        argv.append("--verbose")
    return [*argv, "--stages", *args.stages]


def run_app(settings: Settings, args: argparse.Namespace) -> int:
    """Build the app from the stages asked for and run it here until it stops."""
    from gridsentinel.streams.context import WorkerOptions
    from gridsentinel.worker.app import create_app
    from gridsentinel.worker.stages import app_id_for, build_stages

    options = WorkerOptions(app_id=app_id_for(args.app_id, args.stages), influx_bucket=args.bucket,
                            stats_file=args.stats_file)
    port = getattr(args, "metrics_port", 0) or 0
    registry = new_registry() if port else None
    if registry is not None:  # before the app starts: a port in use is a clear error, not a half-started worker
        serve_metrics(registry, port, what="worker", setting=PORT_SETTING)
    app = create_app(settings, options, build_stages(settings, options, args.stages, follow_registry=True),
                     registry)
    json_logs = settings.log_format == "json"
    # Faust replaces the root logger's handlers unless told not to: JSON lines stay JSON lines
    worker = app.Worker(loglevel=args.loglevel, quiet=True, redirect_stdouts=False,
                        override_logging=not json_logs)
    # No terminal spinner (a supervised child has no terminal to spin on). Faust's spinner also sets the
    # root logger to DEBUG for good, so every debug call of aiokafka and Faust (one per record produced)
    # built a log record that the handlers then dropped: 5-7 % of the cases worker's CPU (issue 15).
    worker.spinner = None
    if json_logs:
        logging.getLogger().setLevel(args.loglevel.upper())
    worker.execute_from_commandline()
    return 0


def supervise(argv: list[str], *, max_backoff_s: float = 30.0, stable_after_s: float = 60.0,
              metrics: SupervisorMetrics | None = None, check_port: int = 0) -> int:
    """Run ``argv`` as a child; restart it when it exits by itself; forward SIGTERM/SIGINT. ``metrics``
    counts restarts; ``check_port``: the child's /metrics port, checked free before each restart (a
    port taken meanwhile ends the supervisor with a clear error instead of a crash loop)."""
    stopping = False
    child: subprocess.Popen[bytes] | None = None

    def forward(signum: int, _frame: object) -> None:
        nonlocal stopping
        stopping = True
        if child is not None and child.poll() is None:
            child.send_signal(signum)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)
    backoff = 1.0
    while True:
        started = time.monotonic()
        child = subprocess.Popen(argv, preexec_fn=die_with_parent())
        if metrics is not None:
            metrics.started()
        code = child.wait()
        if metrics is not None:
            metrics.exited(code, restarting=not stopping)
        if stopping:
            return 0 if code in (0, -signal.SIGTERM, -signal.SIGINT) else code
        if time.monotonic() - started > stable_after_s:
            backoff = 1.0
        print(f"gridsentinel worker: the stream worker exited with {code}; restarting in {backoff:.0f}s",
              file=sys.stderr, flush=True)
        deadline = time.monotonic() + backoff
        while time.monotonic() < deadline and not stopping:
            time.sleep(0.1)
        if stopping:
            return 0
        if check_port and not port_free(check_port):
            raise MetricsPortInUse(f"port {check_port} for the worker's /metrics was taken while the stream worker "
                                   f"was down; not restarting it. Free the port, or give this worker another with "
                                   f"--metrics-port N or {PORT_SETTING}=N")
        backoff = min(max_backoff_s, backoff * 2)
