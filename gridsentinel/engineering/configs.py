"""Config operations shared by the CLI and the API: validate, apply, history, diff, rollback, per kind.

A config kind (:class:`KindSpec`) is a file of the config folder with its validator: ``detectors`` here
(:data:`DETECTORS`), the others (cameras, categories, routing, receivers, calendar) in
``gridsentinel/liveconfig/kinds.py``. ``apply_text`` validates (every problem on one line: file, key path,
value, expectation), stores a new version of that kind with its author, time and diff, and publishes it to
``gs.config`` under the kind's key; running workers with the ``live-config`` stage switch to it. Applying
exactly the text that is live already stores nothing and re-publishes it (idempotent). A rollback applies
an old version's text as a new version.
"""

from __future__ import annotations

import getpass
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gridsentinel.core.config import parse_yaml, read_text
from gridsentinel.detectors.config import DetectorConfig, validate_data
from gridsentinel.engineering.publish import publish_version
from gridsentinel.engineering.versions import ConfigVersion, VersionStore
from gridsentinel.errors import ConfigError
from gridsentinel.settings import Settings

Publisher = Callable[[Settings, ConfigVersion], None]
# The live text of another kind (by name): what a validator checks cross-file references against.
Sibling = Callable[[str], str]
Validate = Callable[[str, str, Sibling], tuple[Any | None, list[str]]]


@dataclass(frozen=True, slots=True)
class KindSpec:
    """One config kind: its name (the ``gs.config`` key and ``--kind``), its file in the config folder,
    its validator ``validate(text, where, sibling) -> (object or None, problems)`` and what its apply
    changes in running processes (one sentence, for ``--help`` and the docs)."""

    name: str
    file_name: str
    validate: Validate
    what: str
    affects: str = ""


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


DETECTORS = KindSpec("detectors", "detectors.yaml", lambda text, where, _sibling: validate_text(text, where),
                     "detector config",
                     "the detect stage's engine (engine.reconfigure): detectors whose settings changed "
                     "start fresh, the others keep their state")


def _publish_live(settings: Settings, version: ConfigVersion) -> None:
    publish_version(settings, version, version.kind)  # the key is the kind: "detectors", "cameras", ...


# Not a config kind (no versions, not applied live), but validators cross-check against it: the grid's file.
GRID_SIBLING = "grid"


def sibling_reader(settings: Settings, store: VersionStore, kinds: dict[str, KindSpec]) -> Sibling:
    """The live text of another kind: its latest stored version, else its file; ``grid``: the grid's
    GeoJSON (``<config_dir>/grid.geojson``, "" when there is none)."""
    def read(name: str) -> str:
        if name == GRID_SIBLING:
            path = settings.config_dir / "grid.geojson"
            return path.read_text(encoding="utf-8") if path.exists() else ""
        return live_text(settings, store.of_kind(name), kinds[name])
    return read


def validate_kind(settings: Settings, store: VersionStore, text: str, where: str,
                  kind: KindSpec = DETECTORS, kinds: dict[str, KindSpec] | None = None,
                  ) -> tuple[Any | None, list[str]]:
    """Validate ``text`` as ``kind``, cross-checked against the live versions of the other ``kinds``."""
    return kind.validate(text, where, sibling_reader(settings, store, kinds or {kind.name: kind}))


def apply_text(settings: Settings, store: VersionStore, text: str, *, author: str, where: str = "config",
               note: str = "", now: float | None = None, publisher: Publisher | None | str = "live",
               kind: KindSpec = DETECTORS, kinds: dict[str, KindSpec] | None = None,
               ) -> tuple[ConfigVersion, bool]:
    """Validate, store (unless it is the latest text already) and publish. Returns (version, created).

    ``store`` is the store of ``kind`` (``VersionStore(..., kind=kind.name)``). Raises ``ConfigError``
    listing every problem when the text is invalid; nothing is stored then.
    """
    if store.kind != kind.name:
        raise ValueError(f"store of kind {store.kind!r} given for a {kind.name!r} config")
    config, problems = validate_kind(settings, store, text, where, kind, kinds)
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
               publisher: Publisher | None | str = "live", kind: KindSpec = DETECTORS,
               kinds: dict[str, KindSpec] | None = None) -> tuple[ConfigVersion, bool]:
    path = path or settings.config_dir / kind.file_name
    text = read_text(path)
    return apply_text(settings, store, text, author=author, where=str(path), publisher=publisher, kind=kind,
                      kinds=kinds)


def rollback(settings: Settings, store: VersionStore, number: int, *, author: str,
             publisher: Publisher | None | str = "live", kind: KindSpec = DETECTORS,
             kinds: dict[str, KindSpec] | None = None) -> tuple[ConfigVersion, bool]:
    old = store.get(number)
    return apply_text(settings, store, old.yaml, author=author, where=f"{kind.name} version {number}",
                      note=f"rollback to v{number}", publisher=publisher, kind=kind, kinds=kinds)


def current(settings: Settings, store: VersionStore, kind: KindSpec = DETECTORS) -> dict[str, Any]:
    """The live config: the latest stored version, or the config file when none was applied yet."""
    latest = store.latest()
    if latest is not None:
        return {"source": "store", **latest.to_dict()}
    path = settings.config_dir / kind.file_name
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    try:
        parsed = parse_yaml(text, str(path)) if text else {}
    except ConfigError:
        parsed = {}
    version = str(parsed.get("version")) if isinstance(parsed, dict) and "version" in parsed else None
    return {"source": str(path), "number": None, "label": version, "config_version": version,
            "author": None, "created_at": None, "yaml": text, "diff": "", "note": "", "kind": kind.name}


def live_text(settings: Settings, store: VersionStore, kind: KindSpec = DETECTORS) -> str:
    return str(current(settings, store, kind)["yaml"])
