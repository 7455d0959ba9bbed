"""What every ``gridsentinel`` entry point does around its command: logging, and errors that say what to do
as exit status 2 instead of a traceback (the CLI, and the worker's supervised child, which is started
without going through the CLI).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable

from gridsentinel.errors import GridSentinelError


def configure_logging(verbose: bool, fmt: str = "text") -> None:
    """Human lines by default; one JSON object a line with ``fmt`` ``json`` (``--log-format`` or the
    settings' ``GS_LOG_FORMAT``)."""
    if fmt == "json":
        from gridsentinel.observability import json_formatter

        handler = logging.StreamHandler()
        handler.setFormatter(json_formatter())
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, handlers=[handler], force=True)
    else:
        logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("alembic").setLevel(logging.WARNING)  # migration chatter is not news


def run_command(command: Callable[[], int]) -> int:
    """Run ``command``; a GridSentinelError is printed as one line (status 2), Ctrl-C is status 130."""
    try:
        return command()
    except GridSentinelError as exc:
        print(f"gridsentinel: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
