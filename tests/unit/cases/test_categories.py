from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from gridsentinel.cases.categories import Catalog, UnknownCategory, load_catalog
from gridsentinel.errors import ConfigError

from .conftest import CONFIG_DIR, detection

pytestmark = pytest.mark.unit


def test_repository_config_is_valid_and_routes_every_category(catalog: Catalog) -> None:
    for key in catalog.policies:
        assert catalog.department_for(key, "320582110152102") in catalog.routing.departments


@pytest.mark.parametrize(("kind", "evidence", "key"), [
    ("cover_tilt", {"component_class": "0102"}, "component:0102"),
    ("cover_tilt", {"component_id": "3205820101048188"}, "component:0101"),
    ("cover_tilt", {}, "component:0103"),
    ("drain_overflow", {}, "component:0103"),
    ("static_object", {}, "event:0103"),
    ("waterlogging", {}, "event:L001"),
])
def test_kinds_map_to_categories(catalog: Catalog, kind: str, evidence: dict[str, Any], key: str) -> None:
    resolved = catalog.resolve(detection(kind=kind, evidence=evidence, category_code=""))
    assert resolved.policy.key == key


def test_severity_rules(catalog: Catalog) -> None:
    assert catalog.resolve(detection(kind="fire_smoke", severity="advisory")).severity == "alarm"
    assert catalog.resolve(detection(kind="fire_smoke", severity="critical")).severity == "critical"
    assert catalog.resolve(detection(kind="camera_tamper", severity="critical")).severity == "warning"


def test_reports_without_a_kind_mapping_use_their_code(catalog: Catalog) -> None:
    report = detection(source="citizen", kind="citizen_report", category_code="0505", category_standard="x")
    assert catalog.resolve(report).policy.key == "event:0505"
    # 0103 is both a component and an event: the standard decides.
    dumped = detection(kind="citizen_report", category_code="0103", category_standard="CJ/T 214-2007")
    assert catalog.resolve(dumped).policy.key == "event:0103"
    ads = detection(kind="citizen_report", category_code="event:0201")
    assert catalog.resolve(ads).policy.key == "event:0201"
    with pytest.raises(UnknownCategory):
        catalog.resolve(detection(kind="citizen_report", category_code="0103", category_standard="?"))
    with pytest.raises(UnknownCategory):
        catalog.resolve(detection(kind="ufo", category_code="9999"))


def test_every_category_has_its_chinese_name(catalog: Catalog) -> None:
    names = {c.key: c.name_zh for c in catalog.categories_file.categories}
    assert names["component:0103"] == "雨水井盖" and names["event:0102"] == "暴露垃圾"
    assert all(any("\u4e00" <= ch <= "\u9fff" for ch in name) for name in names.values()), names
    assert len(set(names.values())) == len(names)  # two categories never share a Chinese name


def test_per_category_rules_fall_back_to_defaults(catalog: Catalog) -> None:
    air = catalog.policy("event:L002")
    assert air.merge_rings == 2 and air.reopen_window_hours == 12
    assert air.dispatch_limit == catalog.categories_file.defaults.dispatch_limit


def test_longest_route_prefix_wins(tmp_path: Path) -> None:
    shutil.copytree(CONFIG_DIR, tmp_path, dirs_exist_ok=True)
    routing = (tmp_path / "routing.yaml").read_text()
    routing = routing.replace(
        '  - {category: "component:0103", department: drainage}\n',
        '  - {category: "component:0103", department: drainage}\n'
        '  - {category: "component:0103", department: water_supply, grid_prefix: "320582110"}\n')
    (tmp_path / "routing.yaml").write_text(routing)
    catalog = load_catalog(tmp_path)
    assert catalog.department_for("component:0103", "320582110152102") == "water_supply"
    assert catalog.department_for("component:0103", "320582111152102") == "drainage"


@pytest.mark.parametrize(("file", "old", "new", "expected"), [
    ("categories.yaml", "merge_rings: 2 ", "merge_rings: 9 ",
     r"categories\.\d+\.merge_rings.*less than or equal to 5"),
    ("categories.yaml", "  reopen_window_hours: 24      #", "  reopen_windw_hours: 24      #",
     r"defaults\.reopen_windw_hours: Extra inputs are not permitted"),
    ("categories.yaml", 'ponding: {category: "event:L001"}', 'ponding: {category: "event:L999"}',
     "unknown category 'event:L999'"),
    ("routing.yaml", "department: fire_rescue}", "department: firemen}", "unknown department 'firemen'"),
    ("categories.yaml", "    name_zh: 暴露垃圾\n", "", r"categories\.5\.name_zh: Field required"),
    ("calendar.yaml", "timezone: Asia/Shanghai", "timezone: Asia/Peking", "unknown IANA time zone"),
])
def test_bad_config_names_file_key_and_value(tmp_path: Path, file: str, old: str, new: str,
                                            expected: str) -> None:
    shutil.copytree(CONFIG_DIR, tmp_path, dirs_exist_ok=True)
    text = (tmp_path / file).read_text(encoding="utf-8")
    assert old in text
    (tmp_path / file).write_text(text.replace(old, new, 1), encoding="utf-8")
    with pytest.raises(ConfigError, match=expected) as info:
        load_catalog(tmp_path)
    assert file in str(info.value)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read"):
        load_catalog(tmp_path)
    shutil.copytree(CONFIG_DIR, tmp_path, dirs_exist_ok=True)
    (tmp_path / "routing.yaml").write_text("routes: [")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_catalog(tmp_path)
