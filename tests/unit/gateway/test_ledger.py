"""The produce/ack ledger with a stand-in producer: which PUBACKs Kafka's deliveries release, what a
failure, a record refused for good and a stalled producer lead to. No Kafka, no MQTT."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from confluent_kafka import KafkaError

from gridsentinel.core.records import DeadLetter
from gridsentinel.gateway.ledger import GatewayStats, Ledger

pytestmark = pytest.mark.unit

DEADLETTER = "t.gs.deadletter"
READINGS = "t.gs.readings"


class Msg:
    def __init__(self, topic: str, key: str | bytes | None, value: bytes) -> None:
        self._topic, self._key, self._value = topic, key, value

    def topic(self) -> str:
        return self._topic

    def key(self) -> bytes | None:
        return self._key.encode() if isinstance(self._key, str) else self._key

    def value(self) -> bytes:
        return self._value


class FakeProducer:
    """What the ledger uses of confluent_kafka's Producer; deliveries are made by the test (``deliver``)."""

    def __init__(self, solo: bool, error_cb: Callable[[KafkaError], None], room: int = 1000) -> None:
        self.solo, self.error_cb, self.room = solo, error_cb, room
        self.queue: list[tuple[str, str | bytes | None, bytes, Any, Callable[..., None]]] = []
        self.purged = False

    def produce(self, topic: str, value: bytes | None = None, key: str | bytes | None = None, *,
                headers: Any = None, on_delivery: Callable[[KafkaError | None, Any], None] | None = None) -> None:
        if len(self.queue) >= self.room:
            raise BufferError("queue full")
        assert on_delivery is not None and value is not None
        self.queue.append((topic, key, value, headers, on_delivery))

    def poll(self, timeout: float = 0) -> int:
        return 0

    def flush(self, timeout: float = 0) -> int:
        return len(self.queue)

    def purge(self, in_queue: bool = True, in_flight: bool = True, blocking: bool = True) -> None:
        self.purged = True

    def __len__(self) -> int:
        return len(self.queue)

    def deliver(self, err: KafkaError | None = None) -> tuple[str, str | bytes | None, bytes, Any]:
        topic, key, value, headers, on_delivery = self.queue.pop(0)
        on_delivery(err, Msg(topic, key, value))
        return topic, key, value, headers


class Harness:
    def __init__(self, room: int = 1000, answers: bool = True) -> None:
        self.producers: list[FakeProducer] = []
        self.acked: list[int] = []
        self.forgotten: list[tuple[str, int]] = []
        self.errors: list[BaseException] = []
        self.answers = answers
        self.halted = False
        self.room = room
        self.stats = GatewayStats()
        self.ledger = Ledger(self._producer, self.acked.extend, self.stats, deadletter_topic=DEADLETTER,
                             forget_seq=lambda d, s: self.forgotten.append((d, s)), clock=lambda: 1000.0,
                             kafka_answers=lambda: self.answers, stall_s=20.0, halted=lambda: self.halted,
                             on_error=self.errors.append)

    def _producer(self, solo: bool, error_cb: Callable[[KafkaError], None]) -> FakeProducer:
        self.producers.append(FakeProducer(solo, error_cb, self.room))
        return self.producers[-1]

    @property
    def producer(self) -> FakeProducer:
        producer = self.ledger.producer
        assert isinstance(producer, FakeProducer)
        return producer


def records(n: int, topic: str = READINGS) -> list[tuple[str, str, bytes, Any]]:
    return [(topic, "d1", b"r%d" % i, None) for i in range(n)]


def test_a_message_is_acked_once_kafka_has_every_record_made_from_it() -> None:
    h = Harness()
    h.ledger.produce(1, 1, "gs/v1/d1/telemetry", records(3), ("d1", 9))
    h.ledger.produce(2, 0, "gs/v1/d1/telemetry", records(1), None)  # QoS 0: nothing to ack
    for _ in range(2):
        h.producer.deliver()
    h.ledger.flush_acks()
    assert h.acked == [] and h.stats.produced == 2 and h.stats.acked == 0
    h.producer.deliver()
    h.producer.deliver()
    h.ledger.flush_acks()
    assert h.acked == [1] and (h.stats.produced, h.stats.acked) == (4, 2)
    assert not h.errors and not h.ledger.needs_recovery


def test_a_delivery_for_a_message_of_an_earlier_connection_sends_no_puback() -> None:
    h = Harness()
    h.ledger.produce(5, 1, "gs/v1/d1/telemetry", records(1), None)
    h.ledger.disconnected()  # the broker resends it, marked DUP
    h.producer.deliver()
    h.ledger.poll(0)
    assert h.acked == [] and h.stats.acked == 1


