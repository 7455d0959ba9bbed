"""Provisioning while a load runs (issue 19's "done when"), on a private real Mosquitto (its password file is
the registry's to write), the shared Kafka under a private prefix, PostgreSQL and a gateway that follows the
registry's feed.

While three devices publish readings without pause, the registry creates a fourth that starts publishing at
once with its issued password, rotates one device's credential and retires another. Then:
- no reading is lost: every reading the broker acknowledged from a device in good standing is on
  ``gs.readings`` (the new device's first ones too: the gateway reads the feed up to its end before it calls
  a device unknown);
- nothing is accepted from a rotated-out or retired credential: the broker cut their live connections at the
  reload and refuses them after (paho keeps trying); no acknowledgement came after the cut;
- no process restarted: the same gateway thread ran throughout, without a recovery, and applied each change.
"""

from __future__ import annotations

import asyncio
import base64
import json
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Consumer

from gridsentinel.core.devices import Device, Location, Registry
from gridsentinel.core.records import DeadLetter, Reading
from gridsentinel.core.topics import Topics, delete_topics
from gridsentinel.devices.commands import open_registry
from gridsentinel.devices.registry import DeviceRegistry
from gridsentinel.gateway.service import Gateway, GatewayOptions
from gridsentinel.settings import REPO_ROOT, Settings
from gridsentinel.stack.services import Mosquitto

from .conftest import wait_for

pytestmark = pytest.mark.integration
T = TypeVar("T")
WHERE = Location(lat=31.87225, lon=120.55053)  # in config/grid.geojson


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def stack(settings: Settings, postgres_url: Callable[[], str], tmp_path: Path) -> Iterator[Settings]:
    config = tmp_path / "config"
    config.mkdir()
    (config / "devices.yaml").write_text("devices: []\n")
    (config / "grid.geojson").write_text((REPO_ROOT / "config" / "grid.geojson").read_text())
    prefix = f"t{uuid.uuid4().hex[:10]}."
    private = settings.with_(run_dir=tmp_path / "run", mqtt_port=free_port(), config_dir=config,
                             database_url=postgres_url(), topic_prefix=prefix,
                             mqtt_share_group=f"g{prefix.strip('.')}")
    broker = Mosquitto(private)
    broker.start(lambda _: None)
    yield private
    broker.proc.stop()
    delete_topics(settings.kafka_bootstrap, prefix)


def registry_run(settings: Settings, action: Callable[[DeviceRegistry], Awaitable[T]]) -> T:
    async def main() -> T:
        async with open_registry(settings) as registry:
            return await action(registry)

    return asyncio.run(main())


