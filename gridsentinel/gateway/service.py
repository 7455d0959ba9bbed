"""The MQTT gateway: MQTT v5 shared subscription in, Kafka out, at-least-once end to end.

A message is acknowledged to the broker (manual PUBACK) only after Kafka has acknowledged every record
made from it, so a gateway killed at any moment loses nothing: the broker redelivers what was not acked.
Anything that cannot be accepted goes to the dead-letter topic with its reason, and is then acked.

Threads: paho's network thread decodes and produces; the main thread polls the Kafka producer (which
runs the delivery callbacks that send the PUBACKs) and surfaces any error raised in a callback.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import socket
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from confluent_kafka import KafkaError, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ..errors import GridSentinelError, ServiceError
from ..ingest.records import DeadLetter, DeviceStatus, Frame, Reading
from ..ingest.registry import Registry
from ..ingest.topics import Topics
from ..settings import Settings
from .decode import Limits, Rejection, SeqWindow, decode_frame, decode_status, decode_telemetry
from .mqtt_client import BufferedClient

log = logging.getLogger(__name__)

KINDS = ("telemetry", "frame", "status")


@dataclass
class GatewayStats:
    received: int = 0
    produced: int = 0
    acked: int = 0
    rejected: int = 0


def reading_json(r: Reading, kind: str, grid_code: str) -> bytes:
    """A Reading as JSON, with the registry's kind and grid code (the hot path: no dataclass copies)."""
    return json.dumps({"device_id": r.device_id, "metric": r.metric, "unit": r.unit, "value": r.value,
                       "observed_at": r.observed_at, "seq": r.seq, "received_at": r.received_at,
                       "kind": kind, "grid_code": grid_code}, separators=(",", ":")).encode()


