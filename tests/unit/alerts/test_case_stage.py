"""The cases stage's processor (no Kafka): outbox, crash safety, dead letters, replays."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pytest

from gridsentinel.alerts.categories import Catalog
from gridsentinel.alerts.events import CaseEvent
from gridsentinel.alerts.memory_store import MemoryCaseStore
from gridsentinel.alerts.stage import CaseProcessor, OutboxStore, RecentIds
from gridsentinel.alerts.store import SqlCaseStore
from gridsentinel.alerts.store_protocol import CaseQuery
from gridsentinel.ingest.records import DeadLetter

from .conftest import MONDAY_10H, detection

pytestmark = pytest.mark.unit


class Crash(Exception):
    """Stands for the process dying between the store commit and the produce."""


class Kafka:
    """What was produced to gs.case-events and gs.deadletter; can fail the next produce."""

    def __init__(self) -> None:
        self.events: list[CaseEvent] = []
        self.dead: list[DeadLetter] = []
        self.fail_next = False

    async def publish(self, events: Sequence[CaseEvent]) -> None:
        if self.fail_next:
            self.fail_next = False
            raise Crash("produce never happened")
        self.events.extend(events)

    async def dead_letter(self, letter: DeadLetter, key: bytes | None) -> None:
        self.dead.append(letter)


def processor(store: OutboxStore, catalog: Catalog, kafka: Kafka) -> CaseProcessor:
    return CaseProcessor(
        store,
        catalog,
        {},
        publish=kafka.publish,
        dead_letter=kafka.dead_letter,
        clock=lambda: MONDAY_10H + 60,
    )


def raw(detection_id: str, **overrides: object) -> tuple[bytes, bytes]:
    return b"region", detection(detection_id, **overrides).to_json()


@pytest.fixture(params=["memory", "sqlite"])
def store_factory(request: pytest.FixtureRequest, tmp_path: Path):  # type: ignore[no-untyped-def]
    """Opens the same store again after a 'restart' (a new processor over the same data)."""
    memory = MemoryCaseStore(outbox=True)

    async def open_store() -> OutboxStore:
        if request.param == "memory":
            return memory
        return await SqlCaseStore.open(f"sqlite:///{tmp_path / 'cases.db'}")

    return open_store


async def _close(store: OutboxStore) -> None:
    if isinstance(store, SqlCaseStore):
        await store.close()


def test_events_published_then_dropped_from_outbox(store_factory, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> tuple[list[CaseEvent], list[CaseEvent], int]:
        kafka = Kafka()
        store = await store_factory()
        proc = processor(store, catalog, kafka)
        await proc.process([raw("d1"), raw("d2"), raw("d1")])  # d1 again: a replay
        pending = await store.pending_events()
        cases = await store.list_cases(CaseQuery())
        await _close(store)
        return kafka.events, pending, len(cases)

    events, pending, n_cases = asyncio.run(scenario())
    assert [e.type for e in events] == ["open", "evidence"]
    assert pending == [] and n_cases == 1


def test_crash_after_commit_before_produce_loses_no_event(store_factory, catalog: Catalog) -> None:  # type: ignore[no-untyped-def]
    async def scenario() -> tuple[list[str], list[str], int]:
        kafka = Kafka()
        store = await store_factory()
        kafka.fail_next = True
        with pytest.raises(Crash):
            await processor(store, catalog, kafka).process([raw("d1"), raw("d2")])
        await _close(store)
        assert kafka.events == []
        # Restart: the detections are redelivered (never acked) and the outbox is flushed first.
        store = await store_factory()
        proc = processor(store, catalog, kafka)
        recovered = await proc.flush_outbox()
        await proc.process([raw("d1"), raw("d2")])
        log = [
            f"{e.case_id}:{e.seq}"
            for c in await store.list_cases(CaseQuery())
            for e in await store.case_log(c.case_id)
        ]
        n_cases = len(await store.list_cases(CaseQuery()))
        await _close(store)
        assert recovered == 2
        return [e.event_id for e in kafka.events], log, n_cases

    published, log, n_cases = asyncio.run(scenario())
    assert n_cases == 1
    assert published == log  # every log entry went out exactly once, in order


def test_bad_detections_are_dead_lettered_with_a_reason(catalog: Catalog) -> None:
    async def scenario() -> Kafka:
        kafka = Kafka()
        proc = processor(MemoryCaseStore(outbox=True), catalog, kafka)
        await proc.process(
            [
                (b"k", b"not json"),
                raw("d1", kind="nope", category_code="9999"),
                raw("d2", grid_code="12345"),
                raw("d3"),
            ]
        )
        return kafka

    kafka = asyncio.run(scenario())
    assert [d.reason for d in kafka.dead] == ["bad_record", "unknown_category", "bad_grid_code"]
    assert [e.type for e in kafka.events] == ["open"]


def test_sweep_publishes_escalations_through_the_outbox(catalog: Catalog) -> None:
    async def scenario() -> tuple[list[str], list[CaseEvent]]:
        kafka = Kafka()
        store = MemoryCaseStore(outbox=True)
        await processor(store, catalog, kafka).process([raw("d1")])
        later = CaseProcessor(
            store,
            catalog,
            {},
            publish=kafka.publish,
            dead_letter=kafka.dead_letter,
            clock=lambda: MONDAY_10H + 30 * 86400,
        )
        await later.sweep()
        return [e.type for e in kafka.events], await store.pending_events()

    types, pending = asyncio.run(scenario())
    assert types[0] == "open" and "escalate" in types[1:]
    assert pending == []


def test_recent_ids_drop_repeats_and_stay_bounded() -> None:
    recent = RecentIds(size=2)
    assert [recent.add(x) for x in ("a", "a", "b", "c", "a")] == [True, False, True, True, True]
