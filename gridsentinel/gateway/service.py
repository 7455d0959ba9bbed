"""The MQTT gateway: MQTT v5 shared subscription in, Kafka out, at-least-once end to end.

A message is acknowledged to the broker (manual PUBACK) only after Kafka has acknowledged every record
made from it, so a gateway killed at any moment loses nothing: the broker redelivers what was not acked.
Anything that cannot be accepted goes to the dead-letter topic with its reason, and is then acked.

Threads: paho's network thread decodes and produces; the main thread polls the Kafka producer (which
runs the delivery callbacks), sends the PUBACKs they release in batches, writes the stats file and
surfaces any error raised in a callback. The network thread also polls every few hundred messages so
deliveries are served without a thread switch at full load.

A producer that can no longer deliver is noticed and replaced (``Gateway.recover``): a record Kafka
refused, a fatal producer error, or records that stay neither delivered nor failed while Kafka answers.
The messages they came from were never acked, and Mosquitto resends unacked messages only when the
session is resumed, so the gateway reconnects (same client id, session kept) and gets them again.

A record Kafka refuses for good (``REFUSED_FOR_GOOD``: e.g. bigger than its topic allows) would be
refused at every resend: it is sent once more alone (a batch of one, so a record that only shared a
refused batch gets through), and when Kafka refuses it alone too it is dead-lettered with Kafka's reason
(``kafka_refused``) and its message acked: the stream goes on.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridsentinel.core.devices import Registry
from gridsentinel.core.records import DeadLetter, DeviceStatus, Frame, Reading
from gridsentinel.core.topics import Topics

from ..errors import GridSentinelError, ServiceError
from ..settings import Settings
from .decode import (
    Limits,
    Rejection,
    SeqWindow,
    decode_frame,
    decode_plain_telemetry,
    decode_status,
    decode_telemetry,
)
from .mqtt_client import BufferedClient, FastMessage

log = logging.getLogger(__name__)

KINDS = ("telemetry", "frame", "status")
MAX_RECORD_BYTES = 8 * 1024 * 1024  # Kafka record limit of the gateway's producer and its big topics
DEADLETTER_KEEP_BYTES = 256 * 1024  # a dead letter keeps at most this much of the raw payload
# Records waiting this long with no delivery at all while Kafka answers: the producer is wedged.
STALL_S = float(os.environ.get("GS_GATEWAY_STALL_S", "20"))
_Message = mqtt.MQTTMessage | FastMessage  # paho's, or the fast path's lighter stand-in
# Kafka's verdicts on a record itself, not on Kafka's state: sending it again cannot succeed. (The broker
# checks a whole batch against max.message.bytes, so a record that only shared such a batch is innocent.)
REFUSED_FOR_GOOD = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.RECORD_LIST_TOO_LARGE,
                              KafkaError.INVALID_RECORD, KafkaError.INVALID_TIMESTAMP})
# Failures of the gateway's own purge of a producer it replaced (recover): not Kafka's verdicts.
_PURGED = frozenset({KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT})
# (state of _delivered, topic, key, value, headers, Kafka's error): a record refused for good, to retry alone
_Refused = tuple[Any, str, bytes | None, bytes | None, Any, KafkaError]


@dataclass
class GatewayStats:
    received: int = 0
    produced: int = 0
    acked: int = 0
    rejected: int = 0
    refused: int = 0  # records Kafka failed (their messages are redelivered after a recovery)
    recoveries: int = 0  # producer replaced and/or MQTT session resumed (Gateway.recover)


_json_str = json.JSONEncoder(ensure_ascii=True).encode


class ReadingEncoder:
    """Readings as JSON (the ``Reading`` schema plus the registry's kind and grid code), on the hot path.

    The string fields of a (device, metric) pair are encoded once and cached; per reading only the
    numbers are formatted (``repr`` of a finite float is valid JSON).

    >>> enc = ReadingEncoder()
    >>> r = Reading("d1", "water_level", "m", 0.5, 1780000000.25, 7, 1780000000.5)
    >>> json.loads(enc.encode(r, "drain_level", "320582004001001"))["seq"]
    7
    """

    def __init__(self) -> None:
        self._heads: dict[tuple[str, str, str, str, str], str] = {}

    def head(self, device_id: str, metric: str, unit: str, kind: str, grid_code: str) -> str:
        """The JSON text of a reading up to its numbers."""
        key = (device_id, metric, unit, kind, grid_code)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) > 100_000:
                self._heads.clear()
            head = self._heads[key] = (
                f'{{"device_id":{_json_str(device_id)},"metric":{_json_str(metric)},'
                f'"unit":{_json_str(unit)},"kind":{_json_str(kind)},"grid_code":{_json_str(grid_code)},')
        return head

    def encode(self, r: Reading, kind: str, grid_code: str) -> bytes:
        head = self.head(r.device_id, r.metric, r.unit, kind, grid_code)
        return tail(head, float(r.value), float(r.observed_at), r.seq, float(r.received_at))


def tail(head: str, value: float, observed_at: float, seq: int | None, received_at: float) -> bytes:
    """A reading's JSON: its head (``ReadingEncoder.head``) and numbers (``repr`` of a finite float is JSON)."""
    seq_text = "null" if seq is None else int(seq)
    return (f'{head}"value":{value!r},"observed_at":{observed_at!r},"seq":{seq_text},'
            f'"received_at":{received_at!r}}}').encode()


class _Route:
    """What the fast path knows of one telemetry topic of a registered device."""

    __slots__ = ("device_id", "topic", "heads")

    def __init__(self, device_id: str, topic: str, heads: dict[str, str]) -> None:
        self.device_id = device_id
        self.topic = topic
        self.heads = heads  # metric name -> ReadingEncoder.head


def dead_letter(origin: str, payload: bytes, now: float, why: Rejection, device_id: str | None = None) -> DeadLetter:
    """The dead letter of a rejected MQTT message. A camera frame (an image not blurred yet) keeps only its
    size and sha256, never its pixels; any other payload is kept whole up to ``DEADLETTER_KEEP_BYTES``.

    >>> letter = dead_letter("gs/v1/cam-1/frame", b"\\xff\\xd8 pixels", 1.0, Rejection("timestamp_future", "clock"))
    >>> (letter.payload_b64, letter.payload_bytes, letter.payload_sha256[:8])
    ('', 9, '7abaeaea')
    """
    detail = why.detail
    size = digest = None
    if origin.endswith("/frame"):
        size, digest = len(payload), hashlib.sha256(payload).hexdigest()
        payload = b""
    elif len(payload) > DEADLETTER_KEEP_BYTES:  # an oversize payload must not make an oversize record
        size, digest = len(payload), hashlib.sha256(payload).hexdigest()
        payload = payload[:DEADLETTER_KEEP_BYTES]
        detail += f" (payload_b64 holds its first {DEADLETTER_KEEP_BYTES} of {size} bytes)"
    return DeadLetter(reason=why.reason, detail=detail, origin=origin, received_at=now,
                      payload_b64=base64.b64encode(payload).decode(), device_id=device_id,
                      payload_bytes=size, payload_sha256=digest)


def reading_json(r: Reading, kind: str, grid_code: str) -> bytes:
    """A Reading as JSON, with the registry's kind and grid code."""
    return ReadingEncoder().encode(r, kind, grid_code)


def ensure_topics(bootstrap: str, topics: Topics, partitions: int = 4) -> None:
    """Create the topics the gateway writes (idempotent); the config topic is compacted."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    big = {"max.message.bytes": str(MAX_RECORD_BYTES)}  # frames (2 MB by default) and their dead letters
    config = {topics.config: {"cleanup.policy": "compact"}, topics.frames: big, topics.deadletter: big}
    wanted = [NewTopic(t, num_partitions=partitions, replication_factor=1, config=config.get(t, {}))
              for t in topics.all() if t not in existing]
    if not wanted:
        return
    for topic, fut in admin.create_topics(wanted, operation_timeout=10).items():
        try:
            fut.result()
        except Exception as exc:  # KafkaException: TOPIC_ALREADY_EXISTS is fine (another gateway won)
            if "TOPIC_ALREADY_EXISTS" not in str(exc):
                raise ServiceError(f"could not create Kafka topic {topic}: {exc}") from exc


class Gateway:
    def __init__(self, settings: Settings, registry: Registry, *, limits: Limits | None = None,
                 client_id: str | None = None, clock: Callable[[], float] = time.time,
                 receive_maximum: int = int(os.environ.get("GS_MQTT_RECEIVE_MAXIMUM", "1000")),
                 stats_file: str | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.limits = limits or Limits()
        self.topics = Topics(settings.topic_prefix)
        # A stable id: a restarted gateway resumes its session and gets what the broker kept for it.
        self.client_id = client_id or f"gs-gateway-{socket.gethostname()}"
        self.clock = clock
        self.stats = GatewayStats()
        self.rejections: Counter[str] = Counter()
        self.stats_file = stats_file
        self._seqs = SeqWindow()
        self._encoder = ReadingEncoder()
        self._acks: deque[int] = deque()  # mids whose Kafka records are all acknowledged: PUBACK due
        self._pending_lock = threading.Lock()  # for messages that became several records
        # Bumped at each MQTT disconnect: a delivery for a message of an earlier connection sends no
        # PUBACK (the broker resends that message, marked DUP, and it is produced and acked again).
        self._generation = 0
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._closing = False
        self._paused = False  # set while closing or recovering: messages are left unacked (redelivered)
        # Why the producer cannot deliver any more (a fatal error, a stall): it is replaced.
        self._broken: str | None = None
        # A record of the live connection failed: its message holds a slot of the broker's in-flight
        # window (ReceiveMaximum) until the session is resumed, the only time Mosquitto resends it.
        self._resume = threading.Event()
        self._refused: deque[_Refused] = deque()  # records refused for good: sent alone, then dead-lettered
        self._solo: Producer | None = None  # batches of one, for those (made on first use)
        self.stall_s = STALL_S
        self._since_poll = 0
        self._connected = threading.Event()
        self.producer = self._new_producer()
        self.mqtt = BufferedClient(mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                                   protocol=mqtt.MQTTv5)
        self.mqtt.username_pw_set("gateway", settings.gateway_password)
        self.mqtt.manual_ack_set(True)
        self.mqtt.max_inflight_messages_set(1000)
        self.mqtt.max_queued_messages_set(0)
        self.mqtt.on_connect = self._guard(self._on_connect)
        self.mqtt.on_disconnect = self._guard(self._on_disconnect)
        self.mqtt.on_message = self._guard(self._on_message)
        self.mqtt.on_subscribe = self._guard(self._on_subscribe)
        self.mqtt.on_fast_publish = self._on_fast_publish
        self._routes: dict[bytes, _Route] = {}
        self._readings_topic = self.topics.readings
        self._receive_maximum = receive_maximum

    def _new_producer(self, solo: bool = False) -> Producer:
        """The gateway's producer; ``solo``: one that sends each record in a batch of its own."""
        batching = {"linger.ms": 0, "batch.num.messages": 1} if solo else {"linger.ms": 5,
                                                                          "batch.num.messages": 10000}
        return Producer({
            "bootstrap.servers": self.settings.kafka_bootstrap,
            "client.id": self.client_id,
            "acks": "all",
            "enable.idempotence": True,
            **batching,
            "compression.type": "lz4",
            "message.timeout.ms": 0,  # never give up: Kafka down means wait, not drop
            "queue.buffering.max.messages": 200000,
            "message.max.bytes": MAX_RECORD_BYTES,
            "error_cb": self._on_kafka_error,
        })

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s  # keep our queue through a restart
        props.ReceiveMaximum = self._receive_maximum
        return props

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        ensure_topics(self.settings.kafka_bootstrap, self.topics)
        self.mqtt.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30,
                          clean_start=False, properties=self._connect_properties())
        self.mqtt.loop_start()
        if not self._connected.wait(15):
            self._raise_pending()
            raise ServiceError(f"gateway could not connect to MQTT at {self.settings.mqtt_host}:"
                               f"{self.settings.mqtt_port}; is the stack up (`gridsentinel up`)?")

    def run(self, report_every_s: float = 10.0) -> None:
        """Poll Kafka deliveries until stopped; raises an error from any callback thread."""
        last = last_stats = last_recovery = time.monotonic()
        self._watch = (self.stats.produced, self.stats.refused, last)  # delivery progress, for the stall check
        while not self._stop.is_set():
            self.producer.poll(0.05)
            if self._refused or self._solo is not None:
                self._retry_refused()
            self._flush_acks()
            self._raise_pending()
            now = time.monotonic()
            self._check_stall(now)
            # Recover at most every few seconds: a Kafka restart can fail records in bursts.
            if (self._broken or self._resume.is_set()) and now - last_recovery >= 5.0:
                self.recover()
                last_recovery = time.monotonic()
            if self.stats_file and now - last_stats >= 1.0:
                last_stats = now
                self.write_stats()
            if report_every_s and now - last >= report_every_s:
                last = now
                log.info("%s", self.report())

    def report(self) -> str:
        """The periodic log line: counters, and dead letters per reason."""
        s = self.stats
        reasons = ", ".join(f"{k}={v}" for k, v in sorted(self.rejections.items())) or "none"
        return (f"gateway: received {s.received}, produced {s.produced}, acked {s.acked}, "
                f"dead-lettered {s.rejected} (by reason: {reasons})")

    def stats_dict(self) -> dict[str, Any]:
        s = self.stats
        return {"time": time.time(), "client_id": self.client_id, "received": s.received,
                "produced": s.produced, "acked": s.acked, "rejected": s.rejected,
                "rejected_by_reason": dict(self.rejections), "kafka_queue": len(self.producer),
                "kafka_refused": s.refused, "recoveries": s.recoveries,
                "kafka_solo_queue": len(self._solo) if self._solo is not None else 0}

    def write_stats(self) -> None:
        """Counters as JSON in ``stats_file``, replaced atomically (readers never see half a file)."""
        if not self.stats_file:
            return
        tmp = f"{self.stats_file}.tmp"
        with open(tmp, "w") as fh:
            json.dump(self.stats_dict(), fh)
        os.replace(tmp, self.stats_file)

    def stop(self) -> None:
        self._stop.set()

    def _check_stall(self, now: float) -> None:
        """Records waiting, none delivered or failed for ``stall_s`` while Kafka answers: wedged."""
        produced, refused, since = self._watch
        if (self.stats.produced, self.stats.refused) != (produced, refused) or not len(self.producer):
            self._watch = (self.stats.produced, self.stats.refused, now)
            return
        if self._broken or now - since < self.stall_s:
            return
        self._watch = (produced, refused, now)  # next check in stall_s, whatever this one finds
        if kafka_answers(self.settings.kafka_bootstrap, self._readings_topic):
            self._broken = (f"{len(self.producer)} records neither delivered nor failed for {now - since:.0f} s "
                            "while Kafka answers")

    def recover(self) -> None:
        """Resume the MQTT session (so the broker resends what was not acked) and, when the producer
        cannot deliver any more, replace it first. Nothing is lost: what was not acked comes back."""
        broken = self._broken
        self.stats.recoveries += 1
        log.warning("gateway: recovering (%s): %s", "new producer" if broken else "resuming the MQTT session",
                    broken or f"Kafka refused {self.stats.refused} record(s) so far; their messages are resent "
                    "only when the session is resumed")
        self._paused = True  # the network thread leaves new messages unacked: they are resent too
        try:
            if not broken:  # let what can still be delivered be acked first (fewer resends)
                deadline = time.monotonic() + 5.0
                while self.producer.flush(0.2) > 0 and time.monotonic() < deadline and not self._broken:
                    self._flush_acks()
            self._flush_acks()
            self.mqtt.disconnect()  # clean start off, session expiry > 0: the session and its messages stay
            self.mqtt.loop_stop()
            self._generation += 1  # deliveries of the old connection send no PUBACK
            if self._broken:
                old, self.producer = self.producer, self._new_producer()
                old.purge(in_queue=True, in_flight=True, blocking=False)
                old.flush(1.0)  # their failures belong to the old connection: nothing to do
                del old
                self._broken = None
            self._resume.clear()
        finally:
            self._paused = self._closing
        self._connected.clear()
        self.mqtt.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30,
                                clean_start=False, properties=self._connect_properties())
        self.mqtt.loop_start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking messages, let Kafka confirm what is in flight (acking it), then disconnect."""
        self._closing = self._paused = True
        deadline = time.monotonic() + timeout
        while (self.producer.flush(0.2) > 0 or self._refused or (self._solo is not None and len(self._solo))) \
                and time.monotonic() < deadline:
            self._retry_refused()
            self._flush_acks()
        self._flush_acks()
        time.sleep(0.2)  # let paho's thread send the last PUBACKs
        self.mqtt.disconnect()
        self.mqtt.loop_stop()
        self.write_stats()

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        """Callbacks run on paho's thread: keep their errors and raise them in the main loop."""
        def wrapper(*args: Any) -> None:
            try:
                fn(*args)
            except BaseException as exc:  # kept and re-raised in run(), never swallowed here
                log.exception("gateway callback failed")
                self._error = exc
                self._stop.set()
        return wrapper

    # -- MQTT callbacks ---------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._error = ServiceError(f"MQTT connection refused: {reason}; check the gateway credentials "
                                       f"in {self.settings.run_dir / 'mosquitto'}")
            self._stop.set()
            return
        group = self.settings.mqtt_share_group
        client.subscribe([(f"$share/{group}/gs/v1/+/{kind}", 1) for kind in KINDS])
        log.info("gateway %s connected (session present: %s)", self.client_id, flags.session_present)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[Any],
                      properties: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            self._error = ServiceError(f"MQTT subscription refused: {', '.join(failed)}")
            self._stop.set()
            return
        log.info("gateway %s subscribed to $share/%s/gs/v1/+/{%s}", self.client_id,
                 self.settings.mqtt_share_group, ",".join(KINDS))
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self._connected.clear()
        self._generation += 1
        if not self._paused:
            log.warning("gateway disconnected from MQTT (%s); paho reconnects", reason)

    def _on_fast_publish(self, topic: bytes, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        """The hot path, for telemetry of a registered device in the JSON contract's common shape;
        everything else goes to ``_on_message``, which handles (and rejects) any message. Both make the
        same records from the same message (tests/integration/test_gateway_fast_path.py)."""
        try:
            route = self._routes.get(topic)
            if route is None:
                route = self._route(topic)
            now = self.clock()
            plain = None if route is None or self._paused else decode_plain_telemetry(payload, now, self.limits)
            if plain is None:
                self._on_message(self.mqtt, None, FastMessage(
                    topic.decode("utf-8", "replace"), payload, mid, qos, dup, False))
                return
            assert route is not None
            ts, seq, values = plain
            device_id = route.device_id
            if seq is not None and self._seqs.seen(device_id, seq) and not dup:
                self._on_message(self.mqtt, None, FastMessage(route.topic, payload, mid, qos, dup, False))
                return  # rejected there as a duplicate
            self.stats.received += 1
            heads, topic_out = route.heads, self._readings_topic
            records = []
            for metric, value in values:
                head = heads.get(metric.name)
                if head is None:
                    device = self.registry.get(device_id)
                    assert device is not None
                    head = heads[metric.name] = self._encoder.head(device_id, metric.name, metric.unit, device.kind,
                                                                   device.grid_code or "")
                records.append((topic_out, device_id, tail(head, value, ts, seq, now), None))
            self._produce_records(mid, qos, route.topic, records, (device_id, seq) if seq is not None else None)
            self._serve_deliveries()
        except BaseException as exc:  # kept and re-raised in run(), never swallowed here
            log.exception("gateway callback failed")
            self._error = exc
            self._stop.set()

    def _route(self, topic: bytes) -> _Route | None:
        """The fast path's route for a telemetry topic of a registered device, else None."""
        parts = topic.split(b"/")
        if len(parts) != 4 or parts[0] != b"gs" or parts[1] != b"v1" or parts[3] != b"telemetry":
            return None
        try:
            device_id = parts[2].decode()
        except UnicodeDecodeError:
            return None
        if self.registry.get(device_id) is None:
            return None
        if len(self._routes) > 100_000:
            self._routes.clear()
        route = self._routes[topic] = _Route(device_id, topic.decode(), {})
        return route

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: _Message) -> None:
        if self._paused:
            return  # not acked: the broker redelivers it to us (or another gateway) later
        self.stats.received += 1
        now = self.clock()
        parts = msg.topic.split("/")
        if len(parts) != 4 or parts[0] != "gs" or parts[1] != "v1" or parts[3] not in KINDS:
            self._reject(msg, now, Rejection("bad_topic", f"topic {msg.topic!r} is not gs/v1/<device>/<kind>"))
            return
        device_id, kind = parts[2], parts[3]
        payload = bytes(msg.payload)  # paho types it bytes | bytearray; it is bytes, and bytes(b) is b (no copy)
        device = self.registry.get(device_id)
        if device is None:
            self._reject(msg, now, Rejection("unknown_device", f"device {device_id!r} is not in the registry "
                                             "(config/devices.yaml)"), device_id)
            return
        if kind == "telemetry":
            ctype = getattr(msg.properties, "ContentType", None) if msg.properties else None
            result = decode_telemetry(device_id, payload, now, self.limits, ctype)
            if isinstance(result, Rejection):
                self._reject(msg, now, result, device_id)
                return
            seq = result[0].seq
            # A DUP is the broker resending what we have not acked yet (after a reconnect): produce it
            # again (InfluxDB points are idempotent) rather than call it a device's duplicate.
            if seq is not None and self._seqs.seen(device_id, seq) and not msg.dup:
                self._reject(msg, now, Rejection("duplicate_seq", f"seq {seq} from {device_id} was already "
                                                 "accepted"), device_id)
                return
            grid = device.grid_code or ""
            encode = self._encoder.encode
            records = [(self.topics.readings, device_id, encode(r, device.kind, grid), None) for r in result]
            self._produce(msg, records, forget_seq=(device_id, seq) if seq is not None else None)
            self._serve_deliveries()
        elif kind == "frame":
            if device.kind != "camera":
                self._reject(msg, now, Rejection("wrong_device_kind", f"{device_id} is a {device.kind}, "
                                                 "not a camera; only cameras send frames"), device_id)
                return
            props = dict(getattr(msg.properties, "UserProperty", None) or []) if msg.properties else {}
            frame = decode_frame(device_id, payload, props, now, self.limits)
            if isinstance(frame, Rejection):
                self._reject(msg, now, frame, device_id)
                return
            frame = Frame(camera_id=frame.camera_id, observed_at=frame.observed_at, seq=frame.seq,
                          jpeg=frame.jpeg, received_at=now, grid_code=device.grid_code or "")
            self._produce(msg, [(self.topics.frames, device_id, frame.jpeg, frame.headers())])
        else:
            status = decode_status(payload)
            if isinstance(status, Rejection):
                self._reject(msg, now, status, device_id)
                return
            record = DeviceStatus(device_id=device_id, status=status, received_at=now)  # type: ignore[arg-type]
            self._produce(msg, [(self.topics.device_status, device_id, record.to_json(), None)])

    # -- Kafka side -------------------------------------------------------------------------------
    def _reject(self, msg: _Message, now: float, why: Rejection, device_id: str | None = None) -> None:
        self.stats.rejected += 1
        self.rejections[why.reason] += 1
        letter = dead_letter(msg.topic, bytes(msg.payload), now, why, device_id)
        self._produce(msg, [(self.topics.deadletter, device_id or "", letter.to_json(), None)])

    def _produce(self, msg: _Message, records: list[tuple[str, str, bytes, Any]],
                 forget_seq: tuple[str, int] | None = None) -> None:
        self._produce_records(msg.mid, msg.qos, msg.topic, records, forget_seq)

    def _produce_records(self, mid: int, qos: int, origin: str, records: list[tuple[str, str, bytes, Any]],
                         forget_seq: tuple[str, int] | None) -> None:
        """Produce the records made from one MQTT message; it is acked once Kafka has them all."""
        # One small tuple and one partial per message (no closures): this runs for every message.
        left = [len(records)] if len(records) > 1 else None
        # A record's headers are not in its delivery report: kept for a retry alone (_retry_refused). Only
        # frames have headers, and a frame is one record.
        headers = records[0][3] if left is None else None
        on_delivery = functools.partial(self._delivered, (mid, qos, left, forget_seq, origin, self._generation,
                                                          headers))
        produce = self.producer.produce
        try:
            for topic, key, value, headers in records:
                try:
                    produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                except BufferError:
                    if not self._produce_waiting(topic, key, value, headers, on_delivery):
                        return  # left unacked: resent after the recovery
        except KafkaException as exc:  # after a fatal error every produce() fails
            error = exc.args[0] if exc.args and isinstance(exc.args[0], KafkaError) else None
            if error is None or not error.fatal():
                raise
            self._broken = f"fatal Kafka producer error: {error}"  # the message is resent after the recovery

    def _serve_deliveries(self) -> None:
        """Every 200 messages, serve Kafka deliveries (and so PUBACKs) from the network thread too: no GIL
        ping-pong with the main loop at full load."""
        self._since_poll += 1
        if self._since_poll >= 200:
            self._since_poll = 0
            self.producer.poll(0)
            self._flush_acks()

    def _produce_waiting(self, topic: str, key: str, value: bytes, headers: Any,
                         on_delivery: Callable[[KafkaError | None, Any], None]) -> bool:
        """Produce once the producer has room; False when the gateway stops or recovers meanwhile."""
        while True:
            if self._paused or self._broken or self._stop.is_set():
                return False
            try:
                self.producer.produce(topic, value=value, key=key, headers=headers, on_delivery=on_delivery)
                return True
            except BufferError:
                # Backpressure on MQTT: serve deliveries here (the main loop may be waiting for the GIL).
                self.producer.poll(0.01)
                self._flush_acks()

    def _delivered(self, state: tuple[int, int, list[int] | None, tuple[str, int] | None, str, int, Any],
                   err: KafkaError | None, _m: Any) -> None:
        """Kafka's verdict on one record; the message is acked when all its records are in."""
        try:
            mid, qos, left, forget_seq, origin, generation, headers = state
            if err is not None and err.code() in REFUSED_FOR_GOOD and _m.topic() != self.topics.deadletter:
                # Resending cannot help: sent once more alone, then dead-lettered (main loop, _retry_refused).
                self._refused.append((state, _m.topic(), _m.key(), _m.value(), headers, err))
                return
            if err is not None:
                # Not acked: the broker resends it when the session is resumed (the run loop does that
                # soon). Forget the seq so the resent message is not mistaken for a duplicate.
                if forget_seq:
                    self._seqs.forget(*forget_seq)
                if err.code() in _PURGED:
                    return  # purged with a replaced producer: resent with the resumed session, no error
                self.stats.refused += 1
                if self.stats.refused <= 10 or self.stats.refused % 1000 == 0:
                    log.error("Kafka refused a record from %s: %s (%d so far)", origin, err, self.stats.refused)
                if err.fatal():
                    self._broken = f"fatal Kafka producer error: {err}"
                if generation == self._generation:
                    self._resume.set()
                return
            self.stats.produced += 1
            if left is not None:
                with self._pending_lock:
                    left[0] -= 1
                    if left[0]:
                        return
            if qos > 0 and generation == self._generation:
                self._acks.append(mid)
            self.stats.acked += 1
        except BaseException as exc:  # re-raised in run()
            log.exception("gateway delivery callback failed")
            self._error = exc
            self._stop.set()

    def _retry_refused(self) -> None:
        """Records refused for good: each is sent again alone (the broker judges a whole batch, and a record
        may have been refused for its neighbours); refused alone too, it is dead-lettered (main thread)."""
        while self._refused:
            entry = self._refused.popleft()
            state, topic, key, value, headers, _err = entry
            if self._solo is None:
                self._solo = self._new_producer(solo=True)
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
            self.stats.rejected += 1
            self.rejections[why.reason] += 1
            log.error("gateway: a record from %s dead-lettered: %s", origin, why.detail)
            letter = dead_letter(origin, value or b"", self.clock(), why, device_id)
            # The message is acked once its dead letter is in Kafka, as for any rejected message.
            on_delivery = functools.partial(self._delivered, state)
            try:
                self.producer.produce(self.topics.deadletter, value=letter.to_json(), key=device_id or "",
                                      on_delivery=on_delivery)
            except BufferError:  # left unacked if the gateway stops or recovers meanwhile: resent then
                self._produce_waiting(self.topics.deadletter, device_id or "", letter.to_json(), None, on_delivery)
        except BaseException as exc:  # re-raised in run()
            log.exception("gateway dead letter of a refused record failed")
            self._error = exc
            self._stop.set()

    def _on_kafka_error(self, err: KafkaError) -> None:
        """librdkafka's client-level errors (served by ``poll``). Most are retried by librdkafka itself
        (broker down, ...); a fatal one (the idempotent producer's state is lost) ends this producer."""
        if err.fatal():
            log.error("fatal Kafka producer error: %s", err)
            self._broken = f"fatal Kafka producer error: {err}"

    def _flush_acks(self) -> None:
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
        self.mqtt.ack_many(mids)


