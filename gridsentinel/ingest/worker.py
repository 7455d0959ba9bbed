"""`gridsentinel worker`: run the Faust app in the foreground."""

from __future__ import annotations

import argparse

from ..settings import Settings
from .app import WorkerOptions, create_app


def run_worker(settings: Settings, args: argparse.Namespace) -> int:
    options = WorkerOptions(app_id=args.app_id, influx_bucket=args.bucket, stats_file=args.stats_file,
                            stages=tuple(args.stages))
    app = create_app(settings, options)
    worker = app.Worker(loglevel=args.loglevel, quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
    return 0
