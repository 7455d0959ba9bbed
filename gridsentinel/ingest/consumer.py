"""The ingest consumer: ``gs.readings`` -> InfluxDB in batches, in a thread of its own, with no stream
framework per record.

One loop: take up to ``batch_size`` records (librdkafka fetches ahead in its own threads), turn them into
line protocol (``lines.LineConverter``), write them in one request (``InfluxSink``, which retries transient
failures forever and singles out what InfluxDB refuses for good), dead-letter what is no reading or what
InfluxDB refused, wait until those dead letters are on Kafka, and only then store the batch's offsets.
librdkafka commits stored offsets every second, on a rebalance and on close: a reading's offset is
committed only after its point is in InfluxDB (or its dead letter in Kafka), so a crash, a kill -9 or an
outage re-reads at most what was not committed, and the points being idempotent (same series and time
overwrite), nothing is stored twice.
"""

from __future__ import annotations

import base64
import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from confluent_kafka import (
    Consumer,
    ConsumerGroupTopicPartitions,
    KafkaError,
    KafkaException,
    Message,
    Producer,
    TopicPartition,
)
from confluent_kafka.admin import AdminClient

from gridsentinel.core.records import DeadLetter

from .influx import InfluxSink
from .lines import LineConverter, WireReading, decode_reading

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """The consumer cannot go on (a fatal Kafka error, a dead letter Kafka refused): the worker exits
    non-zero and its supervisor restarts it; what was not committed is read again."""


def consumer_config(bootstrap: str, group_id: str, client_id: str) -> dict[str, Any]:
    return {
        "bootstrap.servers": bootstrap,
        "group.id": group_id,
        "client.id": client_id,
        "auto.offset.reset": "earliest",
        # at-least-once: an offset is stored (store_offsets) only once its batch is written; librdkafka
        # commits what is stored every second, before giving partitions up in a rebalance, and on close
        "enable.auto.offset.store": False,
        "enable.auto.commit": True,
        "auto.commit.interval.ms": 1000,
        # a killed worker's partitions move to the others within 10 s (librdkafka's default is 45 s)
        "session.timeout.ms": 10_000,
        "heartbeat.interval.ms": 3_000,
        "fetch.wait.max.ms": 50,  # an idle partition's long-poll does not hold a busy one back for long
    }


def dead_letter_producer(bootstrap: str, client_id: str) -> Producer:
    return Producer({
        "bootstrap.servers": bootstrap, "client.id": client_id, "acks": "all", "enable.idempotence": True,
        "linger.ms": 5, "message.timeout.ms": 0,  # never give up: Kafka down means wait, not drop
    })


