"""Every config kind through the versioned path: validation errors (file, key path, value, fix), diff,
history, rollback per kind; the old versions file migrates; running objects switch or keep the old one."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
import yaml

from gridsentinel.cases.categories import LiveCatalog, load_catalog
from gridsentinel.engineering import configs as ops
from gridsentinel.engineering.live_config import LiveConfig
from gridsentinel.engineering.versions import VersionStore
from gridsentinel.errors import ConfigError
from gridsentinel.liveconfig.appliers import worker_appliers
from gridsentinel.liveconfig.kinds import KINDS, kind_for_path
from gridsentinel.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.unit
CONFIG = REPO_ROOT / "config"

# per kind: a valid edit of the shipped file, and an invalid one with the problem line expected
EDITS = {
    "cameras": (("retention_days: 30", "retention_days: 20"), ("retention_days: 30", "retention_days: -1"),
                "privacy.retention_days: got -1; expected greater than or equal to 0"),
    "categories": (("name: sewage manhole cover", "name: sewer cover"),
                   ("merge_rings: 1", "merge_rings: 9"), "defaults.merge_rings: got 9; expected less than"),
    "routing": (("max_level: city", "max_level: district"), ("max_level: city", "max_level: planet"),
                "max_level: got 'planet'; expected one of"),
    "calendar": (("covered_years: []", "covered_years: [2031]"), ("timezone: Asia/Shanghai", "timezone: Mars/X"),
                 "timezone: got 'Mars/X'"),
    "receivers": (("qos: 1", "qos: 0"), ("qos: 1", "qos: 7"), "mqtt.qos: got 7; expected one of"),
}


def _settings(tmp_path: Path) -> Settings:
    return Settings(run_dir=tmp_path, config_dir=CONFIG)


def _text(kind: str) -> str:
    return (CONFIG / KINDS[kind].file_name).read_text()


@pytest.mark.parametrize("kind", sorted(EDITS))
def test_each_kind_validates_stores_diffs_and_rolls_back(kind: str, tmp_path: Path) -> None:
    (old, new), (bad_old, bad_new), expected = EDITS[kind][0], EDITS[kind][1], EDITS[kind][2]
    base = _text(kind)
    assert old in base and bad_old in base, f"the shipped {kind} file changed: update EDITS"
    s, spec = _settings(tmp_path), KINDS[kind]
    published: list[tuple[str, int]] = []

    def pub(_s: Settings, v: object) -> None:
        published.append((v.kind, v.number))  # type: ignore[attr-defined]

    with VersionStore.default(tmp_path, kind) as store:
        with pytest.raises(ConfigError) as err:
            ops.apply_text(s, store, base.replace(bad_old, bad_new), author="a", where=f"cand/{spec.file_name}",
                           kind=spec, kinds=KINDS, publisher=pub)
        assert f"cand/{spec.file_name}: {expected}" in str(err.value)
        assert store.latest() is None and published == []
        ops.apply_text(s, store, base, author="a", kind=spec, kinds=KINDS, publisher=pub)
        v2, _ = ops.apply_text(s, store, base.replace(old, new), author="b", kind=spec, kinds=KINDS, publisher=pub)
        assert old in v2.diff and new in v2.diff and v2.kind == kind
        v3, created = ops.rollback(s, store, 1, author="c", kind=spec, kinds=KINDS, publisher=pub)
        assert created and v3.yaml == base and store.diff(1, 3) == "" and v3.note == "rollback to v1"
        assert [v.number for v in store.history()] == [3, 2, 1]
        assert published == [(kind, 1), (kind, 2), (kind, 3)]
        # the other kinds' histories are their own
        assert store.of_kind("detectors").latest() is None


def test_cross_file_checks_use_the_live_sibling(tmp_path: Path) -> None:
    s = _settings(tmp_path)
    routing = _text("routing").replace('"component:0101"', '"component:9999"')
    with VersionStore.default(tmp_path, "routing") as store:
        obj, problems = ops.validate_kind(s, store, routing, "routing.yaml", KINDS["routing"], KINDS)
    assert obj is None and "routes name unknown categories ['component:9999']" in problems[0]
    receivers = yaml.safe_load(_text("receivers"))
    receivers["receivers"][0]["match"]["categories"] = ["event:XX99"]
    with VersionStore.default(tmp_path, "receivers") as store:
        obj, problems = ops.validate_kind(s, store, yaml.safe_dump(receivers), "r.yaml", KINDS["receivers"], KINDS)
    assert obj is None and "r.yaml: receivers.0.match.categories: got 'event:XX99'" in problems[0]


def test_kind_is_inferred_from_the_file_name() -> None:
    assert kind_for_path(Path("x/categories.yaml")) is KINDS["categories"]
    assert kind_for_path("detectors.yaml") is KINDS["detectors"] and kind_for_path("a.yaml") is None


def test_an_old_versions_file_migrates_to_the_detectors_kind(tmp_path: Path) -> None:
    path = tmp_path / "config-versions.db"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE config_versions (number INTEGER PRIMARY KEY, config_version TEXT NOT NULL, "
               "author TEXT NOT NULL, created_at REAL NOT NULL, yaml TEXT NOT NULL, diff TEXT NOT NULL, "
               "note TEXT NOT NULL DEFAULT '')")
    db.execute("INSERT INTO config_versions VALUES (1, 'a', 'li', 1.0, 'version: a\n', '', '')")
    db.commit()
    db.close()
    with VersionStore(path) as detectors, VersionStore(path, kind="calendar") as calendar:
        assert [(v.number, v.kind, v.author) for v in detectors.history()] == [(1, "detectors", "li")]
        assert detectors.add("version: b\n", author="x", at=2.0).number == 2
        assert calendar.add("official: none\n", author="x", at=3.0).number == 1
        assert calendar.latest() is not None and calendar.latest().label == "v1"  # type: ignore[union-attr]


def _message(kind: str, text: str, label: str) -> dict[str, object]:
    return {"yaml": text, "label": label, "version": 1, "author": "t"}


def test_live_apply_swaps_the_catalogue_and_rejects_a_bad_version() -> None:
    live = LiveCatalog(load_catalog(CONFIG))
    handler = LiveConfig(None, worker_appliers(live, frames=lambda: None, delivery=lambda: None))
    before = live.current
    cats = _text("categories").replace("name: sewage manhole cover", "name: Flooded road")
    handler.handle("categories", _message("categories", cats, "2@v2"))
    assert live.current is not before
    assert any(p.spec.name == "Flooded road" for p in live.current.policies.values())
    # routes naming a category the live categories lack: the catalogue does not build, the old one stays
    current = live.current
    bad = _text("routing").replace('"component:0101"', '"component:9999"')
    handler.handle("routing", _message("routing", bad, "r@v2"))
    assert live.current is current and handler.rejected_kinds == {"routing": 1}
    handler.handle("calendar", _message("calendar", "timezone: Nowhere/X\n", "v2"))
    assert live.current is current and handler.rejected_kinds["calendar"] == 1
    assert handler.applied_kinds == {"categories": "2@v2"}
