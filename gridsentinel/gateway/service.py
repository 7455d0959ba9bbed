"""The MQTT gateway: MQTT v5 shared subscription in, Kafka out, at-least-once end to end.

This module keeps the gateway's life cycle: connect, the main loop, recovery, shutdown and the stats
file. It wires three parts together:

- ``accept.Acceptor``: what each message becomes (Kafka records, or a rejection and its dead letter);
  pure, so anything that cannot be accepted goes to the dead-letter topic with its reason, and is acked;
- ``ledger.Ledger``: a message is acknowledged to the broker (manual PUBACK) only after Kafka has
  acknowledged every record made from it, so a gateway killed at any moment loses nothing (the broker
  redelivers what was not acked); it notices a producer that can no longer deliver;
- ``paho_compat.BufferedClient``: paho's client with a fast receive path (all paho workarounds live there).

Threads: paho's network thread accepts and produces; the main thread polls the Kafka producer (which
runs the delivery callbacks), sends the PUBACKs they release in batches, writes the stats file and
surfaces any error raised in a callback. The network thread also polls every few hundred messages so
deliveries are served without a thread switch at full load.

A producer that can no longer deliver (``Ledger.broken``) is replaced, and a record of the live connection
that Kafka failed makes the gateway resume its session (``Gateway.recover``): the messages they came from
were never acked, and Mosquitto resends unacked messages only when the session is resumed, so the gateway
reconnects (same client id, session kept) and gets them again.
"""

from __future__ import annotations

import gc
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
from confluent_kafka import KafkaError, KafkaException, Producer
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridsentinel.core.device_follow import RegistryFollower, UnknownResolver
from gridsentinel.core.devices import Registry
from gridsentinel.core.topics import Topics

from ..errors import GridSentinelError, ServiceError
from ..observability import new_registry, serve_metrics
from ..settings import Settings
from .accept import KINDS, Acceptor, Rejected
from .decode import Limits
from .health import HealthTracker
from .ledger import GatewayStats, KafkaProducer, Ledger
from .metrics import GatewayMetrics
from .paho_compat import BufferedClient, FastMessage
from .producer import ensure_gateway_topics, kafka_answers, new_producer

log = logging.getLogger(__name__)

GC_YOUNG_THRESHOLD = 10_000  # the gateway process's gc threshold 0 (CPython's default: 700); see run_gateway
_Message = mqtt.MQTTMessage | FastMessage  # paho's, or the fast path's lighter stand-in


@dataclass(frozen=True)
class GatewayOptions:
    """Tuning of one gateway (``from_settings``: the values of the ``Settings`` it runs with)."""

    # Records waiting this long with no delivery at all while Kafka answers: the producer is wedged.
    stall_s: float = 20.0
    # The MQTT v5 ReceiveMaximum the gateway asks for: how many unacked messages the broker sends it.
    receive_maximum: int = 4000
    # Follow the registry's change feed (gs.devices); at start, wait this long for it to be read (0: no wait).
    follow_registry: bool = True
    registry_wait_s: float = 30.0
    # Produce the health reports of the devices that changed (gs.device-health) this often (0: never).
    health_every_s: float = 5.0

    @classmethod
    def from_settings(cls, settings: Settings) -> GatewayOptions:
        return cls(stall_s=settings.gateway_stall_s, receive_maximum=settings.mqtt_receive_maximum)


