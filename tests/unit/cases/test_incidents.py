"""Incidents (issue 17): the linking rule's edges in space and time, family membership, merges, the families
config, and linking through the case stage's real paths (batch and one by one) on the memory store and SQL
(a SQLite file)."""

from __future__ import annotations

import asyncio
import itertools
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml

from gridsentinel.cases.batch import apply_detections
from gridsentinel.cases.case import Case, new_case_for_test
from gridsentinel.cases.categories import load_catalog
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.incidents import (
    FamiliesFile,
    Incident,
    IncidentFamilies,
    incident_id_for,
    load_families,
    plan_links,
)
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.store_protocol import CaseQuery, CaseStore, IncidentQuery
from gridsentinel.core.records import Detection
from gridsentinel.errors import ConfigError

from .conftest import CONFIG_DIR, MONDAY_10H, detection

pytestmark = pytest.mark.unit

CATALOG = load_catalog(CONFIG_DIR)
FAMILIES = load_families(CONFIG_DIR, CATALOG)
FLOODING = FAMILIES.file.families["flooding"]
CELLS = [f"320582110152{i:03d}" for i in range(8)]  # a line: each cell touches the next
LINE: dict[str, set[str]] = {c: set() for c in CELLS}
for _a, _b in itertools.pairwise(CELLS):
    LINE[_a].add(_b)
    LINE[_b].add(_a)
WINDOW = FLOODING.window_s


def case(case_id: str, key: str, cell: int, first: float, last: float | None = None, **more: Any) -> Case:
    kind, code = key.split(":")
    return new_case_for_test(case_id=case_id, category_type=kind, category_code=code, grid_code=CELLS[cell],
                             first_seen_at=first, last_seen_at=first if last is None else last, **more)


def plan(touched: Case, pool: list[Case], links: dict[str, str] | None = None,
         incidents: dict[str, Incident] | None = None) -> Any:
    return plan_links([touched], pool, links or {}, incidents or {}, FLOODING, LINE, now=10_000.0)


# --- the rule ------------------------------------------------------------------------------------------

def test_shipped_flooding_family_is_what_the_test_assumes() -> None:
    assert FLOODING.radius_rings == 2 and FLOODING.window_minutes == 180
    assert {"component:0103", "event:L001", "event:0404"} <= set(FLOODING.categories)


def test_space_edge_radius_rings_links_one_more_does_not() -> None:
    drain = case("a", "component:0103", 0, 0.0)
    at_edge = case("b", "event:L001", 2, 0.0)
    beyond = case("c", "event:L001", 3, 0.0)
    assert sorted(c for c, _ in plan(at_edge, [drain, at_edge]).joined) == ["a", "b"]
    assert plan(beyond, [drain, beyond]).empty


def test_time_edge_the_gap_between_detection_spans_counts() -> None:
    drain = case("a", "component:0103", 0, 0.0, 600.0)  # seen from 0 to 10 min
    on_edge = case("b", "event:L001", 1, 600.0 + WINDOW)
    late = case("c", "event:L001", 1, 600.0 + WINDOW + 1)
    assert not plan(on_edge, [drain, on_edge]).empty
    assert plan(late, [drain, late]).empty
    # an earlier report (an inspector's finding filed late with its own time) links backwards the same way
    earlier = case("d", "event:0404", 1, -WINDOW, -WINDOW)
    assert not plan(earlier, [drain, earlier]).empty


def test_only_members_of_the_family_and_active_cases_link() -> None:
    drain = case("a", "component:0103", 0, 0.0)
    garbage = case("b", "event:0103", 0, 0.0)  # accumulated garbage: same code, other type, no family
    fire = case("c", "event:L005", 0, 0.0)  # another family
    closed = case("d", "event:L001", 1, 0.0, status="closed", closed_at=5.0)
    assert plan(drain, [drain, garbage, fire, closed]).empty
    assert plan(garbage, [drain, garbage]).empty


def test_a_case_joins_the_incident_of_its_neighbour() -> None:
    drain = case("a", "component:0103", 0, 0.0)
    ponding = case("b", "event:L001", 1, 0.0)
    existing = {"a": "I1", "b": "I1"}
    incidents = {"I1": Incident("I1", "flooding", 1.0, 1.0)}
    citizen = case("c", "event:L001", 2, 60.0)
    out = plan(citizen, [drain, ponding, citizen], existing, incidents)
    assert out.joined == [("c", "I1")] and not out.created and not out.merged
    assert [e.action for e in out.log] == ["link"]


