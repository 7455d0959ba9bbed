"""`gridsentinel worker`: run the Faust app in the foreground, supervised.

Faust crashes its worker on some broker errors instead of retrying (a failed offset commit while
the group rejoins after a Kafka restart is one; worker/app.py now tolerates that one). Nothing is lost
when that happens - offsets are committed only after the work is done - but the stages would stay
down. So the command runs the app in a child process and restarts it with backoff when it exits on
its own. Signals are forwarded, and the
child dies with its supervisor (PR_SET_PDEATHSIG), so `kill -9` of the worker behaves like a crash.
"""

from __future__ import annotations

import argparse
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time

from gridsentinel.settings import Settings
from gridsentinel.worker.app import WorkerOptions, create_app

log = logging.getLogger(__name__)
CHILD_ENV = "GS_WORKER_CHILD"
PR_SET_PDEATHSIG = 1


def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    if os.environ.get(CHILD_ENV) == "1" or args.no_supervise:
        return _run_app(settings, args)
    return supervise([sys.executable, "-m", "gridsentinel.cli", *sys.argv[1:]])


def _run_app(settings: Settings, args: argparse.Namespace) -> int:
    options = WorkerOptions(app_id=args.app_id, influx_bucket=args.bucket, stats_file=args.stats_file,
                            stages=tuple(args.stages))
    app = create_app(settings, options)
    worker = app.Worker(loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0


def _die_with_parent() -> None:
    libc = ctypes.CDLL("libc.so.6", use_errno=True)
    libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


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
        child = subprocess.Popen(argv, env={**os.environ, CHILD_ENV: "1"}, preexec_fn=_die_with_parent)
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
