"""The produce/ack ledger: which MQTT messages wait for which Kafka deliveries.

A message is acknowledged to the broker (manual PUBACK) only after Kafka has acknowledged every record
made from it, so a gateway killed at any moment loses nothing: the broker redelivers what was not acked.
Deliveries release PUBACKs into a queue; ``flush_acks`` sends them as one write.

A producer that can no longer deliver is noticed here (``broken``) and replaced (``restart``, called by
the service's recovery): a record Kafka refused, a fatal producer error, or records that stay neither
delivered nor failed while Kafka answers (``check_stall``). The messages they came from were never acked,
and Mosquitto resends unacked messages only when the session is resumed, so the service reconnects (same
client id, session kept) when ``needs_recovery`` says so, and gets them again.

A record Kafka refuses for good (``REFUSED_FOR_GOOD``: e.g. bigger than its topic allows) would be
refused at every resend: it is sent once more alone (a batch of one, so a record that only shared a
refused batch gets through), and when Kafka refuses it alone too it is dead-lettered with Kafka's reason
(``kafka_refused``) and its message acked: the stream goes on.

Threads: paho's network thread produces (``produce``) and serves deliveries every few hundred messages
(``serve``); the main thread polls (``poll``), checks for a stall and recovers. Kafka itself is reached only
through the producers ``new_producer`` makes and the ``kafka_answers`` probe, so the accounting is
testable with a stand-in producer.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from confluent_kafka import KafkaError, KafkaException

from .accept import Record, dead_letter
from .decode import Rejection

log = logging.getLogger(__name__)

# Kafka's verdicts on a record itself, not on Kafka's state: sending it again cannot succeed. (The broker
# checks a whole batch against max.message.bytes, so a record that only shared such a batch is innocent.)
REFUSED_FOR_GOOD = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE,
                              KafkaError.INVALID_RECORD, KafkaError.INVALID_TIMESTAMP})
# Failures of the gateway's own purge of a producer it replaced (restart): not Kafka's verdicts.
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
# What a delivery callback knows of its message: (mid, qos, records left of a multi-record message or None,
# (device, seq) to forget on failure, origin topic, connection generation, headers of a single record,
# monotonic time it was produced when it is the latency histogram's sample, else 0.0).
_State = tuple[int, int, list[int] | None, tuple[str, int] | None, str, int, Any, float]
# The produce -> delivery latency histogram takes one message in LATENCY_SAMPLE (an observation costs about
# 2 us, the whole path of a message a few: observing every one would slow the gateway measurably).
LATENCY_SAMPLE = 16
# (state of _delivered, topic, key, value, headers, Kafka's error): a record refused for good, to retry alone
_Refused = tuple[_State, str, bytes | None, bytes | None, Any, KafkaError]


class KafkaProducer(Protocol):
    """What the ledger uses of ``confluent_kafka.Producer`` (tests pass a stand-in)."""

    def produce(self, topic: str, value: bytes | None = ..., key: str | bytes | None = ..., *,
                headers: Any = ..., on_delivery: Callable[[KafkaError | None, Any], None] | None = ...) -> None: ...

    def poll(self, timeout: float = ...) -> int: ...

    def flush(self, timeout: float = ...) -> int: ...

    def purge(self, in_queue: bool = ..., in_flight: bool = ..., blocking: bool = ...) -> None: ...

    def __len__(self) -> int: ...


# Makes a producer: (solo: each record in a batch of its own, error_cb) -> producer.
ProducerFactory = Callable[[bool, Callable[[KafkaError], None]], KafkaProducer]


@dataclass
class GatewayStats:
    received: int = 0
    produced: int = 0
    acked: int = 0
    rejected: int = 0
    refused: int = 0  # records Kafka failed (their messages are redelivered after a recovery)
    recoveries: int = 0  # producer replaced and/or MQTT session resumed (Gateway.recover)
    accepted: int = 0  # messages the acceptor turned into records (the rest were rejected: dead letters)
    sent: int = 0  # records handed to the producer (produced, not yet known delivered)
    replacements: int = 0  # producers replaced because they could no longer deliver
    rejections: Counter[str] = field(default_factory=Counter)  # dead letters by reason

    def reject(self, reason: str) -> None:
        """Count a dead letter."""
        self.rejected += 1
        self.rejections[reason] += 1


class Ledger:
    """Produces the records of each MQTT message and releases its PUBACK when Kafka has them all.

    ``send_acks`` sends PUBACKs for message ids; ``forget_seq`` forgets the (device, seq) of a message whose
    record failed (the broker resends it); ``clock`` dates the dead letters of records refused for good;
    ``kafka_answers`` says whether Kafka serves metadata (for the stall check); ``halted`` says when a
    producer waiting for room should give up (the gateway stops or recovers; the message stays unacked);
    ``on_error`` takes an error raised in a delivery callback (to be raised in the main loop).
    """

    def __init__(self, new_producer: ProducerFactory, send_acks: Callable[[list[int]], None],
                 stats: GatewayStats, *, deadletter_topic: str, forget_seq: Callable[[str, int], None],
                 clock: Callable[[], float], kafka_answers: Callable[[], bool], stall_s: float,
                 halted: Callable[[], bool], on_error: Callable[[BaseException], None],
                 observe_latency: Callable[[float], None] | None = None,
                 observe_acks: Callable[[int], None] | None = None) -> None:
        self._new_producer = new_producer
        # /metrics: produce -> delivery seconds of sampled messages, PUBACKs per write (None: not kept)
        self._observe_latency = observe_latency
        self._observe_acks = observe_acks
        self._sampled = 0
        self._send_acks = send_acks
        self.stats = stats
        self._deadletter_topic = deadletter_topic
        self._forget_seq = forget_seq
        self._clock = clock
        self._kafka_answers = kafka_answers
        self.stall_s = stall_s  # records waiting this long with no delivery at all while Kafka answers: wedged
        self._halted = halted
        self._on_error = on_error
        self._acks: deque[int] = deque()  # mids whose Kafka records are all acknowledged: PUBACK due
        self._pending_lock = threading.Lock()  # for messages that became several records
        # Bumped at each MQTT disconnect: a delivery for a message of an earlier connection sends no
        # PUBACK (the broker resends that message, marked DUP, and it is produced and acked again).
        self.generation = 0
        # Why the producer cannot deliver any more (a fatal error, a stall): it is replaced.
        self.broken: str | None = None
        # A record of the live connection failed: its message holds a slot of the broker's in-flight
        # window (ReceiveMaximum) until the session is resumed, the only time Mosquitto resends it.
        self.resume = threading.Event()
        self._refused: deque[_Refused] = deque()  # records refused for good: sent alone, then dead-lettered
        self._solo: KafkaProducer | None = None  # batches of one, for those (made on first use)
        self._since_poll = 0
        self._watch = (0, 0, 0.0)  # (produced, refused, since): delivery progress, for the stall check
        self.producer = new_producer(False, self._on_kafka_error)

    # -- produce -----------------------------------------------------------------------------------
    def produce(self, mid: int, qos: int, origin: str, records: list[Record],
                forget_seq: tuple[str, int] | None) -> None:
        """Produce the records made from one MQTT message; it is acked once Kafka has them all."""
        # One small tuple and one partial per message (no closures): this runs for every message.
        left = [len(records)] if len(records) > 1 else None
        # A record's headers are not in its delivery report: kept for a retry alone (_retry_refused). Only
        # frames have headers, and a frame is one record.
        headers = records[0][3] if left is None else None
        self._sampled += 1
        if self._sampled >= LATENCY_SAMPLE:
            self._sampled = 0
            since = time.monotonic()
        else:
            since = 0.0
        on_delivery = functools.partial(self._delivered, (mid, qos, left, forget_seq, origin, self.generation,
                                                          headers, since))
        self.stats.sent += len(records)
        produce = self.producer.produce
        try:
            for topic, key, value, headers in records:
                try:
                    if headers is None:  # passing headers=None costs ~0.4 us a call in confluent-kafka
                        produce(topic, value, key, on_delivery=on_delivery)
                    else:
                        produce(topic, value, key, headers=headers, on_delivery=on_delivery)
                except BufferError:
                    if not self._produce_waiting(topic, key, value, headers, on_delivery):
                        return  # left unacked: resent after the recovery
        except KafkaException as exc:  # after a fatal error every produce() fails
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is None or not error.fatal():
                raise
            self.broken = f"fatal Kafka producer error: {error}"  # the message is resent after the recovery

    def serve(self) -> None:
        """Every 200 messages, serve Kafka deliveries (and so PUBACKs) from the network thread too: no GIL
        ping-pong with the main loop at full load."""
        self._since_poll += 1
        if self._since_poll >= 200:
            self._since_poll = 0
            self.producer.poll(0)
            self.flush_acks()

    def _produce_waiting(self, topic: str, key: str, value: bytes, headers: Any,
                         on_delivery: Callable[[KafkaError | None, Any], None]) -> bool:
        """Produce once the producer has room; False when the gateway stops or recovers meanwhile."""
        while True:
            if self.broken or self._halted():
                return False
            try:
                self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                return True
            except BufferError:
                # Backpressure on MQTT: serve deliveries here (the main loop may be waiting for the GIL).
                self.producer.poll(0.01)
                self.flush_acks()

    # -- deliveries --------------------------------------------------------------------------------
    def _delivered(self, state: _State, err: KafkaError | None, _m: Any) -> None:
        """Kafka's verdict on one record; the message is acked when all its records are in."""
        try:
            mid, qos, left, forget_seq, origin, generation, headers, since = state
            if err is not None and err.code() in REFUSED_FOR_GOOD and _m.topic() != self._deadletter_topic:
                # Resending cannot help: sent once more alone, then dead-lettered (main loop, _retry_refused).
                self._refused.append((state, _m.topic(), _m.key(), _m.value(), headers, err))
                return
            if err is not None:
                # Not acked: the broker resends it when the session is resumed (the run loop does that
                # soon). Forget the seq so the resent message is not mistaken for a duplicate.
                if forget_seq:
                    self._forget_seq(*forget_seq)
                if err.code() in _PURGED:
                    return  # purged with a replaced producer: resent with the resumed session, no error
                self.stats.refused += 1
                if self.stats.refused <= 10 or self.stats.refused % 1000 == 0:
                    log.error("Kafka refused a record from %s: %s (%d so far)", origin, err, self.stats.refused)
                if err.fatal():
                    self.broken = f"fatal Kafka producer error: {err}"
                if generation == self.generation:
                    self.resume.set()
                return
            self.stats.produced += 1
            if left is not None:
                with self._pending_lock:
                    left[0] -= 1
                    if left[0]:
                        return
            if qos > 0 and generation == self.generation:
                self._acks.append(mid)
            self.stats.acked += 1
            if since and self._observe_latency is not None:
                self._observe_latency(time.monotonic() - since)
        except BaseException as exc:  # re-raised in the main loop
            log.exception("gateway delivery callback failed")
            self._on_error(exc)

    def _retry_refused(self) -> None:
        """Records refused for good: each is sent again alone (the broker judges a whole batch, and a record
        may have been refused for its neighbours); refused alone too, it is dead-lettered (main thread)."""
        while self._refused:
            entry = self._refused.popleft()
            state, topic, key, value, headers, _err = entry
            if self._solo is None:
                self._solo = self._new_producer(True, self._on_kafka_error)
            try:
                self._solo.produce(topic, value=value, key=key, headers=headers,
                                   on_delivery=functools.partial(self._delivered_alone, entry))
            except BufferError:  # a thousand refused records waiting: later
                self._refused.appendleft(entry)
                break
        if self._solo is not None:
            self._solo.poll(0)

    def _delivered_alone(self, entry: _Refused, err: KafkaError | None, m: Any) -> None:
        """Kafka's verdict on a refused record sent alone: delivered after all, or dead-lettered."""
        state = entry[0]
        if err is None or err.code() not in REFUSED_FOR_GOOD:
            self._delivered(state, err, m)  # through after all, or Kafka's state again (a recovery resends it)
            return
        try:
            origin = state[4]
            _, topic, key, value, _headers, _ = entry
            device_id = key.decode("utf-8", "replace") if key else None
            why = Rejection("kafka_refused", f"Kafka refused the record for {topic} for good: {err.str()} "
                            f"({err.name()}; the record is {len(value or b'')} bytes)")
            self.stats.reject(why.reason)
            log.error("gateway: a record from %s dead-lettered: %s", origin, why.detail)
            letter = dead_letter(origin, value or b"", self._clock(), why, device_id)
            # The message is acked once its dead letter is in Kafka, as for any rejected message.
            on_delivery = functools.partial(self._delivered, state)
            try:
                self.producer.produce(self._deadletter_topic, value=letter.to_json(), key=device_id or "",
                                      on_delivery=on_delivery)
            except BufferError:  # left unacked if the gateway stops or recovers meanwhile: resent then
                self._produce_waiting(self._deadletter_topic, device_id or "", letter.to_json(), None, on_delivery)
        except BaseException as exc:  # re-raised in the main loop
            log.exception("gateway dead letter of a refused record failed")
            self._on_error(exc)

    def _on_kafka_error(self, err: KafkaError) -> None:
        """librdkafka's client-level errors (served by ``poll``). Most are retried by librdkafka itself
        (broker down, ...); a fatal one (the idempotent producer's state is lost) ends this producer."""
        if err.fatal():
            log.error("fatal Kafka producer error: %s", err)
            self.broken = f"fatal Kafka producer error: {err}"

    def flush_acks(self) -> None:
        """Send the PUBACKs released by deliveries, as one write."""
        acks = self._acks
        if not acks:
            return
        mids = []
        try:
            while True:
                mids.append(acks.popleft())
        except IndexError:
            pass
        self._send_acks(mids)
        if self._observe_acks is not None:
            self._observe_acks(len(mids))

    # -- main loop ---------------------------------------------------------------------------------
    def poll(self, timeout: float) -> None:
        """Serve deliveries (running their callbacks), retry records refused for good, send the PUBACKs."""
        self.producer.poll(timeout)
        if self._refused or self._solo is not None:
            self._retry_refused()
        self.flush_acks()

    def watch(self, now: float) -> None:
        """Start the stall check's clock (``now``: monotonic seconds)."""
        self._watch = (self.stats.produced, self.stats.refused, now)

    def check_stall(self, now: float) -> None:
        """Records waiting, none delivered or failed for ``stall_s`` while Kafka answers: wedged."""
        produced, refused, since = self._watch
        if (self.stats.produced, self.stats.refused) != (produced, refused) or not len(self.producer):
            self._watch = (self.stats.produced, self.stats.refused, now)
            return
        if self.broken or now - since < self.stall_s:
            return
        self._watch = (produced, refused, now)  # next check in stall_s, whatever this one finds
        if self._kafka_answers():
            self.broken = (f"{len(self.producer)} records neither delivered nor failed for {now - since:.0f} s "
                           "while Kafka answers")

    @property
    def needs_recovery(self) -> bool:
        """The producer must be replaced, or messages wait for the MQTT session to be resumed."""
        return bool(self.broken) or self.resume.is_set()

    def settle(self, timeout: float) -> None:
        """Before a recovery that keeps the producer: let what can still be delivered be acked first
        (fewer resends)."""
        deadline = time.monotonic() + timeout
        while self.producer.flush(0.2) > 0 and time.monotonic() < deadline and not self.broken:
            self.flush_acks()

    def disconnected(self) -> None:
        """The MQTT connection is gone: deliveries of its messages send no PUBACK."""
        self.generation += 1

    def restart(self) -> None:
        """After the MQTT session was closed for a recovery: deliveries of the old connection send no PUBACK,
        and a broken producer is replaced (what it held was never acked: resent with the resumed session)."""
        self.generation += 1
        if self.broken:
            old, self.producer = self.producer, self._new_producer(False, self._on_kafka_error)
            old.purge(in_queue=True, in_flight=True, blocking=False)
            old.flush(1.0)  # their failures belong to the old connection: nothing to do
            del old
            self.broken = None
            self.stats.replacements += 1
        self.resume.clear()

    def drain(self, timeout: float) -> None:
        """At close: let Kafka confirm what is in flight (refused records included), acking it."""
        deadline = time.monotonic() + timeout
        while (self.producer.flush(0.2) > 0 or self._refused or (self._solo is not None and len(self._solo))) \
                and time.monotonic() < deadline:
            self._retry_refused()
            self.flush_acks()
        self.flush_acks()

    @property
    def queued(self) -> int:
        """Records in the producer, not delivered yet."""
        return len(self.producer)

    @property
    def solo_queued(self) -> int:
        """Records refused for good, being sent again alone."""
        return len(self._solo) if self._solo is not None else 0
