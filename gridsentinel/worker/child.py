"""The supervised child of `gridsentinel worker`: ``python -m gridsentinel.worker.child <options>``.

Runs the Faust app in this process (as ``gridsentinel worker --no-supervise`` does); the supervisor in
worker/command.py passes the options along (``child_arguments``) and restarts this process when it exits.
"""

from __future__ import annotations

import argparse
import logging
import sys

from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings
from gridsentinel.worker.command import add_arguments, run_app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="gridsentinel worker (child)")
    add_arguments(parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not args.verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # migration chatter is not news
    try:
        return run_app(Settings(), args)
    except GridSentinelError as exc:
        print(f"gridsentinel: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