def test_a_case_bridging_two_incidents_merges_them_into_the_older() -> None:
    west = [case("a", "component:0103", 0, 0.0), case("b", "event:L001", 1, 0.0)]
    east = [case("c", "component:0103", 4, 0.0), case("d", "event:L001", 5, 0.0)]
    links = {"a": "WEST", "b": "WEST", "c": "EAST", "d": "EAST"}
    incidents = {"WEST": Incident("WEST", "flooding", 50.0, 50.0), "EAST": Incident("EAST", "flooding", 40.0, 40.0)}
    bridge = case("e", "event:0404", 3, 10.0)  # 2 rings from b, 1 ring from c
    out = plan(bridge, [*west, *east, bridge], links, incidents)
    assert out.merged == [("WEST", "EAST")]  # EAST was opened first: it lives on
    assert out.joined == [("e", "EAST")]
    assert {e.action for e in out.log} == {"merge", "merged_into", "link"}


def test_new_incident_id_is_deterministic_from_its_first_case() -> None:
    a, b = case("b-case", "component:0103", 0, 0.0), case("a-case", "event:L001", 0, 0.0)
    out = plan(a, [a, b])
    assert [i.incident_id for i in out.created] == [incident_id_for("a-case")]


# --- config ----------------------------------------------------------------------------------------------

def _families(tmp_path: Path, families: dict[str, Any]) -> Path:
    (tmp_path / "incident_families.yaml").write_text(yaml.safe_dump({"version": "t", "families": families}))
    return tmp_path


def _flood(**more: Any) -> dict[str, Any]:
    return {"name": "f", "name_zh": "涝", "categories": ["component:0103", "event:L001"], "radius_rings": 1,
            "window_minutes": 60, **more}


def test_config_errors_name_the_file_the_key_and_the_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"component:0103 is in families a and b"):
        load_families(_families(tmp_path, {"a": _flood(), "b": _flood()}), CATALOG)
    with pytest.raises(ConfigError, match=r"families\.a\.categories: unknown \['event:9999'\]"):
        load_families(_families(tmp_path, {"a": _flood(categories=["event:9999", "event:L001"])}), CATALOG)
    with pytest.raises(ConfigError, match=r"lead_department: unknown 'navy'"):
        load_families(_families(tmp_path, {"a": _flood(lead_department="navy")}), CATALOG)
    with pytest.raises(ConfigError, match=r"radius_rings"):
        load_families(_families(tmp_path, {"a": _flood(radius_rings=9)}), CATALOG)
    with pytest.raises(ConfigError, match=r"colour"):
        load_families(_families(tmp_path, {"a": _flood(colour="blue")}), CATALOG)
    assert not load_families(tmp_path / "nowhere", CATALOG)  # no file: no families, no incidents


# --- through the case stage's paths ---------------------------------------------------------------------

def _flood_detections() -> list[Detection]:
    t = MONDAY_10H
    return [
        detection("sensor-1", grid_code=CELLS[0], observed_at=t),
        detection("camera-1", source="camera", device_id="cam-1", detector="waterlogging", kind="waterlogging",
                  category_code="L001", category_standard="", grid_code=CELLS[1], observed_at=t + 300),
        detection("citizen-1", source="citizen", device_id=None, detector="open311", kind="citizen_report",
                  category_code="event:L001", category_standard="", grid_code=CELLS[4], observed_at=t + 600),
        detection("hotline-1", source="hotline", device_id=None, detector="hotline", kind="hotline_call",
                  category_code="event:0404", category_standard="", grid_code=CELLS[2], observed_at=t + 900),
        # garbage in the same cell: not flooding, stays out
        detection("camera-2", source="camera", device_id="cam-1", detector="static_object", kind="static_object",
                  category_code="", category_standard="", grid_code=CELLS[1], observed_at=t + 300),
    ]


async def _run(store: CaseStore, batch: bool) -> tuple[list[Incident], dict[str, list[Case]]]:
    found = _flood_detections()
    if batch:
        applied = await apply_detections(found, store, CATALOG, LINE, now=MONDAY_10H + 1000, families=FAMILIES)
        assert all(a.error is None for a in applied)
    else:
        for d in found:
            await apply_detection(d, store, CATALOG, LINE, now=MONDAY_10H + 1000, families=FAMILIES)
    incidents = await store.list_incidents(IncidentQuery())
    return incidents, await store.incident_cases([i.incident_id for i in incidents])


