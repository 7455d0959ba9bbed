"""The SQL case store on both backends (SQLite file, the stack's PostgreSQL): its invariants hold under
replays and concurrent writers."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from gridsentinel.alerts.categories import Catalog, load_catalog
from gridsentinel.alerts.dedup import apply_detection
from gridsentinel.alerts.events import CaseEvent
from gridsentinel.alerts.store import SqlCaseStore
from gridsentinel.alerts.store_protocol import CaseQuery, StoreConflict
from gridsentinel.alerts.workflow import transition_case
from gridsentinel.ingest.records import Detection
from gridsentinel.settings import REPO_ROOT

pytestmark = pytest.mark.integration
CELL = "320582110152102"
T0 = 1749434400.0  # Monday 10:00 Asia/Shanghai


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(Path(REPO_ROOT / "config"))


def det(detection_id: str, **overrides: object) -> Detection:
    base: dict[str, object] = {
        "detection_id": detection_id,
        "source": "sensor",
        "detector": "drain_level",
        "detector_version": "1",
        "kind": "drain_overflow",
        "category_code": "0103",
        "category_standard": "GB/T 30428.2-2013",
        "severity": "alarm",
        "grid_code": CELL,
        "observed_at": T0,
        "device_id": "dev-1",
    }
    base.update(overrides)
    return Detection(**base)  # type: ignore[arg-type]


def test_one_case_per_cell_and_category_and_each_detection_once(
    case_store_url: str, catalog: Catalog
) -> None:
    async def scenario() -> tuple[list[CaseEvent], list[CaseEvent], int, int]:
        async with SqlCaseStore.open(case_store_url) as store:
            first = []
            for i in range(5):
                first += await apply_detection(
                    det(f"d{i}", observed_at=T0 + i), store, catalog, {}, now=T0 + 10
                )
            replay = []
            for i in range(5):  # a full replay of the same detections
                replay += await apply_detection(
                    det(f"d{i}", observed_at=T0 + i), store, catalog, {}, now=T0 + 20
                )
            cases = await store.list_cases(CaseQuery())
            pending = await store.pending_events()
            return first, replay, len(cases), cases[0].detection_count if cases else 0, pending  # type: ignore[return-value]

    first, replay, n_cases, count, pending = asyncio.run(scenario())  # type: ignore[misc]
    assert n_cases == 1 and count == 5
    assert [e.type for e in first] == ["open"] + ["evidence"] * 4
    assert replay == []
    # Every event is also in the outbox (same transaction), in order, until published.
    assert [e.event_id for e in pending] == [e.event_id for e in first]


def test_outbox_mark_published_and_reopen_refused_while_active(case_store_url: str, catalog: Catalog) -> None:
    async def scenario() -> tuple[int, str]:
        async with SqlCaseStore.open(case_store_url) as store:
            events = await apply_detection(det("a"), store, catalog, {}, now=T0)
            case_id = events[0].case_id
            for action in ("false_alarm",):
                events += await transition_case(store, catalog, case_id, action, actor="user:li", now=T0 + 60)
            # A new incident in the same cell after the false alarm: rule 3 reopens within the window.
            events += await apply_detection(det("b", observed_at=T0 + 120), store, catalog, {}, now=T0 + 120)
            await store.mark_published([e.event_id for e in events[:2]])
            pending = await store.pending_events()
            return len(pending), (await store.list_cases(CaseQuery()))[0].status

    remaining, status = asyncio.run(scenario())
    assert status == "open"
    assert remaining >= 1  # only the published ones left the outbox


def test_two_concurrent_stores_never_open_two_cases_for_one_incident(
    case_store_url: str, catalog: Catalog
) -> None:
    """Two workers (two engines, two connection pools) race on one cell and category."""
    n = 12

    async def worker(store: SqlCaseStore, name: str) -> list[CaseEvent]:
        out: list[CaseEvent] = []
        for i in range(n):
            d = det(f"{name}-{i}", source="camera" if name == "b" else "sensor", observed_at=T0 + i)
            for _ in range(10):  # what the stage does after StoreConflict: try again
                try:
                    out += await apply_detection(d, store, catalog, {}, now=T0 + 30)
                    break
                except StoreConflict:
                    continue
        return out

    async def scenario() -> tuple[list[CaseEvent], list[CaseEvent], int, int, dict[str, int]]:
        async with SqlCaseStore.open(case_store_url) as a, SqlCaseStore.open(case_store_url) as b:
            ea, eb = await asyncio.gather(worker(a, "a"), worker(b, "b"))
            cases = await a.list_cases(CaseQuery())
            return ea, eb, len(cases), cases[0].detection_count, cases[0].sources

    ea, eb, n_cases, count, sources = asyncio.run(scenario())
    assert n_cases == 1
    assert count == 2 * n and sources == {"sensor": n, "camera": n}
    assert [e.type for e in ea + eb].count("open") == 1