class Publisher:
    """One MQTT connection publishing QoS 1 readings in its own thread. ``acked``: seq -> when the broker
    acknowledged it; ``cut_at``: when the broker closed the connection (paho calls both from its thread, in
    the order the packets came)."""

    def __init__(self, settings: Settings, device_id: str, password: str, first_seq: int) -> None:
        self.device_id = device_id
        self.acked: dict[int, float] = {}
        self.cut_at: float | None = None
        self.refusals = 0
        self._connected = threading.Event()
        self._stop = threading.Event()
        self._seq = first_seq
        self._mids: dict[int, int] = {}
        self._lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{device_id}-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(device_id, password)
        self.client.reconnect_delay_set(1, 1)  # a cut-off device keeps trying, as a real one does
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_publish = self._on_publish
        self.client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
        self.client.loop_start()
        assert self._connected.wait(10), f"{device_id} could not connect"
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _on_connect(self, _c: object, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        if reason.is_failure:
            self.refusals += 1
        else:
            self._connected.set()

    def _on_disconnect(self, *_: object) -> None:
        if self.cut_at is None and self._connected.is_set() and not self._stop.is_set():
            self.cut_at = time.time()

    def _on_publish(self, _c: object, _u: object, mid: int, _rc: object, _p: object) -> None:
        with self._lock:
            seq = self._mids.pop(mid, None)
        if seq is not None:
            self.acked[seq] = time.time()

    def _run(self) -> None:
        while not self._stop.is_set():
            body = json.dumps({"ts": time.time(), "seq": self._seq, "metrics": {"water_level_m": 0.4}}).encode()
            with self._lock:
                info = self.client.publish(f"gs/v1/{self.device_id}/telemetry", body, qos=1)
                if info.rc == mqtt.MQTT_ERR_SUCCESS:
                    self._mids[info.mid] = self._seq
            self._seq += 1
            time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(5)
        time.sleep(0.5)  # the last acknowledgements
        self.client.disconnect()
        self.client.loop_stop()


def read_topic(settings: Settings, topic: str) -> list[bytes]:
    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"check-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([topic])
    out: list[bytes] = []
    idle_since = time.monotonic()
    try:
        while time.monotonic() - idle_since < 3:
            msgs = consumer.consume(1000, 0.5)
            for msg in msgs:
                if msg.error() is None and msg.value() is not None:
                    out.append(msg.value())  # type: ignore[arg-type]
            if msgs:
                idle_since = time.monotonic()
    finally:
        consumer.close()
    return out


def test_register_rotate_and_retire_while_a_load_runs(stack: Settings) -> None:
    devices = {name: Device(id=name, kind="drain_level", location=WHERE) for name in ("steady", "rotated", "retired")}
    passwords: dict[str, str] = {}
    for device in devices.values():
        passwords.update(registry_run(stack, lambda r, d=device: r.create(d, "test")).passwords)  # type: ignore[misc]

    gateway = Gateway(stack, Registry.load(stack.config_dir), client_id=f"gw-{stack.topic_prefix.strip('.')}",
                      options=GatewayOptions())
    gateway.start()
    runner = threading.Thread(target=gateway.run, kwargs={"report_every_s": 0}, daemon=True)
    runner.start()
    try:
        assert {d for d in devices if gateway.registry.get(d) is not None} == set(devices)
        pubs = {name: Publisher(stack, name, passwords[name], 1) for name in devices}
        wait_for(lambda: all(len(p.acked) >= 20 for p in pubs.values()), 30, "readings flowing")

        fresh = registry_run(stack, lambda r: r.create(Device(id="fresh", kind="drain_level", location=WHERE), "test"))
        pubs["fresh"] = Publisher(stack, "fresh", fresh.passwords["fresh"], 1)  # at once: no wait for the gateway

        rotated = registry_run(stack, lambda r: r.rotate("rotated", "test"))
        rotated_done = time.time()
        wait_for(lambda: pubs["rotated"].cut_at is not None, 10, "the rotation to cut the old credential")
        pubs["rotated-new"] = Publisher(stack, "rotated", rotated.passwords["rotated"], 1_000_000)

        registry_run(stack, lambda r: r.retire("retired", "test", "replaced"))
        retired_done = time.time()
        wait_for(lambda: pubs["retired"].cut_at is not None, 10, "the retirement to cut the device")
        wait_for(lambda: gateway.registry.retirement("retired") is not None, 30, "the gateway to see the retirement")

        wait_for(lambda: pubs["rotated"].refusals >= 2 and pubs["retired"].refusals >= 2, 20,
                 "the cut-off devices to try again and be refused")
        wait_for(lambda: len(pubs["fresh"].acked) >= 20 and len(pubs["rotated-new"].acked) >= 20, 30,
                 "the new device and the new credential publishing")
        for p in pubs.values():
            p.stop()
        wait_for(lambda: gateway.stats.acked >= gateway.stats.received, 30, "Kafka to take every message")
        assert runner.is_alive() and gateway.stats.recoveries == 0, "the same gateway throughout"
        assert gateway.follower is not None and gateway.follower.stats["applied"] >= 6
        assert gateway.follower.stats["bad"] == 0
    finally:
        gateway.stop()
        runner.join(10)
        gateway.close(10)

    topics = Topics(stack.topic_prefix)
    readings = [Reading.from_json(v) for v in read_topic(stack, topics.readings)]
    letters = [DeadLetter.from_json(v) for v in read_topic(stack, topics.deadletter)]
    got: dict[str, set[int]] = {}
    for r in readings:
        if r.seq is not None:
            got.setdefault(r.device_id, set()).add(r.seq)
    assert not [(x.device_id, x.reason) for x in letters if x.device_id in ("steady", "fresh", "rotated")]

    for name in ("steady", "fresh"):
        assert set(pubs[name].acked) <= got.get(name, set()), f"{name}: a reading the broker took is lost"
    old, new = pubs["rotated"], pubs["rotated-new"]
    assert set(old.acked) | set(new.acked) <= got["rotated"], "rotated: a reading the broker took is lost"
    assert old.cut_at is not None and max(old.acked.values()) <= old.cut_at <= rotated_done + 1
    # at most the few messages in flight when the cut came (their PUBACK lost with it), nothing after it
    assert max(s for s in got["rotated"] if s < 1_000_000) <= max(old.acked) + 5
    gone = pubs["retired"]
    assert gone.cut_at is not None and max(gone.acked.values()) <= gone.cut_at <= retired_done + 1
    late = {x.reason for x in letters if x.device_id == "retired"}
    assert late <= {"device_retired"}, late
    dead = {json.loads(base64.b64decode(x.payload_b64))["seq"] for x in letters if x.device_id == "retired"}
    taken = got.get("retired", set()) | dead
    assert set(gone.acked) <= taken, "retired: a reading the broker took before the cut is lost"
    assert max(taken) <= max(gone.acked) + 5, "nothing from the retired device after the cut"