class Gateway:
    """One gateway process: its MQTT session, its ``Acceptor`` and ``Ledger``, its main loop and stats."""

    def __init__(self, settings: Settings, registry: Registry, *, limits: Limits | None = None,
                 client_id: str | None = None, clock: Callable[[], float] = time.time,
                 options: GatewayOptions | None = None, stats_file: str | None = None,
                 metrics: GatewayMetrics | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.options = options or GatewayOptions.from_settings(settings)
        self.topics = Topics(settings.topic_prefix)
        # A stable id: a restarted gateway resumes its session and gets what the broker kept for it.
        self.client_id = client_id or f"gs-gateway-{socket.gethostname()}"
        self.clock = clock
        self.stats = GatewayStats()
        self.stats_file = stats_file
        self.acceptor = Acceptor(registry, self.topics, limits)
        self.health = HealthTracker(self.client_id)
        self.health_stats: Counter[str] = Counter()  # reports produced / failed
        self.follower: RegistryFollower | None = None
        self.resolver: UnknownResolver | None = None  # reads the feed to its end before a device is unknown
        self._error: BaseException | None = None
        self._stop = threading.Event()
        self._closing = False
        self._paused = False  # set while closing or recovering: messages are left unacked (redelivered)
        self._connected = threading.Event()
        self.ledger = Ledger(self._new_producer, self._send_acks, self.stats, deadletter_topic=self.topics.deadletter,
                             forget_seq=self.acceptor.forget_seq, clock=clock, kafka_answers=self._kafka_answers,
                             stall_s=self.options.stall_s, halted=self._halted, on_error=self._fail,
                             observe_latency=metrics.latency.observe if metrics else None,
                             observe_acks=metrics.acks.observe if metrics else None)
        if metrics is not None:
            metrics.watch(self)
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

    @property
    def limits(self) -> Limits:
        return self.acceptor.limits

    @property
    def producer(self) -> KafkaProducer:
        """The ledger's Kafka producer (replaced when it can no longer deliver)."""
        return self.ledger.producer

    @property
    def connected(self) -> bool:
        """Subscribed to the broker now."""
        return self._connected.is_set()

    @property
    def rejections(self) -> Counter[str]:
        """Dead letters by reason."""
        return self.stats.rejections

    def _new_producer(self, solo: bool, error_cb: Callable[[KafkaError], None]) -> Producer:
        return new_producer(self.settings.kafka_bootstrap, self.client_id, solo, error_cb)

    def _kafka_answers(self) -> bool:
        return kafka_answers(self.settings.kafka_bootstrap, self.topics.readings)

    def _send_acks(self, mids: list[int]) -> None:
        self.mqtt.ack_many(mids)

    def _halted(self) -> bool:
        return self._paused or self._stop.is_set()

    def _connect_properties(self) -> Properties:
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = self.settings.mqtt_session_expiry_s  # keep our queue through a restart
        props.ReceiveMaximum = self.options.receive_maximum
        return props

    # -- life cycle -------------------------------------------------------------------------------
    def start(self) -> None:
        ensure_gateway_topics(self.settings.kafka_bootstrap, self.topics)
        if self.options.follow_registry and self.follower is None:
            # Before MQTT: a device registered on the feed must not be rejected for want of reading it.
            self.follower = RegistryFollower(self.registry, self.settings.kafka_bootstrap, self.topics.devices,
                                             name=f"gateway {self.client_id} registry", ensure=None).start()
            if self.options.registry_wait_s > 0:
                self.follower.wait_caught_up(self.options.registry_wait_s)
            self.acceptor.resolve_unknown = self.resolver = UnknownResolver(self.follower)
        self.mqtt.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30,
                          clean_start=False, properties=self._connect_properties())
        self.mqtt.loop_start()
        if not self._connected.wait(15):
            self._raise_pending()
            raise ServiceError(f"gateway could not connect to MQTT at {self.settings.mqtt_host}:"
                               f"{self.settings.mqtt_port}; is the stack up (`gridsentinel up`)?")

    def run(self, report_every_s: float = 10.0) -> None:
        """Poll Kafka deliveries until stopped; raises an error from any callback thread."""
        last = last_stats = last_recovery = last_health = time.monotonic()
        self.ledger.watch(last)  # delivery progress, for the stall check
        while not self._stop.is_set():
            self.ledger.poll(0.05)
            self._raise_pending()
            now = time.monotonic()
            self.ledger.check_stall(now)
            # Recover at most every few seconds: a Kafka restart can fail records in bursts.
            if self.ledger.needs_recovery and now - last_recovery >= 5.0:
                self.recover()
                last_recovery = time.monotonic()
            if self.options.health_every_s and now - last_health >= self.options.health_every_s:
                last_health = now
                self.produce_health()
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
                "rejected_by_reason": dict(self.rejections), "kafka_queue": self.ledger.queued,
                "kafka_refused": s.refused, "recoveries": s.recoveries,
                "kafka_solo_queue": self.ledger.solo_queued,
                "accepted": s.accepted, "producer_replacements": s.replacements, "devices": len(self.registry.devices),
                "devices_retired": len(self.registry.retired), "registry_version": self.registry.version,
                "registry_feed": dict(self.follower.stats) if self.follower else None,
                "registry_caught_up": self.follower.caught_up.is_set() if self.follower else None,
                "health_reports": dict(self.health_stats)}

    def produce_health(self) -> int:
        """Produce a health report of each device that changed since the last call (gs.device-health)."""
        reports = self.health.reports(self.clock())
        producer, topic = self.ledger.producer, self.topics.device_health
        for report in reports:
            def delivered(err: KafkaError | None, _m: Any, device_id: str = report.device_id) -> None:
                self.health_stats["failed" if err is not None else "produced"] += 1
                if err is not None:
                    self.health.again(device_id)
            try:
                producer.produce(topic, value=report.encode(), key=report.device_id, on_delivery=delivered)
            except (BufferError, KafkaException):  # full or broken: the next round sends it
                self.health.again(report.device_id)
                self.health_stats["deferred"] += 1
        return len(reports)

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

    def recover(self) -> None:
        """Resume the MQTT session (so the broker resends what was not acked) and, when the producer
        cannot deliver any more, replace it first. Nothing is lost: what was not acked comes back."""
        broken = self.ledger.broken
        self.stats.recoveries += 1
        log.warning("gateway: recovering (%s): %s", "new producer" if broken else "resuming the MQTT session",
                    broken or f"Kafka refused {self.stats.refused} record(s) so far; their messages are resent "
                    "only when the session is resumed")
        self._paused = True  # the network thread leaves new messages unacked: they are resent too
        try:
            if not broken:  # let what can still be delivered be acked first (fewer resends)
                self.ledger.settle(5.0)
            self.ledger.flush_acks()
            self.mqtt.disconnect()  # clean start off, session expiry > 0: the session and its messages stay
            self.mqtt.loop_stop()
            self.ledger.restart()  # deliveries of the old connection send no PUBACK; a broken producer goes
        finally:
            self._paused = self._closing
        self._connected.clear()
        self.mqtt.connect_async(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30,
                                clean_start=False, properties=self._connect_properties())
        self.mqtt.loop_start()

    def close(self, timeout: float = 30.0) -> None:
        """Stop taking messages, let Kafka confirm what is in flight (acking it), then disconnect."""
        self._closing = self._paused = True
        if self.options.health_every_s:
            self.produce_health()
        self.ledger.drain(timeout)
        if self.follower is not None:
            self.follower.stop()
            self.follower.close_probe()
        time.sleep(0.2)  # let paho's thread send the last PUBACKs
        self.mqtt.disconnect()
        self.mqtt.loop_stop()
        self.write_stats()

    def _raise_pending(self) -> None:
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def _fail(self, exc: BaseException) -> None:
        """An error in a callback thread: kept, and raised in the main loop."""
        self._error = exc
        self._stop.set()

    def _guard(self, fn: Callable[..., None]) -> Callable[..., None]:
        """Callbacks run on paho's thread: keep their errors and raise them in the main loop."""
        def wrapper(*args: Any) -> None:
            try:
                fn(*args)
            except BaseException as exc:  # kept and re-raised in run(), never swallowed here
                log.exception("gateway callback failed")
                self._fail(exc)
        return wrapper

    # -- MQTT callbacks ---------------------------------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                    properties: Any) -> None:
        if reason.is_failure:
            self._fail(ServiceError(f"MQTT connection refused: {reason}; check the gateway credentials "
                                    f"in {self.settings.run_dir / 'mosquitto'}"))
            return
        group = self.settings.mqtt_share_group
        client.subscribe([(f"$share/{group}/gs/v1/+/{kind}", 1) for kind in KINDS])
        log.info("gateway %s connected (session present: %s)", self.client_id, flags.session_present)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reasons: list[Any],
                      properties: Any) -> None:
        failed = [str(r) for r in reasons if r.is_failure]
        if failed:
            self._fail(ServiceError(f"MQTT subscription refused: {', '.join(failed)}"))
            return
        log.info("gateway %s subscribed to $share/%s/gs/v1/+/{%s}", self.client_id,
                 self.settings.mqtt_share_group, ",".join(KINDS))
        self._connected.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason: Any,
                       properties: Any) -> None:
        self._connected.clear()
        self.ledger.disconnected()
        if not self._paused:
            log.warning("gateway disconnected from MQTT (%s); paho reconnects", reason)

    def _on_fast_publish(self, topic: bytes, payload: bytes, mid: int, qos: int, dup: bool) -> None:
        """The hot path: a PUBLISH without properties, with no message object made."""
        try:
            if self._paused:
                return  # not acked: the broker redelivers it to us (or another gateway) later
            self._take(topic, payload, None, mid, qos, dup)
        except BaseException as exc:  # kept and re-raised in run(), never swallowed here
            log.exception("gateway callback failed")
            self._fail(exc)

    def _on_message(self, client: mqtt.Client, userdata: Any, msg: _Message) -> None:
        if self._paused:
            return  # not acked: the broker redelivers it to us (or another gateway) later
        # paho types the payload bytes | bytearray; it is bytes, and bytes(b) is b (no copy)
        self._take(msg.topic, bytes(msg.payload), msg.properties, msg.mid, msg.qos, msg.dup)

    def _take(self, topic: bytes | str, payload: bytes, properties: Any, mid: int, qos: int, dup: bool) -> None:
        """One message: accepted or rejected, its records are produced and it is acked once Kafka has them."""
        self.stats.received += 1
        now = self.clock()
        result = self.acceptor.accept(topic, payload, properties, now, dup)
        if type(result) is Rejected:
            self.stats.reject(result.why.reason)
            if self.stats.rejected <= 20 or self.stats.rejected % 1000 == 0:  # a flood of bad input: sampled
                log.warning("gateway: rejected a message on %s: %s (%s); %d rejected so far", result.origin,
                            result.why.reason, result.why.detail, self.stats.rejected,
                            extra={"device_id": result.device_id, "reason": result.why.reason})
            device_id = result.device_id
            if device_id is not None and (device_id in self.registry.devices or device_id in self.registry.retired):
                self.health.note(device_id, now, rejected=result.why.reason)
        else:
            self.stats.accepted += 1
            records = result.records
            if records:  # every record's key is the device id
                if result.status is not None:  # type: ignore[union-attr]
                    self.health.note(records[0][1], now, status=result.status)  # type: ignore[union-attr]
                else:
                    self.health.note(records[0][1], now, vitals=result.vitals)  # type: ignore[union-attr]
        self.ledger.produce(mid, qos, result.origin, result.records, result.seq)
        self.ledger.serve()


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


