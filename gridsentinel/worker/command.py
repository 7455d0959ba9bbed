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
from gridsentinel.settings import Settings

log = logging.getLogger(__name__)


def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    if args.no_supervise:
        return run_app(settings, args)
    return supervise([sys.executable, "-m", "gridsentinel.worker.child", *child_arguments(args)])


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """What the child entry takes: the app's options of `gridsentinel worker` (all given explicitly)."""
    parser.add_argument("--app-id", required=True)
    parser.add_argument("--bucket", default=None)
    parser.add_argument("--loglevel", required=True)
    parser.add_argument("--stats-file", default=None)
    parser.add_argument("--stages", nargs="+", required=True)
    parser.add_argument("-v", "--verbose", action="store_true")


def child_arguments(args: argparse.Namespace) -> list[str]:
    """The child entry's arguments for the parsed `gridsentinel worker` arguments.

    >>> child_arguments(argparse.Namespace(app_id="gs", bucket=None, loglevel="warning", stats_file="s.json",
    ...                                    stages=["ingest", "detect"], verbose=True))
    ['--app-id', 'gs', '--loglevel', 'warning', '--stats-file', 's.json', '--verbose', '--stages', 'ingest', 'detect']
    """
    argv = ["--app-id", args.app_id, "--loglevel", args.loglevel]
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
    from gridsentinel.worker.stages import build_stages

    options = WorkerOptions(app_id=args.app_id, influx_bucket=args.bucket, stats_file=args.stats_file)
    app = create_app(settings, options, build_stages(settings, options, args.stages, follow_registry=True))
    worker = app.Worker(loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


def supervise(argv: list[str], *, max_backoff_s: float = 30.0, stable_after_s: float = 60.0) -> int:
    """Run ``argv`` as a child; restart it when it exits by itself; forward SIGTERM/SIGINT."""
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
        code = child.wait()
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
        backoff = min(max_backoff_s, backoff * 2)