def ensure_topics(bootstrap: str, topics: Topics, partitions: int = 4) -> None:
    """Create the topics the gateway writes (idempotent); the config topic is compacted."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = set(admin.list_topics(timeout=10).topics)
    wanted = [NewTopic(t, num_partitions=partitions, replication_factor=1,
                       config={"cleanup.policy": "compact"} if t == topics.config else {})
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
                 receive_maximum: int = int(os.environ.get("GS_MQTT_RECEIVE_MAXIMUM", "5000"))) -> None:
        self.settings = settings
        self.registry = registry
        self.limits = limits or Limits()
        self.topics = Topics(settings.topic_prefix)
        # A stable id: a restarted gateway resumes its session and gets what the broker kept for it.
        self.client_id = client_id or f"gs-gateway-{socket.gethostname()}"
        self.clock = clock
        self.stats = GatewayStats()
        self.rejections: Counter[str] = Counter()
        self._seqs = SeqWindow()
        self._pending: dict[int, int] = {}  # MQTT mid -> Kafka records not yet acknowledged
        self._pending_lock = threading.Lock()
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._closing = False
        self._since_poll = 0
        self._connected = threading.Event()
        self.producer = Producer({
            "bootstrap.servers": settings.kafka_bootstrap,
            "client.id": self.client_id,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "compression.type": "lz4",
            "message.timeout.ms": 0,  # never give up: Kafka down means wait, not drop
            "queue.buffering.max.messages": 200000,
            "message.max.bytes": 8 * 1024 * 1024,
        })
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
        self._receive_maximum = receive_maximum

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        ensure_topics(self.settings.kafka_bootstrap, self.topics)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s  # keep our queue through a restart
        props.ReceiveMaximum = self._receive_maximum
        self.mqtt.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30,
                          clean_start=False, properties=props)
        self.mqtt.loop_start()
        if not self._connected.wait(15):
            self._raise_pending()
            raise ServiceError(f"gateway could not connect to MQTT at {self.settings.mqtt_host}:"
                               f"{self.settings.mqtt_port}; is the stack up (`gridsentinel up`)?")

    def run(self, report_every_s: float = 10.0) -> None:
        """Poll Kafka deliveries until stopped; raises an error from any callback thread."""
        last = time.monotonic()
        while not self._stop.is_set():
            self.producer.poll(0.05)
            self._raise_pending()
            if report_every_s and time.monotonic() - last >= report_every_s:
                last = time.monotonic()
                log.info("gateway: received %d, produced %d, acked %d, rejected %d %s",
                         self.stats.received, self.stats.produced, self.stats.acked, self.stats.rejected,
                         dict(self.rejections) if self.rejections else "")

    def stop(self) -> None:
        self._stop.set()

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking messages, let Kafka confirm what is in flight (acking it), then disconnect."""
        self._closing = True
        deadline = time.monotonic() + timeout
        while self.producer.flush(0.2) > 0 and time.monotonic() < deadline:
            pass
        time.sleep(0.2)  # let paho's thread send the last PUBACKs
        self.mqtt.disconnect()
        self.mqtt.loop_stop()

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        """Callbacks run on paho's thread: keep their errors and raise them in the main loop."""
        def wrapper(*args: Any) -> None:
            try:
                fn(*args)
            except BaseException as exc:  # noqa: BLE001 — re-raised in run()
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
        if not self._closing:
            log.warning("gateway disconnected from MQTT (%s); paho reconnects", reason)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage) -> None:
        if self._closing:
            return  # not acked: the broker redelivers it to us (or another gateway) later
        self.stats.received += 1
        now = self.clock()
        parts = msg.topic.split("/")
        if len(parts) != 4 or parts[0] != "gs" or parts[1] != "v1" or parts[3] not in KINDS:
            self._reject(msg, now, Rejection("bad_topic", f"topic {msg.topic!r} is not gs/v1/<device>/<kind>"))
            return
        device_id, kind = parts[2], parts[3]
        device = self.registry.get(device_id)
        if device is None:
            self._reject(msg, now, Rejection("unknown_device", f"device {device_id!r} is not in the registry "
                                             "(config/devices.yaml)"), device_id)
            return
        if kind == "telemetry":
            ctype = getattr(msg.properties, "ContentType", None) if msg.properties else None
            result = decode_telemetry(device_id, msg.payload, now, self.limits, ctype)
            if isinstance(result, Rejection):
                self._reject(msg, now, result, device_id)
                return
            seq = result[0].seq
            if seq is not None and self._seqs.seen(device_id, seq):
                self._reject(msg, now, Rejection("duplicate_seq", f"seq {seq} from {device_id} was already "
                                                 "accepted"), device_id)
                return
            grid = device.grid_code or ""
            records = [(self.topics.readings, device_id, reading_json(r, device.kind, grid), None)
                       for r in result]
            self._produce(msg, records, forget_seq=(device_id, seq) if seq is not None else None)
            self._since_poll += 1
            if self._since_poll >= 200:
                # Serve deliveries (and so PUBACKs) from this thread too: no GIL ping-pong at full load.
                self._since_poll = 0
                self.producer.poll(0)
        elif kind == "frame":
            if device.kind != "camera":
                self._reject(msg, now, Rejection("wrong_device_kind", f"{device_id} is a {device.kind}, "
                                                 "not a camera; only cameras send frames"), device_id)
                return
            props = dict(getattr(msg.properties, "UserProperty", None) or []) if msg.properties else {}
            frame = decode_frame(device_id, msg.payload, props, now, self.limits)
            if isinstance(frame, Rejection):
                self._reject(msg, now, frame, device_id)
                return
            frame = Frame(camera_id=frame.camera_id, observed_at=frame.observed_at, seq=frame.seq,
                          jpeg=frame.jpeg, received_at=now, grid_code=device.grid_code or "")
            self._produce(msg, [(self.topics.frames, device_id, frame.jpeg, frame.headers())])
        else:
            status = decode_status(msg.payload)
            if isinstance(status, Rejection):
                self._reject(msg, now, status, device_id)
                return
            record = DeviceStatus(device_id=device_id, status=status, received_at=now)  # type: ignore[arg-type]
            self._produce(msg, [(self.topics.device_status, device_id, record.to_json(), None)])

    # -- Kafka side -------------------------------------------------------------------------------
    def _reject(self, msg: mqtt.MQTTMessage, now: float, why: Rejection, device_id: str | None = None) -> None:
        self.stats.rejected += 1
        self.rejections[why.reason] += 1
        letter = DeadLetter(reason=why.reason, detail=why.detail, origin=msg.topic, received_at=now,
                            payload_b64=base64.b64encode(msg.payload).decode(), device_id=device_id)
        self._produce(msg, [(self.topics.deadletter, device_id or "", letter.to_json(), None)])

    def _produce(self, msg: mqtt.MQTTMessage, records: list[tuple[str, str, bytes, Any]],
                 forget_seq: tuple[str, int] | None = None) -> None:
        mid, qos = msg.mid, msg.qos
        with self._pending_lock:
            self._pending[mid] = self._pending.get(mid, 0) + len(records)

        def delivered(err: KafkaError | None, _m: Any) -> None:
            if err is not None:
                # Not acked: the broker redelivers after a reconnect. Forget the seq so the redelivery
                # is not mistaken for a duplicate.
                log.error("Kafka refused a record from %s: %s", msg.topic, err)
                if forget_seq:
                    self._seqs.forget(*forget_seq)
                return
            self.stats.produced += 1
            with self._pending_lock:
                left = self._pending[mid] - 1
                if left:
                    self._pending[mid] = left
                    return
                del self._pending[mid]
            if qos > 0:
                self.mqtt.ack(mid, qos)
            self.stats.acked += 1

        for topic, key, value, headers in records:
            while True:
                try:
                    self.producer.produce(topic, value=value, key=key, headers=headers,
                                          on_delivery=self._guard(delivered))
                    break
                except BufferError:
                    time.sleep(0.01)  # the main loop drains the queue; this backpressures MQTT


def run_gateway(settings: Settings, client_id: str | None = None) -> int:
    logging.getLogger().setLevel(logging.INFO)
    registry = Registry.load(settings.config_dir)
    gateway = Gateway(settings, registry, client_id=client_id)
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
