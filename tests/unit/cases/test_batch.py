"""A batch of detections in one transaction gives exactly what applying them one by one gives: the same
cases, logs, applied ids, outbox and returned events, on the memory store and on SQL (SQLite file), with
replays, duplicates inside a batch, bad detections and cases closed by hand between batches."""

from __future__ import annotations

import asyncio
import itertools
import tempfile
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridsentinel.cases.batch import apply_detections
from gridsentinel.cases.case import CaseError
from gridsentinel.cases.categories import Catalog, UnknownCategory, load_catalog
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.gridcode import GridCodeError
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.store_protocol import CaseQuery, CaseStore, StoreConflict
from gridsentinel.cases.workflow import transition_case
from gridsentinel.core.records import SEVERITIES, SOURCES, Detection

from .conftest import CONFIG_DIR, MONDAY_10H, detection

pytestmark = pytest.mark.unit

CATALOG = load_catalog(CONFIG_DIR)
CELLS = [f"320582110152{i:03d}" for i in range(8)]
LINE: dict[str, set[str]] = {c: set() for c in CELLS}
for _a, _b in itertools.pairwise(CELLS):
    LINE[_a].add(_b)
    LINE[_b].add(_a)
KINDS = [("ponding", ""), ("citizen_report", "event:L001"),  # 1 ring
         ("air_quality", ""),  # 2 rings
         ("drain_overflow", ""), ("cover_tilt", "0103"),  # 0 rings, reopen window
         ("static_object", ""),
         ("no_such_kind", "")]  # unknown: refused, the batch goes on


@st.composite
def detections(draw: st.DrawFn, n: int) -> Detection:
    kind, code = draw(st.sampled_from(KINDS))
    return Detection(
        detection_id=f"d{n}", source=draw(st.sampled_from(SOURCES)), detector="t", detector_version="1",
        kind=kind, category_code=code, category_standard="", severity=draw(st.sampled_from(SEVERITIES)),
        grid_code=draw(st.sampled_from(CELLS)), observed_at=MONDAY_10H + draw(st.integers(0, 4)) * 1800,
        evidence={"component_class": "0103"} if kind == "cover_tilt" else {})


# A step: a batch of detections, or a hand-made transition (action, case index) between batches.
Step = tuple[str, Any]


@st.composite
def scenarios(draw: st.DrawFn) -> list[Step]:
    pool = [draw(detections(n)) for n in range(draw(st.integers(1, 14)))]
    steps: list[Step] = []
    for _ in range(draw(st.integers(1, 5))):
        # Drawn from the pool with repeats: replays across batches and duplicates inside one.
        steps.append(("batch", draw(st.lists(st.sampled_from(pool), min_size=0, max_size=12))))
        steps += draw(st.lists(st.tuples(st.sampled_from(["false_alarm", "duplicate", "dispatch"]),
                                         st.integers(0, 5)), max_size=2))
    return steps


async def run(store: CaseStore, steps: list[Step], batched: bool) -> list[object]:
    """Apply the scenario; return what the caller saw, per detection and per transition."""
    seen: list[object] = []
    for i, (what, arg) in enumerate(steps):
        now = MONDAY_10H + 3600 + i * 900
        if what == "batch":
            if batched:
                for r in await apply_detections(arg, store, CATALOG, LINE, now=now):
                    seen.append(type(r.error).__name__ if r.error else r.events)
            else:
                for d in arg:
                    try:
                        seen.append(await apply_detection(d, store, CATALOG, LINE, now=now))
                    except (CaseError, UnknownCategory, GridCodeError) as exc:
                        seen.append(type(exc).__name__)
            continue
        ids = [c.case_id for c in await store.list_cases(CaseQuery(limit=1000))]
        if not ids:
            continue
        case_id = ids[arg % len(ids)]
        try:
            seen.append(await transition_case(store, CATALOG, case_id, what, actor="user:li", now=now,
                                              department="water_affairs", duplicate_of=ids[0]))
        except CaseError as exc:
            seen.append(type(exc).__name__)
    return seen


async def snapshot(store: Any) -> dict[str, Any]:
    cases = await store.list_cases(CaseQuery(limit=1000))
    return {
        "cases": [c.to_dict() for c in cases],
        "logs": {c.case_id: await store.case_log(c.case_id) for c in cases},
        "applied": {c.case_id: await store.case_detections(c.case_id) for c in cases},
        "outbox": await store.pending_events(),
    }


