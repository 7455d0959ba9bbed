"""The gazetteer: its file format's checks, normalisation, exact aliases, near misses and refusals, on the
shipped demo gazetteer (config/gazetteer.csv) and on small files written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridsentinel.cases.gazetteer import Gazetteer, load_gazetteer, normalize
from gridsentinel.core.grid import GridMap
from gridsentinel.errors import ConfigError
from gridsentinel.settings import REPO_ROOT

pytestmark = pytest.mark.unit
CONFIG = REPO_ROOT / "config"
HEADER = "name,aliases,lat,lon,grid_code\n"


@pytest.fixture(scope="module")
def grid() -> GridMap:
    return GridMap.load(CONFIG / "grid.geojson")


@pytest.fixture(scope="module")
def demo(grid: GridMap) -> Gazetteer:
    return load_gazetteer(CONFIG / "gazetteer.csv", grid)


def test_the_demo_gazetteer_places_every_entry_in_its_cell(demo: Gazetteer, grid: GridMap) -> None:
    assert len(demo) >= 36
    assert {p.grid_code for p in demo.places} == set(grid.cells)  # every demo cell has named places
    assert "SYNTHETIC" in (CONFIG / "gazetteer.csv").read_text(encoding="utf-8").splitlines()[0]


@pytest.mark.parametrize("raw, expected", [
    ("暨阳中路８８号", "暨阳中路88号"),        # full-width digits
    ("暨阳中路 八十八 号", "暨阳中路88号"),     # Chinese numerals, spaces
    ("沙洲西路十二弄", "沙洲西路12弄"),
    ("梁丰新村三幢", "梁丰新村3幢"),
    ("长安路一百零五号", "长安路105号"),
    ("人民路（步行街）", "人民路步行街"),        # full-width brackets dropped
    ("ＡＢＣ广场", "abc广场"),
])
def test_normalisation(raw: str, expected: str) -> None:
    assert normalize(raw) == expected


@pytest.mark.parametrize("address, place", [
    ("暨阳路八十八号", "暨阳中路88号"),       # alias, Chinese numerals
    ("梁丰农贸市场", "梁丰菜市场"),             # alias
    ("沙洲路 12 弄", "沙洲西路12弄"),
    ("梁丰小区3幢", "梁丰新村3幢"),
])
def test_exact_names_and_aliases_resolve_with_score_one(demo: Gazetteer, address: str, place: str) -> None:
    m = demo.match(address)
    assert m.resolved is not None and m.resolved.place.name == place and m.resolved.score == 1.0


@pytest.mark.parametrize("address, place", [
    ("江苏省张家港市暨阳中路88号门口", "暨阳中路88号"),   # city prefix and 门口 around a full name
    ("人民公园旁边", "人民公园西门"),
    ("东苑新村5栋楼下", "东苑小区"),
    ("梁丰菜场对面", "梁丰菜市场"),
    ("暨杨中路88号", "暨阳中路88号"),                # a homophone typo (杨 for 阳)
    ("港城大道跟长安路交叉口", "港城大道长安路口"),
])
def test_near_names_resolve_above_the_threshold(demo: Gazetteer, address: str, place: str) -> None:
    m = demo.match(address)
    assert m.resolved is not None and m.resolved.place.name == place, (m.reason, m.candidates[:3])
    assert 0.65 <= m.resolved.score < 1.0


@pytest.mark.parametrize("address, why", [
    ("暨阳中路90号", "below"),          # a house number the gazetteer does not have: candidates only
    ("长安中路", "below"),              # a road is not a point
    ("金港花园", "below"),              # two gates: the estate alone is ambiguous
    ("北京市朝阳区建国路", "no gazetteer name"),
    ("我家楼下", "no gazetteer name"),
    ("", "empty"),
    ("  号 ", "too short"),
])
def test_vague_or_foreign_addresses_are_not_resolved(demo: Gazetteer, address: str, why: str) -> None:
    m = demo.match(address)
    assert m.resolved is None and why in m.reason


def test_a_near_miss_still_lists_the_right_road_first(demo: Gazetteer) -> None:
    m = demo.match("暨阳中路90号")
    assert m.candidates and m.candidates[0].place.name.startswith("暨阳中路")
    assert all(a.score >= b.score for a, b in zip(m.candidates, m.candidates[1:], strict=False))


def _load(tmp_path: Path, grid: GridMap, body: str, header: str = HEADER) -> Gazetteer:
    path = tmp_path / "gazetteer.csv"
    path.write_text("# a comment\n" + header + body, encoding="utf-8")
    return load_gazetteer(path, grid)


@pytest.mark.parametrize("body, message", [
    ("甲路1号,,31.8722,abc,\n", "line 3: lon 'abc' is not a number"),
    ("甲路1号,,95,120.5505,\n", "lat 95.0 is outside"),
    ("甲路1号,,31.95,120.5505,\n", "outside the unit grid"),
    ("甲路1号,,31.8722,120.5505,320582004001002\n", "lies in 320582004001001"),
    ("甲路1号,,31.8722,120.5505,12\n", "is not 15 digits"),
    ("甲路1号,,31.8722,120.5505\n", "4 fields; expected 5"),
    ("甲路1号,乙|甲,31.8722,120.5505,\n", "shorter than two characters"),
    ("甲路1号,,31.8722,120.5505,\n乙路2号,甲路一号,31.8722,120.5515,\n", "already names '甲路1号'"),
])
def test_file_errors_name_the_line_and_the_fix(tmp_path: Path, grid: GridMap, body: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        _load(tmp_path, grid, body)


def test_header_is_checked_and_grid_code_is_optional(tmp_path: Path, grid: GridMap) -> None:
    with pytest.raises(ConfigError, match="header 'name,lat,lon'"):
        _load(tmp_path, grid, "", header="name,lat,lon\n")
    g = _load(tmp_path, grid, "甲路1号,甲路一号,31.8722,120.5505\n", header="name,aliases,lat,lon\n")
    assert g.places[0].grid_code == "320582004001001"
