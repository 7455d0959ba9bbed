"""The supervised child of `gridsentinel worker`: ``python -m gridsentinel.worker.child <options>``.

Runs the Faust app in this process (as ``gridsentinel worker --no-supervise`` does); the supervisor in
worker/command.py passes the options along (``child_arguments``) and restarts this process when it exits.
"""

from __future__ import annotations

import argparse
import sys

from gridsentinel.entry import configure_logging, run_command
from gridsentinel.settings import Settings
from gridsentinel.worker.command import add_arguments, run_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridsentinel worker (child)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    settings = Settings()
    configure_logging(args.verbose, settings.log_format)
    return run_command(lambda: run_app(settings, args))


if __name__ == "__main__":
    sys.exit(main())