def kafka_answers(bootstrap: str, topic: str, timeout: float = 5.0) -> bool:
    """Kafka answers a metadata request with a leader for every partition of ``topic`` (a fresh client,
    so a wedged producer's state does not colour the answer)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        md = admin.list_topics(topic, timeout=timeout)
    except KafkaException:
        return False
    found = md.topics.get(topic)
    return bool(found is not None and found.error is None and found.partitions
                and all(p.leader >= 0 and p.error is None for p in found.partitions.values()))


def drop_session(settings: Settings, client_id: str, timeout: float = 10.0) -> None:
    """End a gateway's persistent MQTT session for good: the broker stops queueing for it at once.

    For gateways that will not come back under this client id (tests, benchmarks): their session would
    otherwise keep taking every telemetry message until it expires. Connects with clean start (which
    discards the old session) and no session expiry, then disconnects."""
    done = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
    client.username_pw_set("gateway", settings.gateway_password)
    client.on_connect = lambda *_: done.set()
    client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=10, clean_start=True)
    client.loop_start()
    try:
        if not done.wait(timeout):
            raise ServiceError(f"could not connect to MQTT at {settings.mqtt_host}:{settings.mqtt_port} to drop "
                               f"the session of {client_id}")
    finally:
        client.disconnect()
        client.loop_stop()


def run_gateway(settings: Settings, client_id: str | None = None, stats_file: str | None = None) -> int:
    logging.getLogger().setLevel(logging.INFO)
    registry = Registry.load(settings.config_dir)
    gateway = Gateway(settings, registry, client_id=client_id, stats_file=stats_file)
    signal.signal(signal.SIGTERM, lambda *_: gateway.stop())
    gateway.start()
    print(f"gateway {gateway.client_id} ready: MQTT {settings.mqtt_host}:{settings.mqtt_port} -> Kafka "
          f"{settings.kafka_bootstrap} ({len(registry.devices)} devices registered); Ctrl-C to stop",
          flush=True)
    try:
        gateway.run()
    except KeyboardInterrupt:
        pass
    except GridSentinelError:
        raise
    finally:
        gateway.close()
    return 0
