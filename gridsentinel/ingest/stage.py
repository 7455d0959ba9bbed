"""Ingest stage: ``gs.readings`` -> InfluxDB, batched, acked only once written (nothing lost); readings
InfluxDB refuses for good (a field type conflict, a point it cannot parse) go to the dead letter with its
reason, and ingest goes on.

Taking and writing overlap: the agent decodes batch N+1 while batch N is written in a thread. Batches
queue (bounded) for one writer, which merges what has queued into one write and acks strictly in the
order the batches were taken, each only after InfluxDB has accepted it.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import faust

from gridsentinel.core.records import DeadLetter, Reading, RecordError

from ..ordered import OrderedQueue, TaskStopped
from .influx import InfluxSink, Refused

if TYPE_CHECKING:
    from gridsentinel.streams.context import StageContext

Batch = tuple[list[Reading], Sequence[Any]]  # decoded readings, the events they came from


class WriterStopped(TaskStopped):
    """The writer was told to stop (shutdown) before it could write everything queued."""


class OrderedWriter(OrderedQueue[Batch]):
    """One writer task behind a bounded queue: batches are written, then acked, in submission order.

    ``write`` blocks (retrying) until the readings are stored and returns False when told to stop;
    ``ack`` is awaited once per event, only after the write that carried it succeeded.
    """

    stopped = WriterStopped

    def __init__(self, write: Callable[[list[Reading]], Awaitable[bool]],
                 ack: Callable[[Any], Awaitable[object]], *, max_points: int, max_pending: int) -> None:
        super().__init__(max_pending)
        self._write = write
        self._ack = ack
        self._max_points = max_points

    async def submit(self, readings: list[Reading], events: Sequence[Any]) -> None:
        """Queue a batch; waits while ``max_pending`` batches are queued (backpressure on the stream)."""
        await self._put((readings, events))

    async def _run(self) -> None:
        queue = self._queue
        while True:
            readings, events = await queue.get()
            batches = [events]
            readings = list(readings)
            # Merge what queued while the last write ran: one big write under load, small ones when quiet.
            while not queue.empty() and len(readings) < self._max_points:
                more, more_events = queue.get_nowait()
                readings.extend(more)
                batches.append(more_events)
            if not await self._write(readings):
                return  # shutting down: these events stay unacked and are read again
            for batch in batches:
                for event in batch:
                    await self._ack(event)


def decode(value: Any, origin: str) -> Reading | DeadLetter:
    """A reading, or the dead letter of a record that is not one (the reason in its detail)."""
    try:
        return Reading.from_json(value)  # None (a tombstone) fails as a TypeError: a dead letter too
    except (RecordError, TypeError) as exc:
        return DeadLetter(
            reason="bad_record", detail=f"{origin}: {exc}", origin=origin, received_at=time.time(),
            payload_b64=base64.b64encode(value or b"").decode(),
        )


def refused_letter(refused: Refused, origin: str) -> DeadLetter:
    """The dead letter of a reading InfluxDB refused for good."""
    reading = refused.reading
    return DeadLetter(
        reason="influx_refused", detail=f"{origin}: {refused.reason}", origin=origin, received_at=time.time(),
        payload_b64=base64.b64encode(reading.to_json()).decode(), device_id=reading.device_id,
    )


@dataclass
class IngestStage:
    """``--stages ingest``: ``gs.readings`` -> InfluxDB, the bucket given or the settings'."""

    bucket: str | None = None

    def register(self, app: faust.App, ctx: StageContext) -> None:
        settings, options, origin = ctx.settings, ctx.options, ctx.names.readings
        sink = InfluxSink(settings.influx_url, settings.influx_token, settings.influx_org,
                          self.bucket or settings.influx_bucket)
        stopping = asyncio.Event()
        ctx.stats["points_written"] = lambda: sink.points_written
        ctx.stats["write_failures"] = lambda: sink.failures
        ctx.stats["points_refused"] = lambda: sink.points_refused
        ctx.stats["latency_ms_hist"] = lambda: sink.latency.counts
        ctx.stats["gateway_to_influx_ms_hist"] = lambda: sink.latency_since_gateway.counts

        async def write(readings: list[Reading]) -> bool:
            # The write blocks (retrying with backoff) until InfluxDB has answered for every reading; only
            # then are the events acked, so a crash or an outage never loses a reading: Kafka keeps the
            # backlog. What InfluxDB refuses for good is dead-lettered (and Kafka has it) before the ack.
            started = time.monotonic()
            refused = await asyncio.to_thread(sink.write, readings, stopping.is_set)
            ctx.metrics.batch("ingest", len(readings), time.monotonic() - started)
            if refused is None:
                return False
            for r in refused:
                sent = await ctx.topics["deadletter"].send(key=r.reading.device_id.encode(),
                                                           value=refused_letter(r, origin).to_json())
                await sent  # on Kafka before the reading's event is acked
            return True

        @app.agent(ctx.topics["readings"], name=f"{options.app_id}.ingest")
        async def ingest(stream: faust.StreamT[Any]) -> None:
            manual = stream.noack()  # type: ignore[attr-defined]  # a faust.Stream; StreamT lacks noack
            writer = OrderedWriter(write, manual.ack, max_points=options.batch_size,
                                   max_pending=options.pending_batches)
            try:
                async for events in manual.noack_take(options.batch_size, within=options.batch_within_s):
                    ctx.metrics.took("ingest", len(events))
                    readings: list[Reading] = []
                    for event in events:
                        one = decode(event.value, origin)
                        if isinstance(one, DeadLetter):
                            await ctx.dead_letter(one, key=event.key)
                        else:
                            readings.append(one)
                    await writer.submit(readings, events)
            except WriterStopped:
                return  # shutting down: what was not written stays unacked for the next worker
            finally:
                await writer.close()

        @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types every receiver (sender, *args)
        async def _stop(app: faust.App, **kwargs: object) -> None:
            stopping.set()
