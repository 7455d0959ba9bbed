"""Property: however the detections of incidents are interleaved, duplicated or replayed, each incident
becomes exactly one case, and separate incidents (far-apart cells, or other categories) never merge."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridsentinel.cases.categories import load_catalog
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.core.records import SEVERITIES, SOURCES, Detection

from .conftest import CONFIG_DIR, MONDAY_10H

pytestmark = pytest.mark.unit

CATALOG = load_catalog(CONFIG_DIR)
CELLS = [f"320582110152{i:03d}" for i in range(100)]
LINE: dict[str, set[str]] = {c: set() for c in CELLS}
for _a, _b in itertools.pairwise(CELLS):
    LINE[_a].add(_b)
    LINE[_b].add(_a)

# category -> the kinds (with category_code for unmapped report kinds) that detect it
KINDS: dict[str, list[tuple[str, str]]] = {
    "event:L001": [("ponding", ""), ("waterlogging", ""), ("citizen_report", "event:L001")],  # 1 ring
    "event:L002": [("air_quality", ""), ("hotline_report", "event:L002")],  # 2 rings
    "component:0103": [("drain_overflow", ""), ("drain_level", ""), ("cover_tilt", "0103")],  # 0 rings
    "event:0103": [("static_object", ""), ("inspector_report", "event:0103")],  # 0 rings
}
SLOT = 10  # incident centres are SLOT cells apart: farther than any merge radius plus spread


def spread(center: int, rings: int) -> list[int]:
    """Cells of one incident: pairwise within the category's merge radius."""
    return {0: [center], 1: [center, center + 1]}.get(rings, [center - 1, center, center + 1])


@st.composite
def incidents(draw: st.DrawFn) -> list[list[Detection]]:
    keys = draw(st.lists(st.tuples(st.integers(1, 8), st.sampled_from(sorted(KINDS))), min_size=1,
                         max_size=5, unique=True))
    result = []
    for n, (slot, category) in enumerate(keys):
        rings = CATALOG.policy(category).merge_rings
        cells = spread(slot * SLOT, rings)
        dets = []
        for j in range(draw(st.integers(1, 6))):
            kind, code = draw(st.sampled_from(KINDS[category]))
            dets.append(Detection(
                detection_id=f"i{n}-d{j}", source=draw(st.sampled_from(SOURCES)), detector="t",
                detector_version="1", kind=kind, category_code=code, category_standard="",
                severity=draw(st.sampled_from(SEVERITIES)), grid_code=CELLS[draw(st.sampled_from(cells))],
                observed_at=MONDAY_10H + draw(st.integers(0, 3600)),
                evidence={"component_class": "0103"} if kind == "cover_tilt" else {}))
        result.append(dets)
    return result


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), groups=incidents())
def test_each_incident_becomes_exactly_one_case(data: st.DataObject, groups: list[list[Detection]]) -> None:
    every = [d for g in groups for d in g]
    replays = data.draw(st.lists(st.sampled_from(every), max_size=len(every)))
    stream = data.draw(st.permutations(every + replays))

    async def scenario() -> tuple[MemoryCaseStore, int]:
        store = MemoryCaseStore()
        replay_events = 0
        seen: set[str] = set()
        for step, d in enumerate(stream):
            events = await apply_detection(d, store, CATALOG, LINE, now=MONDAY_10H + 3600 + step)
            if d.detection_id in seen:
                replay_events += len(events)
            seen.add(d.detection_id)
        return store, replay_events

    store, replay_events = asyncio.run(scenario())
    assert replay_events == 0
    cases = store.all_cases()
    assert len(cases) == len(groups)
    for group in groups:
        owners = set()
        for case in cases:
            applied = {d["detection_id"] for d in asyncio.run(store.case_detections(case.case_id))}
            if applied & {d.detection_id for d in group}:
                owners.add(case.case_id)
                assert applied == {d.detection_id for d in group}
                assert case.detection_count == len(group)
                assert case.sources == dict(Counter(d.source for d in group))
                assert case.first_seen_at == min(d.observed_at for d in group)
                assert case.last_seen_at == max(d.observed_at for d in group)
        assert len(owners) == 1
