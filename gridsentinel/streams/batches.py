"""Kafka records in batches for an asyncio stage: librdkafka underneath, no stream framework per record.

A stage that needs no Faust table reads its topic with :class:`KafkaBatches`: one librdkafka consumer,
called from one thread of its own, hands the event loop whatever is waiting (up to ``max_batch`` records)
as soon as there is one record, and stores a batch's offsets only when the stage says it is done with
it (:meth:`KafkaBatches.ack`). librdkafka commits stored offsets every second, before giving partitions
up in a rebalance and on close, so a crash or a ``kill -9`` reads again at most what was not done: at
least once, as the stage's Faust agent was.

Why not Faust: for every record Faust makes an event, runs it through its stream buffers, acks it and
tracks offsets in Python, and its aiokafka consumer decodes fetches in Python too. In the alerts worker
that was ~40 % of its CPU at 800 webhooks/s (py-spy, ``gridsentinel bench cases``, issue 15); here a
record costs a few µs. The ingest stage (``gridsentinel.ingest.consumer``) made the same move first.

:func:`consumer_config` and :func:`carry_over` are shared with the ingest consumer.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, ClassVar

import mode
from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaException,
    Message,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

log = logging.getLogger(__name__)

LAG_EVERY_S = 5.0  # consumer lag sampling interval (for /metrics)


class ConsumerFailed(RuntimeError):
    """A fatal Kafka consumer error: the worker exits non-zero and its supervisor restarts it; what was
    not committed is read again."""


def consumer_config(bootstrap: str, group_id: str, client_id: str) -> dict[str, Any]:
    """A consumer whose offsets are stored by the stage once a record is done, and committed by librdkafka."""
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "client.id": client_id,
        "auto.offset.reset": "earliest",
        # at-least-once: an offset is stored (store_offsets) only once its record is done; librdkafka
        # commits what is stored every second, before giving partitions up in a rebalance, and on close
        "enable.auto.offset.store": False,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        # a killed worker's partitions move to the others within 10 s (librdkafka's default is 45 s)
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 3_000,
        "fetch.wait.max.ms": 50,  # an idle partition's long-poll does not hold a busy one back for long
    }


def carry_over(consumer: Consumer, partitions: list[TopicPartition], *, bootstrap: str, group_id: str,
               legacy_groups: Sequence[str], what: str) -> None:
    """An ``on_assign`` step: partitions ``group_id`` never committed start where the groups that read the
    topic before (``legacy_groups``, Faust app ids) had got to, the furthest of them, instead of at the
    topic's start (which would write, or deliver, everything again). Nothing to do once the group has
    committed, or when no legacy group ever did (a new deployment reads from the start)."""
    if not legacy_groups:
        return
    try:
        committed = consumer.committed(partitions, timeout=10)
        fresh = [TopicPartition(tp.topic, tp.partition) for tp in committed if tp.offset < 0]
        if not fresh:
            return
        admin = AdminClient({"bootstrap.servers": bootstrap})
        legacy: dict[tuple[str, int], int] = {}
        for group in legacy_groups:
            request = ConsumerGroupTopicPartitions(group, fresh)
            answer = admin.list_consumer_group_offsets([request], request_timeout=10)[group].result(timeout=15)
            for tp in answer.topic_partitions or []:
                if tp.error is None and tp.offset >= 0:
                    legacy[(tp.topic, tp.partition)] = max(tp.offset, legacy.get((tp.topic, tp.partition), 0))
        if not legacy:
            return
        consumer.assign([TopicPartition(tp.topic, tp.partition, legacy.get((tp.topic, tp.partition), tp.offset))
                         for tp in committed])
        log.warning("%s: no offsets of group %s yet; starting %d partition(s) where %s had got to", what,
                    group_id, len(legacy), " / ".join(legacy_groups), extra={"stage": what})
    except KafkaException as exc:
        log.warning("%s: could not read committed offsets (%s); starting from the group's defaults", what, exc,
                    extra={"stage": what})


def store_pending(consumer: Consumer, pending: deque[list[TopicPartition]], what: str) -> None:
    """Store the offsets queued in ``pending`` (batches done, in order); librdkafka commits them within a second.
    Call it on the consuming thread: ``store_offsets`` from another thread blocked for good while this one was in
    ``consume``. A partition revoked meanwhile is skipped: its new owner reads those records again."""
    while pending:
        offsets = pending.popleft()
        try:
            consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:
            log.info("offsets not stored (%s); the partition's new owner reads those records again", exc,
                     extra={"stage": what})


def sample_lag(consumer: Consumer) -> dict[tuple[str, int], int] | None:
    """Records not committed yet per assigned partition (the high watermark as last fetched, less the
    committed offset); None when Kafka does not answer."""
    try:
        committed = consumer.committed(consumer.assignment(), timeout=5)
    except KafkaException:
        return None
    lag: dict[tuple[str, int], int] = {}
    for tp in committed:
        low, high = consumer.get_watermark_offsets(tp, cached=True) or (-1, -1)
        if high < 0:
            continue  # not fetched yet
        lag[(tp.topic, tp.partition)] = max(0, high - (tp.offset if tp.offset >= 0 else max(low, 0)))
    return lag


@dataclass(frozen=True, slots=True)
class Record:
    key: bytes | None
    value: bytes | None
    headers: Mapping[str, bytes]
    topic: str
    partition: int
    offset: int


def offsets_after(records: Sequence[Record]) -> list[TopicPartition]:
    """The offsets to commit once ``records`` (in their partitions' order) are done: each partition's last
    record's offset + 1.

    >>> [(tp.partition, tp.offset) for tp in offsets_after([Record(None, b"", {}, "t", 0, 7),
    ...                                                      Record(None, b"", {}, "t", 1, 3),
    ...                                                      Record(None, b"", {}, "t", 0, 8)])]
    [(0, 9), (1, 4)]
    """
    last: dict[tuple[str, int], int] = {}
    for r in records:
        last[(r.topic, r.partition)] = r.offset
    return [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]


class KafkaBatches:
    """``async for records in batches.batches()``: each batch is what waited when the last one was taken
    (up to ``max_batch``), handed over as soon as one record is there. :meth:`ack` a batch when it is done;
    batches must be acked in the order they were taken (each ack stores offsets up to its batch's last
    records). :meth:`close` commits what was acked.

    ``min_interval_s``: batches start at least this far apart. A record that comes alone, after a quiet
    spell, goes at once; under a steady stream a short batch waits for the rest of the interval and takes
    what came meanwhile. Without it, detections arriving one by one at a thousand a second made batches of
    one to three in the cases stage, a store transaction of ~4 ms of CPU each: its worker spent ~0.6 core
    at any rate from 300 a second up (issue 15's latency at half the capacity). A full batch (a backlog)
    never waits.

    Every call into librdkafka happens on one thread of this object's (``confluent-kafka``'s
    ``store_offsets`` called from another thread while this one was in ``consume`` blocked for good,
    ingest stage). ``legacy_groups``: where partitions this group never committed start
    (:func:`carry_over`).
    """

    def __init__(self, *, bootstrap: str, group_id: str, topic: str, client_id: str, max_batch: int = 500,
                 legacy_groups: Sequence[str] = (), idle_s: float = 0.5, min_interval_s: float = 0.0) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.topic = topic
        self.client_id = client_id
        self.max_batch = max_batch
        self.legacy_groups = tuple(legacy_groups)
        self.idle_s = idle_s  # longest wait in one call when nothing comes (then acks are stored anyway)
        self.min_interval_s = min_interval_s
        self._last_batch = -1e9  # monotonic time the last batch was taken
        self.records = 0  # records handed to the stage
        self.kafka_errors = 0  # transient consumer errors (a broker away, a rebalance) logged and ridden out
        self.lag: dict[tuple[str, int], int] = {}
        self._lag_at = 0.0
        self._acked: deque[list[TopicPartition]] = deque()
        self._consumer: Consumer | None = None
        self._thread = ThreadPoolExecutor(1, thread_name_prefix=client_id)
        self._closed = False

    async def batches(self) -> AsyncIterator[list[Record]]:
        loop = asyncio.get_running_loop()
        while not self._closed:
            messages = await loop.run_in_executor(self._thread, self._take)
            records = self._records(messages)
            if records:
                self.records += len(records)
                yield records

    def ack(self, records: Sequence[Record]) -> None:
        """``records`` (a batch, or the last part of one) are done: their offsets are stored at the next take
        and committed within a second after."""
        self._acked.append(offsets_after(records))

    def ack_offsets(self, offsets: list[TopicPartition]) -> None:
        """:meth:`ack` of a batch whose offsets were taken with :func:`offsets_after` (so that the records
        themselves need not be held until the ack)."""
        self._acked.append(offsets)

    async def close(self) -> None:
        """Store what was acked, commit it and leave the group (its partitions go to the others at once)."""
        if self._closed:
            return
        self._closed = True
        await asyncio.get_running_loop().run_in_executor(self._thread, self._close)
        self._thread.shutdown(wait=False)

    # -- on the consumer's thread ----------------------------------------------------------------------
    def _take(self) -> list[Message]:
        if self._closed:
            return []  # a take queued behind close(): no new consumer
        consumer = self._consumer
        if consumer is None:
            consumer = self._consumer = Consumer({
                **consumer_config(self.bootstrap, self.group_id, self.client_id),
                # librdkafka prefetches up to 64 MB by default: an alerts worker's memory then grew by ~20 MB
                # over a 5,000-case run; 4 MB is thousands of detections or case events, enough to never wait
                "queued.max.messages.kbytes": 4096,
            })
            consumer.subscribe([self.topic], on_assign=self._on_assign)
        store_pending(consumer, self._acked, self.client_id)
        if time.monotonic() - self._lag_at > LAG_EVERY_S:
            self._lag_at = time.monotonic()
            self.lag = sample_lag(consumer) or self.lag
        messages: list[Message] = consumer.consume(self.max_batch, 0)  # what is there now, without waiting
        if not messages:
            first = consumer.poll(self.idle_s)  # nothing: wait for one record
            if first is None:
                return []
            messages = [first, *consumer.consume(self.max_batch - 1, 0)]
        wait = self._last_batch + self.min_interval_s - time.monotonic()
        if wait > 0 and len(messages) < self.max_batch:  # a short batch soon after the last: fill it up
            time.sleep(wait)
            messages += consumer.consume(self.max_batch - len(messages), 0)
        self._last_batch = time.monotonic()
        return messages

    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        carry_over(consumer, partitions, bootstrap=self.bootstrap, group_id=self.group_id,
                   legacy_groups=self.legacy_groups, what=self.client_id)

    def _close(self) -> None:
        consumer, self._consumer = self._consumer, None
        if consumer is not None:
            store_pending(consumer, self._acked, self.client_id)
            consumer.close()

    def _records(self, messages: Sequence[Message]) -> list[Record]:
        records: list[Record] = []
        for m in messages:
            err = m.error()
            if err is None:
                raw = m.headers() or []
                pairs = raw.items() if isinstance(raw, dict) else raw
                headers = {name: value for name, value in pairs if isinstance(value, bytes)}
                records.append(Record(m.key(), m.value(), headers, m.topic() or "", m.partition() or 0,
                                      m.offset() or 0))
            elif err.fatal():
                raise ConsumerFailed(f"Kafka consumer {self.client_id}: fatal error {err}")
            else:  # a broker away, a partition moved, the end of a partition: librdkafka goes on by itself
                self.kafka_errors += 1
                log.warning("Kafka consumer %s: %s (retried by the client)", self.client_id, err,
                            extra={"stage": self.client_id})
        return records


class LoopService(mode.Service):
    """A stage's consuming loop, as a service of the worker's app: ``body`` runs on the worker's event
    loop from start to stop; should it fail (or end by itself), the worker crashes, exits non-zero and its
    supervisor restarts it. At stop the loop is cancelled, then ``finish`` runs (commit what was done,
    close stores and producers). Made with :func:`loop_service` (Faust instantiates the class itself)."""

    steps: ClassVar[tuple[Callable[[], Coroutine[Any, Any, None]], Callable[[], Awaitable[None]]]]  # body, finish

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # loop and beacon, from Faust
        self._body: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        self._body = asyncio.create_task(self.steps[0]())

    @mode.Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            task = self._body
            if task is not None and task.done() and not task.cancelled():
                task.result()  # raises the loop's error: the app crashes with it
                raise RuntimeError(f"{self.shortlabel}: the loop stopped by itself")
            await self.sleep(0.5)

    async def on_stop(self) -> None:
        task, self._body = self._body, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception as exc:  # stopping anyway: say what it was
                log.warning("%s: the loop ended with %r", self.shortlabel, exc)
        await self.steps[1]()


def loop_service(name: str, body: Callable[[], Coroutine[Any, Any, None]],
                 finish: Callable[[], Awaitable[None]]) -> type[LoopService]:
    """A :class:`LoopService` class running ``body``, then ``finish`` at stop, to pass to ``app.service``."""
    return type(name, (LoopService,), {"steps": (body, finish)})
