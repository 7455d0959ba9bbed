"""The ingest stage's ordered writer: a batch is acked only after its write, and acks keep their order."""

from __future__ import annotations

import asyncio

import pytest

from gridsentinel.core.records import Reading
from gridsentinel.ingest.stage import OrderedWriter, WriterStopped

pytestmark = pytest.mark.unit


def reading(seq: int) -> Reading:
    return Reading(device_id="d1", metric="water_level", unit="m", value=0.5, observed_at=1.0e9 + seq,
                   seq=seq)


class FakeSink:
    """Records what was written and what was acked, in one log, so order can be checked."""

    def __init__(self, fail_after: int | None = None) -> None:
        self.log: list[tuple[str, object]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.fail_after = fail_after
        self.writes = 0

    async def write(self, readings: list[Reading]) -> bool:
        await self.release.wait()
        self.writes += 1
        if self.fail_after is not None and self.writes > self.fail_after:
            return False
        self.log.append(("write", [r.seq for r in readings]))
        return True

    async def ack(self, event: object) -> None:
        self.log.append(("ack", event))


def test_every_event_is_acked_after_the_write_that_carried_it_in_order() -> None:
    async def scenario() -> FakeSink:
        sink = FakeSink()
        writer = OrderedWriter(sink.write, sink.ack, max_points=100, max_pending=4)
        sink.release.clear()  # hold the first write so later batches queue behind it
        for start in range(0, 12, 3):
            await writer.submit([reading(s) for s in range(start, start + 3)], list(range(start, start + 3)))
        sink.release.set()
        while len([e for e in sink.log if e[0] == "ack"]) < 12:
            await asyncio.sleep(0.001)
        await writer.close()
        return sink

    sink = asyncio.run(scenario())
    acks = [e for kind, e in sink.log if kind == "ack"]
    assert acks == list(range(12))
    written: set[object] = set()
    for kind, item in sink.log:
        if kind == "write":
            written.update(item)  # type: ignore[arg-type]
        else:
            assert item in written  # acked only once written
    # Batches that queued behind a slow write are merged into fewer writes.
    assert len([1 for kind, _ in sink.log if kind == "write"]) < 4


def test_merged_writes_stay_within_max_points() -> None:
    async def scenario() -> FakeSink:
        sink = FakeSink()
        writer = OrderedWriter(sink.write, sink.ack, max_points=5, max_pending=10)
        sink.release.clear()
        for start in range(0, 20, 2):
            await writer.submit([reading(s) for s in range(start, start + 2)], [start, start + 1])
        sink.release.set()
        while len([e for e in sink.log if e[0] == "ack"]) < 20:
            await asyncio.sleep(0.001)
        await writer.close()
        return sink

    sink = asyncio.run(scenario())
    sizes = [len(item) for kind, item in sink.log if kind == "write"]  # type: ignore[arg-type]
    assert sum(sizes) == 20
    assert max(sizes) <= 6  # a batch is never split, so a merge may exceed max_points by < one batch


def test_a_stopped_write_leaves_its_events_unacked_and_stops_taking() -> None:
    async def scenario() -> tuple[FakeSink, bool]:
        sink = FakeSink(fail_after=1)
        writer = OrderedWriter(sink.write, sink.ack, max_points=100, max_pending=1)
        stopped = False
        try:
            for start in range(0, 30, 3):
                batch = range(start, start + 3)
                await writer.submit([reading(s) for s in batch], list(batch))
                await asyncio.sleep(0.01)
        except WriterStopped:
            stopped = True
        await writer.close()
        return sink, stopped

    sink, stopped = asyncio.run(scenario())
    assert stopped
    assert [e for kind, e in sink.log if kind == "ack"] == [0, 1, 2]
