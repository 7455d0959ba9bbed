"""Config operations shared by the CLI and the API: validate, apply, history, diff, rollback.

``apply_text`` validates (every problem on one line: file, key path, value, expectation), stores a new
version with its author, time and diff, and publishes it to ``gs.config``; running workers with the
``live-config`` stage switch to it. Applying exactly the text that is live already stores nothing and
re-publishes it (idempotent). A rollback applies an old version's text as a new version.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from gridsentinel.core.config import parse_yaml, read_text
from gridsentinel.detectors.config import DetectorConfig, validate_data
from gridsentinel.engineering.publish import LIVE_KEY, publish_version
from gridsentinel.engineering.versions import ConfigVersion, VersionStore
from gridsentinel.errors import ConfigError
from gridsentinel.settings import Settings

Publisher = Callable[[Settings, ConfigVersion], None]


def default_author() -> str:
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def validate_text(text: str, where: str) -> tuple[DetectorConfig | None, list[str]]:
    """Parse and validate detector-config YAML; problems as readable lines."""
    try:
        data = parse_yaml(text, where)
    except ConfigError as exc:
        return None, [str(exc)]
    if not isinstance(data, dict):
        return None, [f"{where}: (top level): expected a mapping with version and kinds"]
    return validate_data(data, where)


def _publish_live(settings: Settings, version: ConfigVersion) -> None:
    publish_version(settings, version, LIVE_KEY)


def apply_text(settings: Settings, store: VersionStore, text: str, *, author: str, where: str = "config",
               note: str = "", now: float | None = None,
               publisher: Publisher | None | str = "live") -> tuple[ConfigVersion, bool]:
    """Validate, store (unless it is the latest text already) and publish. Returns (version, created).

    Raises ``ConfigError`` listing every problem when the text is invalid; nothing is stored then.
    """
    config, problems = validate_text(text, where)
    if config is None:
        raise ConfigError("\n".join(problems))
    latest = store.latest()
    if latest is not None and latest.yaml == text:
        version, created = latest, False
    else:
        version = store.add(text, author=author, at=time.time() if now is None else now, note=note)
        created = True
    if publisher == "live":
        _publish_live(settings, version)
    elif callable(publisher):
        publisher(settings, version)
    return version, created


def apply_file(settings: Settings, store: VersionStore, path: Path | None, *, author: str,
               publisher: Publisher | None | str = "live") -> tuple[ConfigVersion, bool]:
    path = path or settings.config_dir / "detectors.yaml"
    text = read_text(path)
    return apply_text(settings, store, text, author=author, where=str(path), publisher=publisher)


def rollback(settings: Settings, store: VersionStore, number: int, *, author: str,
             publisher: Publisher | None | str = "live") -> tuple[ConfigVersion, bool]:
    old = store.get(number)
    return apply_text(settings, store, old.yaml, author=author, where=f"version {number}",
                      note=f"rollback to v{number}", publisher=publisher)


def current(settings: Settings, store: VersionStore) -> dict[str, Any]:
    """The live config: the latest stored version, or the config file when none was applied yet."""
    latest = store.latest()
    if latest is not None:
        return {"source": "store", **latest.to_dict()}
    path = settings.config_dir / "detectors.yaml"
    text = path.read_text(encoding="utf-8")
    config, _ = validate_text(text, str(path))
    return {"source": str(path), "number": None, "label": config.version if config else None,
            "config_version": config.version if config else None, "author": None, "created_at": None,
            "yaml": text, "diff": "", "note": ""}


def live_text(settings: Settings, store: VersionStore) -> str:
    return str(current(settings, store)["yaml"])