def run_gateway(settings: Settings, client_id: str | None = None, stats_file: str | None = None,
                metrics_port: int | None = None) -> int:
    """``metrics_port``: where /metrics listens (None: ``settings.gateway_metrics_port``; 0: off)."""
    logging.getLogger().setLevel(logging.INFO)
    port = settings.gateway_metrics_port if metrics_port is None else metrics_port
    prom = new_registry()
    metrics = GatewayMetrics(prom)
    serve_metrics(prom, port, what="gateway", setting="GS_GATEWAY_METRICS_PORT")  # before any connection
    registry = Registry.load(settings.config_dir)
    gateway = Gateway(settings, registry, client_id=client_id, stats_file=stats_file, metrics=metrics)
    signal.signal(signal.SIGTERM, lambda *_: gateway.stop())
    gateway.start()
    # What start-up built (modules, pydantic, paho, confluent-kafka) stays out of the garbage collector's full
    # collections: each one walked it all, ~20 ms of the ~30 ms one took under load (issue 15).
    gc.collect()
    gc.freeze()
    # The in-flight messages' few objects each (thousands in flight) set off a young collection every ~100
    # messages that found them all alive: ~0.6 us a message. At 10,000 most are delivered and gone first.
    gc.set_threshold(GC_YOUNG_THRESHOLD, *gc.get_threshold()[1:])
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
