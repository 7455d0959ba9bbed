"""The ingest consumer: ``gs.readings`` -> InfluxDB in batches, in a thread of its own, with no stream
framework per record.

Two threads and a short queue between them. The consuming thread takes up to ``batch_size`` records
(librdkafka fetches ahead in its own threads) and turns them into line protocol (``lines.LineConverter``);
the writer thread writes each batch in one request (``InfluxSink``, which retries transient failures forever
and singles out what InfluxDB refuses for good), dead-letters what is no reading or what InfluxDB refused,
waits until those dead letters are on Kafka, and only then stores the batch's offsets, batch after batch
in the order they were taken. Taking batch N+1 overlaps writing batch N; a slow or absent InfluxDB fills the
queue and the consuming thread waits (Kafka keeps the backlog).
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
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from queue import Empty, Full, Queue

from confluent_kafka import Consumer, KafkaError, Message, Producer, TopicPartition

from gridsentinel.core.records import DeadLetter
from gridsentinel.streams.batches import LAG_EVERY_S, carry_over, consumer_config, sample_lag, store_pending

from .influx import InfluxSink
from .lines import Converted, LineConverter, WireReading, decode_reading

log = logging.getLogger(__name__)


class IngestError(RuntimeError):
    """The consumer cannot go on (a fatal Kafka error, a dead letter Kafka refused): the worker exits
    non-zero and its supervisor restarts it; what was not committed is read again."""


def dead_letter_producer(bootstrap: str, client_id: str) -> Producer:
    return Producer({
        "bootstrap.servers": bootstrap, "client.id": client_id, "acks": "all", "enable.idempotence": True,
        "linger.ms": 5, "message.timeout.ms": 0,  # never give up: Kafka down means wait, not drop
    })


@dataclass
class Batch:
    """A fetched batch: its records, their points, the offsets to store once written, when it was taken."""

    messages: list[Message]
    points: Converted
    offsets: list[TopicPartition]
    taken_at: float


class BatchIngest:
    """``gs.readings`` -> InfluxDB; :meth:`run` in its own thread until :meth:`stop`."""

    def __init__(self, *, bootstrap: str, group_id: str, topic: str, deadletter_topic: str, sink: InfluxSink,
                 batch_size: int = 5000, within_s: float = 0.05, pending: int = 2,
                 client_id: str = "gridsentinel-ingest",
                 legacy_group: str | None = None,
                 on_batch: Callable[[int, int, float], None] = lambda took, written, seconds: None) -> None:
        self.bootstrap = bootstrap
        self.group_id = group_id
        self.topic = topic
        self.deadletter_topic = deadletter_topic
        self.sink = sink
        self.batch_size = batch_size
        self.within_s = within_s
        self.pending = pending
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
        self._written: deque[list[TopicPartition]] = deque()  # offsets of written batches, to be stored
        self.lag: dict[tuple[str, int], int] = {}  # records not committed yet per assigned partition (sampled)
        self._lag_at = 0.0

    def stop(self) -> None:
        self._stop.set()

    def run(self) -> None:
        """Consume, write, dead-letter and store offsets until told to stop; raises :class:`IngestError`
        (or what else went wrong) when it cannot go on.

        Two threads: this one takes and converts batches, a writer thread writes them in order (a queue of
        ``pending`` batches between them), so batch N+1 is taken while batch N is written."""
        consumer = Consumer(consumer_config(self.bootstrap, self.group_id, self.client_id))
        producer = dead_letter_producer(self.bootstrap, f"{self.client_id}-dl")
        queue: Queue[Batch] = Queue(self.pending)
        writer = threading.Thread(target=self._writer, args=(producer, queue), name="ingest-writer",
                                  daemon=True)
        consumer.subscribe([self.topic], on_assign=self._on_assign)
        writer.start()
        try:
            while not self._stop.is_set():
                self._check_writer()
                messages = consumer.consume(self.batch_size, self.within_s)
                store_pending(consumer, self._written, "ingest")
                if time.monotonic() - self._lag_at > LAG_EVERY_S:
                    self._sample_lag(consumer)
                batch = self.prepare(messages) if messages else None
                while batch is not None and not self._stop.is_set():
                    self._check_writer()
                    try:
                        queue.put(batch, timeout=0.1)  # waits while the writer is behind (InfluxDB slow or down)
                        break
                    except Full:
                        store_pending(consumer, self._written, "ingest")
        finally:
            self._stop.set()
            writer.join()
            store_pending(consumer, self._written, "ingest")
            consumer.close()  # commits the offsets stored so far (written batches only)

    def _sample_lag(self, consumer: Consumer) -> None:
        """The group's lag on this consumer's partitions: high watermark (as last fetched) less committed."""
        self._lag_at = time.monotonic()
        self.lag = sample_lag(consumer) or self.lag  # Kafka away: keep the last sample

    def _check_writer(self) -> None:
        if self._failed:
            raise self._failed[0]

    def _writer(self, producer: Producer, queue: Queue[Batch]) -> None:
        try:
            while not self._stop.is_set():
                try:
                    batch = queue.get(timeout=0.1)
                except Empty:
                    continue
                if not self.write(producer, batch):
                    return
        except BaseException as exc:  # raised by the consuming thread (and from there, the worker crashes)
            self._failed.append(exc)

    # -- one batch ----------------------------------------------------------------------------------
    def prepare(self, messages: Sequence[Message]) -> Batch | None:
        """The records of a fetched batch as points (None when it held only consumer errors)."""
        taken: list[Message] = []
        last: dict[tuple[str, int], int] = {}
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
            return None
        if not self.first_taken_at:
            self.first_taken_at, self.cpu_at_first_taken = time.time(), time.process_time()
        self.records += len(taken)
        for m in taken:  # messages of a partition come in offset order: the last one's is the highest
            last[(m.topic(), m.partition())] = m.offset()  # type: ignore[index,assignment]  # set when fetched
        offsets = [TopicPartition(t, p, o + 1) for (t, p), o in last.items()]
        return Batch(taken, self.converter.convert([m.value() for m in taken]), offsets, time.monotonic())

    def write(self, producer: Producer, batch: Batch) -> bool:
        """Write one batch, send its dead letters, hand its offsets over to be stored; False when told to
        stop first."""
        taken, points = batch.messages, batch.points
        letters = [self._bad_record(taken[i], reason) for i, reason in points.bad]
        refused = self.sink.write_lines(points.lines, self._stop.is_set)
        if refused is None:
            return False  # stopping: nothing of this batch is stored; read again by the next owner
        if refused:
            gone = {j for j, _ in refused}
            letters += [self._refused(taken[points.index[j]], reason) for j, reason in refused]
            self.sink.written([t for j, t in enumerate(points.observed_at) if j not in gone],
                              [t for j, t in enumerate(points.received_at) if j not in gone])
        else:
            self.sink.written(points.observed_at, points.received_at)
        if letters and not self._send(producer, letters):
            return False
        self._written.append(batch.offsets)  # stored by the consuming thread, at its next turn
        self.last_stored_at, self.cpu_at_last_stored = time.time(), time.process_time()
        self.on_batch(len(taken), len(points.lines) - len(refused), time.monotonic() - batch.taken_at)
        return True

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
        carry_over(consumer, partitions, bootstrap=self.bootstrap, group_id=self.group_id,
                   legacy_groups=[self.legacy_group] if self.legacy_group else [], what="ingest")
