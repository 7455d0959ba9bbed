"""The cases stage's processor (no Kafka): outbox, crash safety, dead letters, replays."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Sequence
from pathlib import Path

import pytest

from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.cases.stage import CaseProcessor, OrderedPublisher, OutboxStore, RecentIds
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.store_protocol import CaseQuery
from gridsentinel.core.records import DeadLetter

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
def store_factory(request: pytest.FixtureRequest, tmp_path: Path):
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


def test_events_published_then_dropped_from_outbox(store_factory, catalog: Catalog) -> None:
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


def test_each_new_case_is_logged_once_at_info(catalog: Catalog, caplog: pytest.LogCaptureFixture) -> None:
    """An operator at ``--loglevel info`` sees one line per case opened, with its ids; evidence adds none."""
    kafka = Kafka()
    with caplog.at_level(logging.INFO, logger="gridsentinel.cases.stage"):
        asyncio.run(processor(MemoryCaseStore(outbox=True), catalog, kafka).process([raw("d1"), raw("d2")]))
    opened = [r for r in caplog.records if "opened" in r.getMessage()]
    assert [e.type for e in kafka.events] == ["open", "evidence"]
    assert len(opened) == 1 and getattr(opened[0], "case_id", None) == kafka.events[0].case_id
    assert getattr(opened[0], "detection_id", None) == "d1"


def test_crash_after_commit_before_produce_loses_no_event(store_factory, catalog: Catalog) -> None:
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


def test_dead_letters_name_the_device(catalog: Catalog) -> None:
    undecodable = detection("d4", device_id="rain-3").to_dict()
    del undecodable["severity"]

    async def scenario() -> Kafka:
        kafka = Kafka()
        proc = processor(MemoryCaseStore(outbox=True), catalog, kafka)
        await proc.process(
            [
                (b"k", b"not json"),
                raw("d1", device_id="rain-3", kind="nope", category_code="0601"),
                raw("d2", device_id="drain-7", grid_code="12345"),
                (b"k", json.dumps(undecodable).encode()),
            ]
        )
        return kafka

    kafka = asyncio.run(scenario())
    assert [(d.reason, d.device_id) for d in kafka.dead] == [
        ("bad_record", None), ("bad_record", "rain-3"), ("unknown_category", "rain-3"),
        ("bad_grid_code", "drain-7")]


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


class SlowKafka:
    """Produces without acknowledging until told: each send's acks are a future the test resolves."""

    def __init__(self) -> None:
        self.sent: list[CaseEvent] = []
        self.pending: list[asyncio.Future[None]] = []
        self.acked: list[str] = []

    async def send(self, events: Sequence[CaseEvent]) -> asyncio.Future[None]:
        self.sent.extend(events)
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.pending.append(future)
        return future

    async def ack(self, item: str) -> None:
        self.acked.append(item)


async def _settle() -> None:
    for _ in range(10):
        await asyncio.sleep(0)


def test_pipelined_batches_are_acked_in_order_only_once_kafka_has_their_events(catalog: Catalog) -> None:
    async def scenario() -> None:
        store = MemoryCaseStore(outbox=True)
        kafka, sink = SlowKafka(), Kafka()
        proc = processor(store, catalog, sink)
        publisher = OrderedPublisher(kafka.send, proc.forget, kafka.ack, max_pending=4)
        first = await proc.apply([raw("d1"), raw("d2")])
        await publisher.submit(first, ["d1", "d2"])
        # The next batch is applied and produced while the first one's events still wait for Kafka.
        second = await proc.apply([raw("d3", grid_code="320582110152103")])
        await publisher.submit(second, ["d3"])
        assert [e.type for e in kafka.sent] == ["open", "evidence", "open"]
        await _settle()
        assert kafka.acked == [] and len(await store.pending_events()) == 3
        kafka.pending[1].set_result(None)  # Kafka has the second batch first: it still waits for the first
        await _settle()
        assert kafka.acked == []
        kafka.pending[0].set_result(None)
        await publisher.drain()
        assert kafka.acked == ["d1", "d2", "d3"]
        assert await store.pending_events() == []
        await publisher.close()

    asyncio.run(scenario())


def test_a_failed_produce_stops_the_pipeline_and_keeps_its_events_in_the_outbox(catalog: Catalog) -> None:
    async def scenario() -> None:
        store = MemoryCaseStore(outbox=True)
        kafka, sink = SlowKafka(), Kafka()
        proc = processor(store, catalog, sink)
        publisher = OrderedPublisher(kafka.send, proc.forget, kafka.ack, max_pending=4)
        await publisher.submit(await proc.apply([raw("d1")]), ["d1"])
        await publisher.submit(await proc.apply([raw("d2")]), ["d2"])
        kafka.pending[0].set_exception(Crash("broker gone"))
        with pytest.raises(Crash):
            await publisher.drain()
        with pytest.raises(Crash):
            await publisher.submit(await proc.apply([raw("d3")]), ["d3"])
        assert kafka.acked == []
        assert [e.type for e in await store.pending_events()] == ["open", "evidence", "evidence"]
        await publisher.close()
        # A restart publishes them from the outbox; the redelivered detections change nothing.
        later = processor(store, catalog, sink)
        assert await later.flush_outbox() == 3
        assert await later.process([raw("d1"), raw("d2"), raw("d3")]) == []

    asyncio.run(scenario())


