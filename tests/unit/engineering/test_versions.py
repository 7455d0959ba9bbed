"""Config versions: apply stores author/time/diff, invalid configs store nothing, rollback, diff."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridsentinel.engineering import configs as ops
from gridsentinel.engineering.versions import VersionNotFound, VersionStore
from gridsentinel.errors import ConfigError
from gridsentinel.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.unit
BASE = (REPO_ROOT / "config" / "detectors.yaml").read_text()


def _settings(tmp_path: Path) -> Settings:
    return Settings(run_dir=tmp_path, config_dir=REPO_ROOT / "config")


def test_apply_stores_diff_and_publishes(tmp_path: Path) -> None:
    published = []
    store = VersionStore(tmp_path / "v.db")
    s = _settings(tmp_path)
    v1, created1 = ops.apply_text(s, store, BASE, author="user:li", now=1.0,
                                  publisher=lambda _s, v: published.append(v.number))
    changed = BASE.replace("warn_fill: 0.8", "warn_fill: 0.75")
    changed = changed.replace('version: "2025.1"', 'version: "2025.2"')
    v2, created2 = ops.apply_text(s, store, changed, author="user:wang", now=2.0,
                                  publisher=lambda _s, v: published.append(v.number))
    assert (created1, created2) == (True, True)
    assert published == [1, 2]
    assert v2.author == "user:wang" and v2.created_at == 2.0 and v2.config_version == "2025.2"
    assert "-        warn_fill: 0.8" in v2.diff and "+        warn_fill: 0.75" in v2.diff
    assert [v.number for v in store.history()] == [2, 1]
    # the same text again: nothing stored, published again
    v3, created3 = ops.apply_text(s, store, changed, author="user:wang",
                                  publisher=lambda _s, v: published.append(9))
    assert (v3.number, created3, published[-1]) == (2, False, 9)


def test_invalid_config_is_refused_with_readable_problems(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "v.db")
    bad = BASE.replace("warn_fill: 0.8", "warn_fill: 1.8")
    with pytest.raises(ConfigError) as err:
        ops.apply_text(_settings(tmp_path), store, bad, author="user:li", where="cand.yaml", publisher=None)
    assert "cand.yaml: kinds.drain_level.detectors.drainage_level.warn_fill: got 1.8" in str(err.value)
    assert store.latest() is None


def test_rollback_applies_old_text_as_new_version(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "v.db")
    s = _settings(tmp_path)
    ops.apply_text(s, store, BASE, author="a", publisher=None)
    ops.apply_text(s, store, BASE.replace("misses: 3}", "misses: 4}", 1), author="b", publisher=None)
    v3, created = ops.rollback(s, store, 1, author="c", publisher=None)
    assert created and v3.number == 3 and v3.yaml == BASE and v3.note == "rollback to v1"
    assert store.diff(1, 3) == ""
    assert "misses: 4" in store.diff(1, 2)
    with pytest.raises(VersionNotFound):
        store.get(42)


def test_current_falls_back_to_the_file(tmp_path: Path) -> None:
    store = VersionStore(tmp_path / "v.db")
    cur = ops.current(_settings(tmp_path), store)
    assert cur["number"] is None and cur["yaml"] == BASE and cur["config_version"] == "2025.1"
