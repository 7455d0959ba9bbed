"""Ingest stage: ``gs.readings`` -> InfluxDB, batched, acked only once written (nothing lost)."""

from __future__ import annotations

import asyncio
import base64
import time
from typing import TYPE_CHECKING

import faust

from .influx import InfluxSink
from .records import DeadLetter, Reading, RecordError

if TYPE_CHECKING:
    from .app import StageContext


def register(app: faust.App, ctx: StageContext) -> None:
    settings, options = ctx.settings, ctx.options
    sink = InfluxSink(settings.influx_url, settings.influx_token, settings.influx_org,
                      options.influx_bucket or settings.influx_bucket)
    stopping = asyncio.Event()
    ctx.stats["points_written"] = lambda: sink.points_written
    ctx.stats["write_failures"] = lambda: sink.failures
    ctx.stats["latency_ms_hist"] = lambda: sink.latency.counts
    ctx.stats["gateway_to_influx_ms_hist"] = lambda: sink.latency_since_gateway.counts

    @app.agent(ctx.topics["readings"], name=f"{options.app_id}.ingest")
    async def ingest(stream: faust.StreamT) -> None:
        manual = stream.noack()
        async for events in manual.noack_take(options.batch_size, within=options.batch_within_s):
            readings: list[Reading] = []
            for event in events:
                try:
                    readings.append(Reading.from_json(event.value))
                except (RecordError, TypeError) as exc:
                    await ctx.dead_letter(DeadLetter(
                        reason="bad_record", detail=f"{ctx.names.readings}: {exc}", origin=ctx.names.readings,
                        received_at=time.time(), payload_b64=base64.b64encode(event.value or b"").decode(),
                    ), key=event.key)
            # The write blocks (retrying with backoff) until InfluxDB takes it; only then are the events
            # acked, so a crash or an outage never loses a reading: Kafka keeps the backlog.
            written = await asyncio.to_thread(sink.write, readings, stopping.is_set)
            if not written:
                return  # shutting down: leave these events unacked for the next worker
            for event in events:
                await manual.ack(event)

    @app.on_before_shutdown.connect
    async def _stop(app: faust.App, **kwargs: object) -> None:
        stopping.set()