def test_published_events_leave_the_outbox_together_once_a_spell_even_when_no_batch_follows(
        catalog: Catalog) -> None:
    async def scenario() -> None:
        store = MemoryCaseStore(outbox=True)
        kafka, sink = SlowKafka(), Kafka()
        proc = processor(store, catalog, sink)
        forgets: list[list[str]] = []

        async def forget(ids: Sequence[str]) -> None:
            forgets.append(list(ids))
            await proc.forget(ids)

        publisher = OrderedPublisher(kafka.send, forget, kafka.ack, forget_every_s=0.5)
        await publisher.submit(await proc.apply([raw("d1")]), ["d1"])
        await publisher.submit(await proc.apply([raw("d2", grid_code="320582110152103")]), ["d2"])
        for future in kafka.pending:
            future.set_result(None)
        await _settle()
        # acked as soon as Kafka has the events; the outbox keeps them for the rest of the spell
        assert kafka.acked == ["d1", "d2"]
        assert forgets == [] and len(await store.pending_events()) == 2
        await asyncio.sleep(0.9)  # no batch follows: the spell ends all the same
        assert [len(ids) for ids in forgets] == [2]  # both batches' events in one delete
        assert await store.pending_events() == []
        # a batch after that starts a new spell; close() drops what it published
        await publisher.submit(await proc.apply([raw("d3", grid_code="320582110152104")]), ["d3"])
        kafka.pending[-1].set_result(None)
        await _settle()
        assert kafka.acked == ["d1", "d2", "d3"] and len(await store.pending_events()) == 1
        await publisher.close()
        assert [len(ids) for ids in forgets] == [2, 1] and await store.pending_events() == []

    asyncio.run(scenario())


class SlowDisk:
    """A store's ``durable()`` that returns only when the test says the disk has flushed (or fails once)."""

    def __init__(self) -> None:
        self.calls: list[asyncio.Future[None]] = []
        self.fail_next = False

    async def durable(self) -> None:
        if self.fail_next:
            self.fail_next = False
            raise OSError("connection refused")
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.calls.append(future)
        await future


def test_with_async_commits_a_batch_is_acked_only_after_a_durable_call_that_began_after_kafka_had_it(
        catalog: Catalog) -> None:
    async def scenario() -> None:
        store = MemoryCaseStore(outbox=True)
        kafka, sink, disk = SlowKafka(), Kafka(), SlowDisk()
        proc = processor(store, catalog, sink)
        now = [100.0]
        publisher = OrderedPublisher(kafka.send, proc.forget, kafka.ack, max_pending=8, durable=disk.durable,
                                     durable_every_s=0.05, clock=lambda: now[0])
        await publisher.submit(await proc.apply([raw("d1")]), ["d1"])
        await _settle()
        assert disk.calls == []  # Kafka does not have the events yet: no call, no ack
        kafka.pending[0].set_result(None)
        await _settle()
        assert len(disk.calls) == 1 and kafka.acked == []  # the events went out; the disk has not flushed
        # batches committed while the call is under way wait for the next one, even once Kafka has them
        await publisher.submit(await proc.apply([raw("d2", grid_code="320582110152103")]), ["d2"])
        await publisher.submit(await proc.apply([raw("d3", grid_code="320582110152104")]), ["d3"])
        for future in kafka.pending[1:]:
            future.set_result(None)
        disk.calls[0].set_result(None)
        await _settle()
        assert kafka.acked == ["d1"]
        # the next call waits until durable_every_s after the last one began, then covers both batches
        now[0] += 0.01
        await asyncio.sleep(0.08)
        assert len(disk.calls) == 2 and kafka.acked == ["d1"]
        disk.fail_next = True  # a call that fails is made again; nothing is acked meanwhile
        disk.calls[1].set_result(None)
        await _settle()
        assert kafka.acked == ["d1", "d2", "d3"]
        await publisher.submit(await proc.apply([raw("d4", grid_code="320582110152105")]), ["d4"])
        kafka.pending[-1].set_result(None)
        now[0] += 1.0
        await _settle()
        assert kafka.acked == ["d1", "d2", "d3"]  # the call failed (OSError): tried again a second later
        await asyncio.sleep(1.1)
        assert len(disk.calls) == 3
        disk.calls[2].set_result(None)
        await publisher.drain()
        assert kafka.acked == ["d1", "d2", "d3", "d4"]
        await publisher.close()

    asyncio.run(scenario())


def test_batches_with_no_events_are_acked_too(catalog: Catalog) -> None:
    async def scenario() -> list[str]:
        kafka = SlowKafka()
        publisher = OrderedPublisher(kafka.send, MemoryCaseStore(outbox=True).mark_published, kafka.ack)
        await publisher.submit([], ["replayed", "bad"])
        await publisher.drain()
        await publisher.close()
        return kafka.acked

    assert asyncio.run(scenario()) == ["replayed", "bad"]


def test_event_bytes_are_the_events_json_with_keys_sorted_at_every_level(catalog: Catalog) -> None:
    async def scenario() -> list[CaseEvent]:
        proc = processor(MemoryCaseStore(outbox=True), catalog, Kafka())
        return await proc.apply([raw("d1"), raw("d2", severity="critical", source="camera")])

    events = asyncio.run(scenario())
    assert len(events) >= 2
    def sorted_everywhere(value: object) -> bool:
        if isinstance(value, dict):
            return list(value) == sorted(value) and all(sorted_everywhere(v) for v in value.values())
        return all(sorted_everywhere(v) for v in value) if isinstance(value, list) else True

    for e in events:
        doc = json.loads(e.to_json())
        assert doc == json.loads(json.dumps(e.to_dict()))  # the same JSON as the event's fields
        assert sorted_everywhere(doc)
