"""Config versions: every applied config, who applied it, when, and what changed.

A plain SQLite file (``<run_dir>/config-versions.db`` by default) holds every config kind (``detectors``,
``cameras``, ``categories``, ... see liveconfig/kinds.py); a :class:`VersionStore` reads and writes one
kind. Version numbers are 1, 2, 3 … per kind in order of application; each row keeps the full YAML and a
unified diff against the previous version of that kind. A rollback is an apply of an old version's YAML,
so history only ever grows. A file written before kinds existed (no ``kind`` column) is migrated on
open: its versions become the ``detectors`` kind's, numbers unchanged.

>>> store = VersionStore(":memory:")
>>> v1 = store.add("version: a\\nx: 1\\n", author="li", at=100.0)
>>> v2 = store.add("version: b\\nx: 2\\n", author="wang", at=200.0)
>>> (v2.number, v2.author, v2.config_version)
(2, 'wang', 'b')
>>> print(v2.diff)  # doctest: +NORMALIZE_WHITESPACE
--- v1
+++ v2
@@ -1,2 +1,2 @@
-version: a
-x: 1
+version: b
+x: 2
>>> [v.number for v in store.history()]
[2, 1]
>>> routing = VersionStore(store, kind="routing")  # the same file, another kind: its own numbers
>>> routing.add("version: r1\\n", author="li", at=300.0).number, routing.latest().kind
(1, 'routing')
"""

from __future__ import annotations

import difflib
import sqlite3
import threading
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import yaml

from gridsentinel.errors import GridSentinelError

DEFAULT_KIND = "detectors"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS config_versions (
    kind TEXT NOT NULL DEFAULT 'detectors',
    number INTEGER NOT NULL,
    config_version TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at REAL NOT NULL,
    yaml TEXT NOT NULL,
    diff TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (kind, number)
)
"""
_COLUMNS = "number, config_version, author, created_at, yaml, diff, note"


def _migrate(db: sqlite3.Connection) -> None:
    """Create the table, or move a pre-kinds table (``number`` alone the key) to the per-kind one."""
    db.execute("BEGIN IMMEDIATE")  # two processes opening an old file migrate it once
    try:
        columns = [row[1] for row in db.execute("PRAGMA table_info(config_versions)")]
        if columns and "kind" not in columns:
            db.execute("ALTER TABLE config_versions RENAME TO config_versions_before_kinds")
            db.execute(_SCHEMA)
            db.execute(f"INSERT INTO config_versions (kind, {_COLUMNS}) SELECT 'detectors', {_COLUMNS} "
                       "FROM config_versions_before_kinds")
            db.execute("DROP TABLE config_versions_before_kinds")
        else:
            db.execute(_SCHEMA)
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


class VersionNotFound(GridSentinelError):
    """No stored config version with that number."""


@dataclass(frozen=True, slots=True)
class ConfigVersion:
    number: int  # 1, 2, 3 … in order of application
    config_version: str  # the YAML's own ``version`` field (stamped on detections)
    author: str
    created_at: float  # Unix seconds
    yaml: str
    diff: str  # unified diff against the previous version ("" for the first)
    note: str = ""
    kind: str = DEFAULT_KIND  # which config file: detectors, cameras, categories, ...

    @property
    def label(self) -> str:
        """What the engine gets as its version string: ``<config version>@v<number>`` (``v<number>`` for a
        file without a ``version`` field, such as calendar.yaml)."""
        return f"{self.config_version}@v{self.number}" if self.config_version else f"v{self.number}"

    def to_dict(self, *, with_yaml: bool = True) -> dict[str, Any]:
        data = asdict(self)
        data["label"] = self.label
        if not with_yaml:
            data.pop("yaml")
        return data


def unified_diff(old: str, new: str, old_name: str, new_name: str) -> str:
    """A readable unified diff (3 lines of context), "" when the texts are equal."""
    lines = difflib.unified_diff(old.splitlines(), new.splitlines(), fromfile=old_name, tofile=new_name,
                                 lineterm="")
    return "\n".join(lines)


def config_version_of(text: str) -> str:
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return ""
    return str(data.get("version", "")) if isinstance(data, dict) else ""


class VersionStore:
    """The versions of one config ``kind`` in a SQLite file (``:memory:`` for tests). Thread-safe for one
    process. ``path`` may be another store: the same connection, another kind (``close`` then leaves the
    connection to its owner)."""

    path: str
    _lock: threading.Lock
    _db: sqlite3.Connection
    _owner: bool

    def __init__(self, path: str | Path | VersionStore, *, kind: str = DEFAULT_KIND) -> None:
        self.kind = kind
        if isinstance(path, VersionStore):
            self.path, self._lock, self._db, self._owner = path.path, path._lock, path._db, False
            return
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.Lock()
        self._owner = True
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 10000")
        _migrate(self._db)

    @classmethod
    def default(cls, run_dir: Path, kind: str = DEFAULT_KIND) -> VersionStore:
        return cls(run_dir / "config-versions.db", kind=kind)

    def of_kind(self, kind: str) -> VersionStore:
        """The store of another kind in the same file (shares this store's connection)."""
        return VersionStore(self, kind=kind)

    def close(self) -> None:
        if self._owner:
            self._db.close()

    def __enter__(self) -> VersionStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(self, text: str, *, author: str, at: float, note: str = "") -> ConfigVersion:
        """Store ``text`` as the next version (diffed against the latest one)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")  # two appliers never get the same number
            try:
                row = self._db.execute(
                    "SELECT number, yaml FROM config_versions WHERE kind = ? ORDER BY number DESC LIMIT 1",
                    (self.kind,)).fetchone()
                number = (row[0] if row else 0) + 1
                diff = unified_diff(row[1], text, f"v{row[0]}", f"v{number}") if row else ""
                version = ConfigVersion(number, config_version_of(text), author, at, text, diff, note,
                                        self.kind)
                self._db.execute(
                    f"INSERT INTO config_versions (kind, {_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (self.kind, version.number, version.config_version, author, at, text, diff, note))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return version

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[ConfigVersion]:
        with self._lock:
            rows = self._db.execute(
                f"SELECT {_COLUMNS}, kind FROM config_versions WHERE kind = ? " + sql,
                (self.kind, *args)).fetchall()
        return [ConfigVersion(*r) for r in rows]

    def get(self, number: int) -> ConfigVersion:
        found = self._rows("AND number = ?", (number,))
        if not found:
            known = ", ".join(str(v.number) for v in reversed(self.history(limit=20))) or "none yet"
            raise VersionNotFound(f"{self.kind} config version {number} not found (stored: {known})")
        return found[0]

    def latest(self) -> ConfigVersion | None:
        found = self._rows("ORDER BY number DESC LIMIT 1")
        return found[0] if found else None

    def history(self, limit: int = 100) -> list[ConfigVersion]:
        """Newest first."""
        return self._rows("ORDER BY number DESC LIMIT ?", (limit,))

    def diff(self, a: int, b: int) -> str:
        """Unified diff from version ``a`` to version ``b``."""
        va, vb = self.get(a), self.get(b)
        return unified_diff(va.yaml, vb.yaml, f"v{a}", f"v{b}")
