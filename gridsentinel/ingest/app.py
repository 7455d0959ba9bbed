"""The one Faust app: topics defined once, agents thin (decode, call pure code, emit)."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from dataclasses import dataclass, field

import faust

from ..settings import Settings
from .influx import InfluxSink
from .records import DeadLetter, Reading, RecordError
from .topics import Topics

log = logging.getLogger(__name__)


@dataclass
class WorkerOptions:
    app_id: str = "gridsentinel"
    influx_bucket: str | None = None  # default: settings.influx_bucket
    batch_size: int = 5000
    batch_within_s: float = 0.2
    partitions: int = 4
    stages: tuple[str, ...] = ("ingest",)
    extra: dict[str, object] = field(default_factory=dict)


def create_app(settings: Settings, options: WorkerOptions) -> faust.App:
    topics = Topics(settings.topic_prefix)
    app = faust.App(
        options.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        topic_partitions=options.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=20000,
    )
    readings_topic = app.topic(topics.readings, partitions=options.partitions)
    deadletter_topic = app.topic(topics.deadletter, partitions=options.partitions)

    if "ingest" in options.stages:
        sink = InfluxSink(settings.influx_url, settings.influx_token, settings.influx_org,
                          options.influx_bucket or settings.influx_bucket)
        stopping = asyncio.Event()

        @app.agent(readings_topic, name=f"{options.app_id}.ingest")
        async def ingest(stream: faust.StreamT) -> None:
            manual = stream.noack()
            async for events in manual.noack_take(options.batch_size, within=options.batch_within_s):
                readings: list[Reading] = []
                for event in events:
                    try:
                        readings.append(Reading.from_json(event.value))
                    except (RecordError, TypeError) as exc:
                        await deadletter_topic.send(key=event.key, value=DeadLetter(
                            reason="bad_record", detail=f"{topics.readings}: {exc}", origin=topics.readings,
                            received_at=time.time(), payload_b64=base64.b64encode(event.value or b"").decode(),
                        ).to_json())
                # The write blocks (retrying with backoff) until InfluxDB takes it; only then are the
                # events acked, so a crash or an outage never loses a reading: Kafka keeps the backlog.
                written = await asyncio.to_thread(sink.write, readings, stopping.is_set)
                if not written:
                    return  # shutting down: leave these events unacked for the next worker
                for event in events:
                    await manual.ack(event)

        @app.on_before_shutdown.connect
        async def _close(app: faust.App, **kwargs: object) -> None:
            stopping.set()

    return app