class BatchIngest:
    """``gs.readings`` -> InfluxDB; :meth:`run` in its own thread until :meth:`stop`."""

    def __init__(self, *, bootstrap: str, group_id: str, topic: str, deadletter_topic: str, sink: InfluxSink,
                 batch_size: int = 5000, within_s: float = 0.05, client_id: str = "gridsentinel-ingest",
                 legacy_group: str | None = None,
                 on_batch: Callable[[int, int, float], None] = lambda took, written, seconds: None) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.topic = topic
        self.deadletter_topic = deadletter_topic
        self.sink = sink
        self.batch_size = batch_size
        self.within_s = within_s
        self.client_id = client_id
        self.legacy_group = legacy_group
        self.on_batch = on_batch
        self.converter = LineConverter()
        self.records = 0  # records taken from Kafka
        self.dead_lettered = 0  # bad records and refused points sent to the dead letter topic
        self.kafka_errors = 0  # transient consumer errors (a broker away, a rebalance) logged and ridden out
        # wall time and this process's CPU time when the first batch was taken and the last one stored:
        # what `gridsentinel bench ingest` times the stage with
        self.first_taken_at = self.last_stored_at = 0.0
        self.cpu_at_first_taken = self.cpu_at_last_stored = 0.0
        self._stop = threading.Event()
        self._failed: list[BaseException] = []

    def stop(self) -> None:
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    def run(self) -> None:
        """Consume, write, dead-letter and store offsets until told to stop; raises :class:`IngestError`
        (or what else went wrong) when it cannot go on."""
        consumer = Consumer(consumer_config(self.bootstrap, self.group_id, self.client_id))
        producer = dead_letter_producer(self.bootstrap, f"{self.client_id}-dl")
        consumer.subscribe([self.topic], on_assign=self._on_assign)
        try:
            while not self._stop.is_set():
                messages = consumer.consume(self.batch_size, self.within_s)
                if messages:
                    self.handle(consumer, producer, messages)
        finally:
            consumer.close()  # commits the offsets stored so far (written batches only)

    # -- one batch ----------------------------------------------------------------------------------
    def handle(self, consumer: Consumer, producer: Producer, messages: Sequence[Message]) -> bool:
        """Write one batch and store its offsets; False when told to stop before it was all written."""
        started = time.monotonic()
        taken: list[Message] = []
        for m in messages:
            err = m.error()
            if err is None:
                taken.append(m)
            elif err.fatal():
                raise IngestError(f"Kafka consumer: fatal error {err}")
            else:  # a broker away, a partition moved: librdkafka retries by itself
                self.kafka_errors += 1
                log.warning("Kafka consumer: %s (retried by the client)", err, extra={"stage": "ingest"})
        if not taken:
            return True
        if not self.first_taken_at:
            self.first_taken_at, self.cpu_at_first_taken = time.time(), time.process_time()
        self.records += len(taken)
        values = [m.value() for m in taken]
        batch = self.converter.convert(values)
        letters = [self._bad_record(taken[i], reason) for i, reason in batch.bad]
        refused = self.sink.write_lines(batch.lines, self._stop.is_set)
        if refused is None:
            return False  # stopping: nothing of this batch is stored; read again by the next owner
        if refused:
            gone = {j for j, _ in refused}
            letters += [self._refused(taken[batch.index[j]], reason) for j, reason in refused]
            self.sink.written([t for j, t in enumerate(batch.observed_at) if j not in gone],
                              [t for j, t in enumerate(batch.received_at) if j not in gone])
        else:
            self.sink.written(batch.observed_at, batch.received_at)
        if letters and not self._send(producer, letters):
            return False
        self._store(consumer, taken)
        self.last_stored_at, self.cpu_at_last_stored = time.time(), time.process_time()
        self.on_batch(len(taken), len(batch.lines) - len(refused), time.monotonic() - started)
        return True

    def _store(self, consumer: Consumer, taken: Sequence[Message]) -> None:
        """Store the next offset of each partition in the batch (committed within a second)."""
        last: dict[tuple[str, int], int] = {}
        for m in taken:
            last[(str(m.topic()), int(m.partition() or 0))] = int(m.offset() or 0)  # set on fetched messages
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        try:
            consumer.store_offsets(offsets=offsets)
        except KafkaException as exc:
            # a partition revoked while its batch was written: its new owner reads it again (idempotent)
            log.info("offsets not stored (%s); the partition's new owner reads those readings again", exc,
                     extra={"stage": "ingest"})

    def _send(self, producer: Producer, letters: list[tuple[bytes | None, DeadLetter]]) -> bool:
        """Produce the dead letters and wait until Kafka has them all; False when told to stop first."""
        failed: list[KafkaError] = []

        def delivered(err: KafkaError | None, _msg: Message) -> None:
            if err is not None:
                failed.append(err)

        for key, letter in letters:
            producer.produce(self.deadletter_topic, key=key, value=letter.to_json(), on_delivery=delivered)
        while producer.flush(1.0):
            if self._stop.is_set():
                return False
        if failed:
            raise IngestError(f"Kafka refused {len(failed)} dead letter(s), e.g. {failed[0]}; the batch is "
                              "not committed and will be read again")
        self.dead_lettered += len(letters)
        return True

    def _bad_record(self, m: Message, reason: str) -> tuple[bytes | None, DeadLetter]:
        value = m.value()
        return m.key(), DeadLetter(
            reason="bad_record", detail=f"{self.topic}: {reason}", origin=self.topic, received_at=time.time(),
            payload_b64=base64.b64encode(value or b"").decode())

    def _refused(self, m: Message, reason: str) -> tuple[bytes | None, DeadLetter]:
        value = m.value() or b""
        reading: WireReading = decode_reading(value)  # it was decoded once already: it is a reading
        return reading.device_id.encode(), DeadLetter(
            reason="influx_refused", detail=f"{self.topic}: {reason}", origin=self.topic, received_at=time.time(),
            payload_b64=base64.b64encode(value).decode(), device_id=reading.device_id)

    # -- first assignment: carry the Faust stage's offsets over ----------------------------------------
    def _on_assign(self, consumer: Consumer, partitions: list[TopicPartition]) -> None:
        """Partitions this group never committed start where the Faust ingest stage (consumer group
        ``legacy_group``, the app id) had got to, instead of re-reading the whole topic."""
        if not self.legacy_group:
            return
        try:
            committed = consumer.committed(partitions, timeout=10)
            fresh = [tp for tp in committed if tp.offset < 0]
            if not fresh:
                return
            legacy = self._legacy_offsets(fresh)
            if not legacy:
                return
            start = [TopicPartition(tp.topic, tp.partition, legacy.get((tp.topic, tp.partition), tp.offset))
                     for tp in committed]
            consumer.assign(start)
            log.warning("ingest: no offsets of group %s yet; starting %d partition(s) where group %s (the Faust "
                        "ingest stage) committed", self.group_id, len(legacy), self.legacy_group,
                        extra={"stage": "ingest"})
        except KafkaException as exc:
            log.warning("ingest: could not read committed offsets (%s); starting from the group's defaults", exc,
                        extra={"stage": "ingest"})

    def _legacy_offsets(self, partitions: list[TopicPartition]) -> dict[tuple[str, int], int]:
        group = self.legacy_group or ""
        admin = AdminClient({"bootstrap.servers": self.bootstrap})
        request = ConsumerGroupTopicPartitions(group,
                                               [TopicPartition(tp.topic, tp.partition) for tp in partitions])
        future = admin.list_consumer_group_offsets([request], request_timeout=10)[group]
        answer = future.result(timeout=15)
        return {(tp.topic, tp.partition): tp.offset for tp in answer.topic_partitions or []
                if tp.error is None and tp.offset >= 0}