@asynccontextmanager
async def memory_store(_: Path) -> AsyncIterator[MemoryCaseStore]:
    yield MemoryCaseStore(outbox=True)


@asynccontextmanager
async def sqlite_store(tmp: Path) -> AsyncIterator[SqlCaseStore]:
    async with SqlCaseStore.open(f"sqlite:///{tmp}") as store:
        yield store


STORES: dict[str, Callable[[Path], Any]] = {"memory": memory_store, "sqlite": sqlite_store}


@pytest.mark.parametrize("backend", sorted(STORES))
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=scenarios())
def test_batch_equals_one_by_one(backend: str, steps: list[Step]) -> None:
    async def scenario(tmp: Path) -> tuple[Any, Any]:
        results = []
        for batched in (False, True):
            async with STORES[backend](tmp / f"{batched}.db") as store:
                seen = await run(store, steps, batched)
                results.append((seen, await snapshot(store)))
        return results[0], results[1]

    with tempfile.TemporaryDirectory() as tmp:
        one_by_one, batched = asyncio.run(scenario(Path(tmp)))
    assert batched[0] == one_by_one[0]
    assert batched[1] == one_by_one[1]


def test_batch_reports_refusals_and_replays_per_detection(catalog: Catalog) -> None:
    dets = [detection("a"), detection("bad", kind="no_such_kind", category_code=""),
            detection("b", observed_at=MONDAY_10H + 5), detection("a"),
            detection("c", grid_code="12345")]

    async def scenario() -> list[Any]:
        store = MemoryCaseStore(outbox=True)
        return await apply_detections(dets, store, catalog, {}, now=MONDAY_10H + 60)

    results = asyncio.run(scenario())
    assert [r.detection.detection_id for r in results] == ["a", "bad", "b", "a", "c"]
    assert isinstance(results[1].error, UnknownCategory)
    assert isinstance(results[4].error, GridCodeError)
    assert [e.type for e in results[0].events] == ["open"]
    assert [e.type for e in results[2].events] == ["evidence"]
    assert results[3].events == [] and results[3].error is None  # replay inside the batch: a no-op


def test_batch_falls_back_when_another_writer_won(tmp_path: Path, catalog: Catalog) -> None:
    """A rival opens the cell's case after the batch read it (the batch's read misses it, as a read just
    before the rival's commit would): the unique index refuses the batch's second case, the batch rolls
    back and is applied one by one, attaching to the rival's case."""
    url = f"sqlite:///{tmp_path / 'cases.db'}"

    async def scenario() -> tuple[list[Any], int, int, list[str]]:
        async with SqlCaseStore.open(url) as store:
            await apply_detection(detection("rival"), store, catalog, {}, now=MONDAY_10H + 1)
            original = store.transaction
            stale = True

            @asynccontextmanager
            async def stale_read_once() -> AsyncIterator[Any]:
                nonlocal stale
                async with original() as tx:
                    if stale:
                        stale = False
                        tx.candidate_cases = _empty  # type: ignore[method-assign]
                    yield tx

            store.transaction = stale_read_once  # type: ignore[method-assign]
            results = await apply_detections([detection("x"), detection("y")], store, catalog, {},
                                             now=MONDAY_10H + 2)
            cases = await store.list_cases(CaseQuery())
            outbox = [e.type for e in await store.pending_events()]
            return results, len(cases), cases[0].detection_count, outbox

    results, n_cases, count, outbox = asyncio.run(scenario())
    assert all(r.error is None for r in results)
    assert n_cases == 1 and count == 3
    assert [[e.type for e in r.events] for r in results] == [["evidence"], ["evidence"]]
    assert outbox == ["open", "evidence", "evidence"]  # nothing of the rolled-back batch remains


async def _empty(*_: object, **__: object) -> list[Any]:
    return []


def test_store_conflict_is_reported_not_raised(catalog: Catalog) -> None:
    class AlwaysLoses(MemoryCaseStore):
        @asynccontextmanager
        async def transaction(self) -> AsyncIterator[Any]:
            async with super().transaction() as tx:
                yield tx
                raise StoreConflict("someone else won")

    results = asyncio.run(apply_detections([detection("a")], AlwaysLoses(), catalog, {},
                                           now=MONDAY_10H))
    assert isinstance(results[0].error, StoreConflict)
