"""The alert delivery without Kafka: notified events delivered once, silent ones not decoded, bad ones dead-lettered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.stage import NOTIFY_HEADER, AlertPipeline, AlertRelay
from gridsentinel.core.records import DeadLetter

pytestmark = pytest.mark.unit


class FakeDelivery:
    def __init__(self) -> None:
        self.delivered: list[str] = []
        self.bodies: list[bytes | None] = []

    async def start(self) -> None:
        pass

    async def deliver(self, event: CaseEvent, body: bytes | None = None) -> Any:
        self.delivered.append(event.event_id)
        self.bodies.append(body)

    async def close(self) -> None:
        pass


class SlowForC1(FakeDelivery):
    """Records when each delivery starts and ends; c1's first waits for ``release`` (a slow receiver)."""

    def __init__(self) -> None:
        super().__init__()
        self.started: list[str] = []
        self.finished: list[str] = []
        self.release = asyncio.Event()

    async def deliver(self, event: CaseEvent, body: bytes | None = None) -> Any:
        self.started.append(event.event_id)
        if event.event_id == "c1:1":
            await self.release.wait()
        self.finished.append(event.event_id)


async def refuse_dead_letter(letter: DeadLetter, key: bytes | None) -> None:
    raise AssertionError(letter)


async def ack_nothing(_event: object) -> None:
    pass


def event(event_id: str, notify: bool = True) -> CaseEvent:
    return CaseEvent(event_id=event_id, case_id=event_id.split(":")[0], type="opened", at=1.0, actor="system",
                     grid_code="320582110152101", category_key="0103", status="new", severity="alarm",
                     notify=notify)


def test_notified_events_are_delivered_once_and_bad_ones_dead_lettered() -> None:
    delivery, letters = FakeDelivery(), []

    async def dead_letter(letter: DeadLetter, key: bytes | None) -> None:
        letters.append((letter.reason, letter.origin, key))

    async def play() -> None:
        relay = AlertRelay(delivery, dead_letter=dead_letter, origin="t.gs.case-events")
        pipeline = AlertPipeline(relay, ack_nothing)
        yes, no = {NOTIFY_HEADER: b"1"}, {NOTIFY_HEADER: b"0"}
        await pipeline.submit([(b"c1", event("c1:1").to_json(), yes)], [])
        await pipeline.submit([(b"c1", event("c1:1").to_json(), yes),  # a repeat of the at-least-once stream
                               (b"c2", b"{not json", no),  # not to be told: not even decoded
                               (b"c3", b"{not json", yes),
                               (b"c4", event("c4:1").to_json(), {})], [])  # no header (older producers): decoded
        await pipeline.drain()
        await pipeline.close()

    asyncio.run(play())
    assert delivery.delivered == ["c1:1", "c4:1"]
    assert letters == [("bad_record", "t.gs.case-events", b"c3")]


def test_each_event_is_delivered_with_its_bytes_as_read() -> None:
    """The webhook body is the record's value as it is (a newer producer's extra key kept), not re-encoded."""
    delivery = FakeDelivery()
    newer = event("c2:1").to_json()[:-1] + b',"zz_added_later":1}'

    async def play() -> None:
        pipeline = AlertPipeline(AlertRelay(delivery, dead_letter=refuse_dead_letter), ack_nothing)
        yes = {NOTIFY_HEADER: b"1"}
        await pipeline.submit([(b"c1", event("c1:1").to_json(), yes), (b"c2", newer, yes)], [])
        await pipeline.drain()
        await pipeline.close()

    asyncio.run(play())
    assert delivery.delivered == ["c1:1", "c2:1"]
    assert delivery.bodies == [event("c1:1").to_json(), newer]


def test_a_batch_delivers_cases_side_by_side_each_case_in_order() -> None:
    """One slow receiver round trip for case c1 does not hold up c2's alerts; c1's own stay in order."""
    slow = SlowForC1()
    started, finished, release_c1 = slow.started, slow.finished, slow.release

    async def play() -> None:
        pipeline = AlertPipeline(AlertRelay(slow, dead_letter=refuse_dead_letter), ack_nothing, concurrency=2)
        yes = {NOTIFY_HEADER: b"1"}
        batch = [(b"c1", event("c1:1").to_json(), yes), (b"c2", event("c2:1").to_json(), yes),
                 (b"c1", event("c1:2").to_json(), yes), (b"c2", event("c2:2").to_json(), yes),
                 (b"c2", event("c2:2").to_json(), yes)]  # a repeat: delivered once
        await pipeline.submit(batch, [])
        for _ in range(100):  # let the deliveries run as far as they can
            await asyncio.sleep(0)
        assert finished == ["c2:1", "c2:2"]  # c2 went on while c1 waits
        assert started == ["c1:1", "c2:1", "c2:2"]  # c1:2 waits for c1:1
        release_c1.set()
        await pipeline.drain()
        await pipeline.close()

    asyncio.run(play())
    assert finished == ["c2:1", "c2:2", "c1:1", "c1:2"]


def test_pipeline_starts_the_next_batch_before_a_slow_one_ends_keeps_each_case_in_order_and_acks_in_order() -> None:
    slow = SlowForC1()
    started, finished, release_c1 = slow.started, slow.finished, slow.release
    acked: list[str] = []

    async def ack(name: str) -> None:
        acked.append(name)

    async def settle() -> None:
        for _ in range(100):  # let the deliveries and the acking task run as far as they can
            await asyncio.sleep(0)

    async def play() -> None:
        pipeline = AlertPipeline(AlertRelay(slow, dead_letter=refuse_dead_letter), ack, concurrency=4)
        yes = {NOTIFY_HEADER: b"1"}
        await pipeline.submit([(b"c1", event("c1:1").to_json(), yes), (b"c2", event("c2:1").to_json(), yes)],
                              ["batch1"])
        await pipeline.submit([(b"c3", event("c3:1").to_json(), yes), (b"c1", event("c1:2").to_json(), yes)],
                              ["batch2"])
        await settle()
        assert finished == ["c2:1", "c3:1"]  # the second batch went out while the first one's c1 waits
        assert "c1:2" not in started  # c1's next event waits for its first, across batches
        assert acked == []  # batch 1 is not done, and batch 2 is acked only after it
        release_c1.set()
        await pipeline.drain()
        await pipeline.close()

    asyncio.run(play())
    assert finished == ["c2:1", "c3:1", "c1:1", "c1:2"]
    assert acked == ["batch1", "batch2"]
