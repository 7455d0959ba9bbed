"""Detector config versions: every applied config, who applied it, when, and what changed.

A plain SQLite file (``<run_dir>/config-versions.db`` by default). Version numbers are 1, 2, 3 … in
order of application; each row keeps the full YAML and a unified diff against the previous version.
A rollback is an apply of an old version's YAML, so history only ever grows.

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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS config_versions (
    number INTEGER PRIMARY KEY,
    config_version TEXT NOT NULL,
    author TEXT NOT NULL,
    created_at REAL NOT NULL,
    yaml TEXT NOT NULL,
    diff TEXT NOT NULL,
    note TEXT NOT NULL DEFAULT ''
)
"""


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

    @property
    def label(self) -> str:
        """What the engine gets as its version string: ``<config version>@v<number>``."""
        return f"{self.config_version}@v{self.number}"

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
    """Config versions in one SQLite file (``:memory:`` for tests). Thread-safe for one process."""

    def __init__(self, path: str | Path) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.path = str(path)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA busy_timeout = 10000")
        self._db.execute(_SCHEMA)

    @classmethod
    def default(cls, run_dir: Path) -> VersionStore:
        return cls(run_dir / "config-versions.db")

    def close(self) -> None:
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
                    "SELECT number, yaml FROM config_versions ORDER BY number DESC LIMIT 1").fetchone()
                number = (row[0] if row else 0) + 1
                diff = unified_diff(row[1], text, f"v{row[0]}", f"v{number}") if row else ""
                version = ConfigVersion(number, config_version_of(text), author, at, text, diff, note)
                self._db.execute(
                    "INSERT INTO config_versions (number, config_version, author, created_at, yaml, diff,"
                    " note) VALUES (?, ?, ?, ?, ?, ?, ?)",
                    (version.number, version.config_version, author, at, text, diff, note))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return version

    def _rows(self, sql: str, args: tuple[Any, ...] = ()) -> list[ConfigVersion]:
        with self._lock:
            rows = self._db.execute(
                "SELECT number, config_version, author, created_at, yaml, diff, note FROM config_versions "
                + sql, args).fetchall()
        return [ConfigVersion(*r) for r in rows]

    def get(self, number: int) -> ConfigVersion:
        found = self._rows("WHERE number = ?", (number,))
        if not found:
            known = ", ".join(str(v.number) for v in reversed(self.history(limit=20))) or "none yet"
            raise VersionNotFound(f"config version {number} not found (stored: {known})")
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