def test_a_failed_record_forgets_its_seq_and_asks_for_the_session_to_be_resumed() -> None:
    h = Harness()
    h.ledger.produce(5, 1, "gs/v1/d1/telemetry", records(2), ("d1", 9))
    h.producer.deliver(KafkaError(KafkaError.NOT_ENOUGH_REPLICAS))
    h.producer.deliver()
    h.ledger.flush_acks()
    assert h.acked == [] and h.forgotten == [("d1", 9)] and h.stats.refused == 1
    assert h.ledger.needs_recovery and not h.ledger.broken
    h.ledger.restart()
    assert not h.ledger.needs_recovery and len(h.producers) == 1  # a producer that works is kept


def test_a_fatal_error_breaks_the_producer_and_a_restart_replaces_it() -> None:
    h = Harness()
    h.ledger.produce(5, 1, "gs/v1/d1/telemetry", records(1), None)
    old = h.producer
    old.error_cb(KafkaError(KafkaError._FATAL, "idempotence lost", fatal=True))
    assert h.ledger.broken and h.ledger.needs_recovery
    generation = h.ledger.generation
    h.ledger.restart()
    assert h.producer is not old and old.purged and not h.ledger.broken
    assert h.ledger.generation == generation + 1
    old.deliver(KafkaError(KafkaError._PURGE_QUEUE))  # purged: resent with the resumed session, not refused
    assert h.stats.refused == 0 and not h.ledger.needs_recovery


def test_a_record_refused_for_good_is_sent_alone_then_dead_lettered_and_its_message_acked() -> None:
    h = Harness()
    h.ledger.produce(8, 1, "gs/v1/cam-1/frame", [("t.gs.frames", "cam-1", b"\xff\xd8" * 10, [("gs-frame", b"{}")])],
                     None)
    h.producer.deliver(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    assert h.stats.refused == 0 and not h.ledger.needs_recovery
    h.ledger.poll(0)
    solo = h.producers[1]
    assert solo.solo and h.ledger.solo_queued == 1
    assert solo.queue[0][3] == [("gs-frame", b"{}")]  # the frame's headers travel with the retry
    solo.deliver(KafkaError(KafkaError.MSG_SIZE_TOO_LARGE))
    topic, key, value, _ = h.producer.deliver()
    letter = DeadLetter.from_json(value)
    assert (topic, key, letter.reason, letter.origin, letter.device_id, letter.received_at) == (
        DEADLETTER, "cam-1", "kafka_refused", "gs/v1/cam-1/frame", "cam-1", 1000.0)
    assert letter.payload_b64 == "" and letter.payload_bytes == 20  # a frame's pixels are never kept
    h.ledger.flush_acks()
    assert h.acked == [8] and h.stats.rejected == 1 and h.stats.rejections == {"kafka_refused": 1}


def test_a_record_that_only_shared_a_refused_batch_gets_through_alone() -> None:
    h = Harness()
    h.ledger.produce(3, 1, "gs/v1/d1/telemetry", records(1), None)
    h.producer.deliver(KafkaError(KafkaError.RECORD_LIST_TOO_LARGE))
    h.ledger.poll(0)
    h.producers[1].deliver()
    h.ledger.flush_acks()
    assert h.acked == [3] and h.stats.rejected == 0


def test_records_waiting_with_no_delivery_while_kafka_answers_mean_a_wedged_producer() -> None:
    h = Harness(answers=False)
    h.ledger.watch(0.0)
    h.ledger.produce(1, 1, "gs/v1/d1/telemetry", records(1), None)
    h.ledger.check_stall(10.0)
    h.ledger.check_stall(25.0)
    assert not h.ledger.broken  # Kafka does not answer: waiting for it is right
    h.answers = True
    h.ledger.check_stall(40.0)
    assert not h.ledger.broken  # checked again stall_s after the last check
    h.ledger.check_stall(45.0)
    assert str(h.ledger.broken) == "1 records neither delivered nor failed for 20 s while Kafka answers"


def test_a_delivery_restarts_the_stall_clock() -> None:
    h = Harness()
    h.ledger.watch(0.0)
    h.ledger.produce(1, 1, "gs/v1/d1/telemetry", records(2), None)
    h.ledger.check_stall(15.0)
    h.producer.deliver()
    h.ledger.check_stall(30.0)  # progress: the clock restarts here
    h.ledger.check_stall(45.0)
    assert not h.ledger.broken
    h.ledger.check_stall(50.0)
    assert h.ledger.broken


def test_a_full_producer_holds_the_message_until_the_gateway_halts() -> None:
    h = Harness(room=1)
    h.ledger.produce(1, 1, "gs/v1/d1/telemetry", records(1), None)
    h.halted = True
    h.ledger.produce(2, 1, "gs/v1/d1/telemetry", records(1), None)  # gives up: left unacked, resent later
    assert len(h.producer) == 1 and not h.errors


def test_an_error_in_a_delivery_callback_is_handed_over_not_swallowed() -> None:
    h = Harness()
    h.ledger._delivered((1, 1, None, None, "o", 0, None, 0.0), None, None)  # fine
    h.ledger._delivered(("broken state",), None, None)  # type: ignore[arg-type]
    assert len(h.errors) == 1 and isinstance(h.errors[0], ValueError)
