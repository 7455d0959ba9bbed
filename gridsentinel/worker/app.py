"""The one Faust app: topics defined once here; each stage registers its agents from its own module.

Stages: ``ingest`` (readings -> InfluxDB, in ingest/stage.py). Other stages (detection, cases,
frames) register the same way: a function ``register(app, ctx)`` that adds agents, tables and timers.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import aiokafka
import aiokafka.errors
import faust
from aiokafka.structs import OffsetAndMetadata
from faust.transport.drivers import aiokafka as faust_aiokafka
from mode.services import WaitResults

from gridsentinel.core.records import DeadLetter
from gridsentinel.core.topics import Topics
from gridsentinel.settings import Settings

log = logging.getLogger(__name__)

# stage name -> module with register(app, ctx)
STAGES: dict[str, str] = {
    "ingest": "gridsentinel.ingest.stage",
    "detect": "gridsentinel.detectors.stage",
    "cases": "gridsentinel.cases.stage",
    "live-config": "gridsentinel.engineering.live_config",
    "shadow": "gridsentinel.engineering.shadow",
    "frames": "gridsentinel.detectors.frames_stage",
}


@dataclass
class WorkerOptions:
    app_id: str = "gridsentinel"
    influx_bucket: str | None = None  # default: settings.influx_bucket
    batch_size: int = 5000
    batch_within_s: float = 0.05
    pending_batches: int = 8  # batches taken but not yet written (the ingest stage writes while taking)
    fetch_max_wait_ms: int = 50  # Kafka fetch long-poll; Faust hard-codes 1500 (see KafkaTransport)
    partitions: int = 4
    stages: tuple[str, ...] = ("ingest",)
    stats_file: str | None = None  # when set, each stage's counters are written here each second
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageContext:
    """What every stage gets: settings, options, the topics (created once) and a stats registry."""

    settings: Settings
    options: WorkerOptions
    names: Topics
    topics: dict[str, faust.TopicT]
    stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # shared objects, e.g. "detection_engine"

    async def dead_letter(self, letter: DeadLetter, key: bytes | None = None) -> None:
        await self.topics["deadletter"].send(key=key, value=letter.to_json())


def create_app(settings: Settings, options: WorkerOptions) -> faust.App:
    names = Topics(settings.topic_prefix)
    (settings.run_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        options.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        datadir=str(settings.run_dir / "faust" / options.app_id),
        topic_partitions=options.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        producer_acks=-1,
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=20000,
    )
    app.transport = KafkaTransport(app.conf.broker_consumer, app,
                                       fetch_max_wait_ms=options.fetch_max_wait_ms)
    topics = {
        "readings": app.topic(names.readings, partitions=options.partitions),
        "frames": app.topic(names.frames, partitions=options.partitions),
        "device_status": app.topic(names.device_status, partitions=options.partitions),
        "detections": app.topic(names.detections, partitions=options.partitions),
        "case_events": app.topic(names.case_events, partitions=options.partitions),
        "deadletter": app.topic(names.deadletter, partitions=options.partitions),
    }
    ctx = StageContext(settings=settings, options=options, names=names, topics=topics)
    for stage in options.stages:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
        importlib.import_module(STAGES[stage]).register(app, ctx)

    if options.stats_file:
        stats_path = options.stats_file

        @app.timer(1.0)
        async def write_stats() -> None:
            body = json.dumps({"time": time.time(), **{k: v() if callable(v) else v
                                                       for k, v in ctx.stats.items()}})
            _atomic_write(stats_path, body)

    return app


class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its Fetcher in start(), so setting it before start is enough.
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        return consumer

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        """Commit, and treat a Kafka error as "not committed yet" instead of crashing the worker.

        Faust 0.15 calls ``crash()`` on any commit error but "already rebalanced"; the consumer has no
        supervisor, so the crash stops the whole worker. Around a broker restart the group rejoins and
        aiokafka raises ``IllegalStateError("No partitions assigned")`` (or a non-retriable
        ``KafkaError``) for a commit made meanwhile. An offset that is not committed is only read again
        (points are idempotent), and the next commit carries it, so the worker keeps running.
        """
        consumer = self._ensure_consumer()
        assigned = self.assignment()
        committable = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        try:
            self.tp_last_committed_at.update({tp: time.monotonic() for tp in committable})
            await consumer.commit({faust_aiokafka.ensure_aiokafka_TP(tp): OffsetAndMetadata(offset, "")
                                   for tp, offset in committable.items()})
        except (aiokafka.errors.KafkaError, aiokafka.errors.IllegalStateError) as exc:
            log.warning("Kafka commit not done (%r); the offsets stay uncommitted until the next commit",
                        exc)
            return False
        return True


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        """Stop the flow, then seek the partitions to their committed offsets.

        After a table recovery, Faust 0.15 resumes the stream partitions while the flow is still on (it was
        turned on to read the changelogs), then seeks, then clears the stream buffers
        (``flow_control.resume()``). Records fetched in between are queued for the agents and move the read
        offset past themselves; when the fetcher is still handing out that batch after the seek, the read
        offset ends past the refetched records, the clear drops the queued ones, and they never come back:
        the worker sits idle on its backlog until the next rebalance, its commits stuck behind the gap
        (faust-streaming/faust#596). With the flow stopped first, the fetcher stops at the next record, the
        seek's read offsets are the last word, and whatever the clear drops is fetched again (at least once;
        the recovery turns the flow back on after the clear).
        """
        self.stop_flow()
        await super().perform_seek()

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """Deliver a fetched message without four asyncio tasks when it cannot block.

        Faust's fetch loop (``Consumer._drain_messages``, the only caller) hands every message to the
        streams with ``wait_first(callback(message), suspend_flow.wait())``: a race, so that a rebalance
        can interrupt a delivery stuck on a full stream buffer. The race makes four tasks per message,
        about a third of a worker's CPU at full load. The delivery can block only while flow control is
        suspended (a rebalance), on a full buffer, or on a full producer buffer; when the flow is active
        and no stream buffer is full the callback is awaited directly, and otherwise the race runs as
        before. About 1.5x the readings/s per ingest worker (docs/ingest.md).
        """
        if (len(coros) == 2 and timeout is None and not self.suspend_flow.is_set()
                and self.app.flow_control.is_active()
                and self.app.producer.buffer.size <= self.app.producer.buffer.max_messages
                and not any(chan.queue.full() for chan in self.app.topics)):
            delivery, suspended = coros
            suspended.close()  # the un-awaited suspend_flow.wait()
            return WaitResults([delivery], [await delivery], False)
        return await super().wait_first(*coros, timeout=timeout)


class KafkaTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with a settable fetch long-poll, commit errors that do not stop the worker
    (``_ConsumerThread._commit``), deliveries without the per-message race when nothing can block
    (``_Consumer.wait_first``) and no records lost around the seek after a recovery (``_Consumer.perform_seek``).

    Faust 0.15 passes ``fetch_max_wait_ms=1500`` to aiokafka with no setting to change it. aiokafka
    sends one fetch per broker at a time, and a partition whose records were just consumed is not
    fetched again until the fetch in flight for the other partitions returns: with one broker and an
    idle partition in that fetch, a busy partition waits up to the whole long-poll (1.5 s) each time.
    """

    Consumer = _Consumer

    def __init__(self, url: Any, app: faust.App, *, fetch_max_wait_ms: int) -> None:
        super().__init__(url, app)
        self.fetch_max_wait_ms = fetch_max_wait_ms


def _atomic_write(path: str, body: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(body)
    os.replace(tmp, path)