@pytest.mark.parametrize("batch", [True, False], ids=["batch", "one-by-one"])
@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_one_flood_becomes_one_incident_of_cases_keeping_their_categories(
        tmp_path: Path, backend: str, batch: bool) -> None:
    async def scenario() -> None:
        store: Any = MemoryCaseStore() if backend == "memory" else await SqlCaseStore.open(
            f"sqlite:///{tmp_path / 'cases.db'}")
        try:
            incidents, members = await _run(store, batch)
            [incident] = incidents
            cases = members[incident.incident_id]
            assert incident.family == "flooding"
            # sensor + camera + hotline(0404) are one chain; the citizen's ponding 3 cells from the camera
            # is 2 rings from the blocked sewer: it joins too. The garbage case stays out.
            assert sorted(c.category_key for c in cases) == ["component:0103", "event:0404", "event:L001",
                                                             "event:L001"]
            assert sorted(s for c in cases for s in c.sources) == ["camera", "citizen", "hotline", "sensor"]
            everything = await store.list_cases(CaseQuery())
            garbage = [c for c in everything if c.category_key == "event:0103"]
            assert len(garbage) == 1 and await store.incident_of(garbage[0].case_id) is None
            for c in cases:
                assert await store.incident_of(c.case_id) == incident.incident_id
                assert c.due_at is not None  # each keeps its own due time
            log = await store.incident_log(incident.incident_id)
            assert log[0].action == "open"
            # a replay changes nothing
            again = await apply_detections(_flood_detections(), store, CATALOG, LINE, now=MONDAY_10H + 2000,
                                           families=FAMILIES)
            assert all(not a.events for a in again)
            assert await store.list_incidents(IncidentQuery()) == incidents
        finally:
            if backend == "sqlite":
                await store.close()

    asyncio.run(scenario())


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
def test_a_case_bridging_two_incidents_merges_them_in_the_store(tmp_path: Path, backend: str) -> None:
    async def scenario() -> None:
        store: Any = MemoryCaseStore() if backend == "memory" else await SqlCaseStore.open(
            f"sqlite:///{tmp_path / 'cases.db'}")
        try:
            t = MONDAY_10H
            west = [detection("w1", grid_code=CELLS[0], observed_at=t),
                    detection("w2", kind="ponding", category_code="", grid_code=CELLS[1], observed_at=t)]
            east = [detection("e1", grid_code=CELLS[5], observed_at=t),
                    detection("e2", kind="ponding", category_code="", grid_code=CELLS[6], observed_at=t)]
            await apply_detections(west, store, CATALOG, LINE, now=t + 10, families=FAMILIES)
            await apply_detections(east, store, CATALOG, LINE, now=t + 20, families=FAMILIES)
            first = await store.list_incidents(IncidentQuery())
            assert len(first) == 2
            older = min(first, key=lambda i: i.opened_at)
            # a blocked sewer in cell 3: 2 rings from cell 1 and from cell 5
            bridge = replace(detection("b1", grid_code=CELLS[3], observed_at=t + 60), kind="drain_blockage_suspected")
            await apply_detections([bridge], store, CATALOG, LINE, now=t + 30, families=FAMILIES)
            [merged] = await store.list_incidents(IncidentQuery())
            assert merged.incident_id == older.incident_id
            members = (await store.incident_cases([merged.incident_id]))[merged.incident_id]
            assert len(members) == 5
            younger = next(i for i in first if i.incident_id != older.incident_id)
            resolved = await store.get_incident(younger.incident_id)  # the old id still finds it
            assert resolved is not None and resolved.incident_id == older.incident_id
            actions = [e.action for e in await store.incident_log(merged.incident_id)]
            assert actions.count("open") == 2 and "merge" in actions and "merged_into" in actions
        finally:
            if backend == "sqlite":
                await store.close()

    asyncio.run(scenario())


def test_empty_families_link_nothing() -> None:
    async def scenario() -> None:
        store = MemoryCaseStore()
        await apply_detections(_flood_detections(), store, CATALOG, LINE, now=MONDAY_10H, families=None)
        assert await store.list_incidents(IncidentQuery()) == []
        await apply_detections(_flood_detections(), store, CATALOG, LINE, now=MONDAY_10H,
                               families=IncidentFamilies(FamiliesFile(version="t")))
        assert await store.list_incidents(IncidentQuery()) == []

    asyncio.run(scenario())
