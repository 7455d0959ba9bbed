"""Following the device registry live, against the real broker and Kafka.

- A gateway (in this process, so its registry and counters can be read) takes readings from a registered
  device and from one not registered yet, while 10,000 ``DeviceChange`` messages are produced to
  ``gs.devices``: it applies them all without a restart, the new device's readings are accepted once its
  change is in (dead-lettered ``unknown_device`` before), none of the registered device's readings is
  lost, and after a retirement the device's next messages are dead-lettered ``device_retired``.
- The API follows the registry and the device health and status topics: a device's last will makes it
  ``offline``, another one's silence (3 x its interval) makes it ``silent``.
"""

from __future__ import annotations

import asyncio
import base64
import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import paho.mqtt.client as mqtt
import pytest
from confluent_kafka import Producer

from gridsentinel.api.app import create_app
from gridsentinel.api.auth import TokenEntry, TokenStore, hash_token
from gridsentinel.core.device_feed import DeviceChange
from gridsentinel.core.devices import Device, Location, Registry
from gridsentinel.core.records import DeadLetter, Reading
from gridsentinel.gateway.service import Gateway, GatewayOptions
from gridsentinel.settings import Settings
from gridsentinel.stack.services import Mosquitto

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration

WHERE = Location(lat=31.87225, lon=120.55053)  # in config/grid.geojson
CHANGES = 10_000


def _device(device_id: str, interval: float = 300.0) -> Device:
    return Device(id=device_id, kind="drain_level", location=WHERE, expected_interval_s=interval)


def _change(device: Device, revision: int = 1, state: str = "active") -> DeviceChange:
    return DeviceChange(device=device, state=state, revision=revision, changed_at=time.time(),  # type: ignore[arg-type]
                        actor="test")


def _client(settings: Settings, device_id: str, will: bool = False) -> mqtt.Client:
    connected = threading.Event()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{device_id}-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(device_id, settings.device_password(device_id))
    if will:
        client.will_set(f"gs/v1/{device_id}/status", b"offline", qos=1, retain=False)
    client.on_connect = lambda *a: connected.set()
    client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
    client.loop_start()
    assert connected.wait(15), f"{device_id} could not connect to MQTT"
    return client


def _reading(seq: int) -> bytes:
    return json.dumps({"ts": time.time(), "seq": seq, "metrics": {"water_level_m": 0.3}}).encode()


@contextmanager
def _gateway(ns: Namespace, name: str, **options: float) -> Iterator[Gateway]:
    # its own shared-subscription group: another gateway on this machine must not take half the messages
    settings = ns.settings.with_(mqtt_share_group=f"g{ns.prefix.strip('.')}")
    gateway = Gateway(settings, Registry.load(ns.config_dir), client_id=f"gw-{ns.prefix.strip('.')}-{name}",
                      options=GatewayOptions(**options))  # type: ignore[arg-type]
    ns.gateway_ids.add(gateway.client_id)
    gateway.start()
    runner = threading.Thread(target=gateway.run, kwargs={"report_every_s": 0}, daemon=True)
    runner.start()
    try:
        yield gateway
    finally:
        gateway.stop()
        runner.join(10)
        gateway.close(10)


def _read_all(ns: Namespace, topic: str, until: int, timeout: float = 60) -> list[bytes]:
    """Every record of ``topic`` (waits until there are at least ``until``)."""
    consumer = ns.consumer([topic])
    out: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error() and msg.value() is not None:
                out.append(msg.value())  # type: ignore[arg-type]
            elif msg is None and len(out) >= until:
                break
    finally:
        consumer.close()
    return out


def test_the_gateway_follows_10000_changes_while_readings_flow(ns: Namespace) -> None:
    tag = ns.prefix.strip(".")
    old_id, new_id = f"{tag}-old", f"{tag}-mid"  # ids of this test alone: nobody else publishes as them
    ns.add_devices([{"id": old_id, "kind": "drain_level", "location": {"lat": WHERE.lat, "lon": WHERE.lon}}])
    Mosquitto(ns.settings).ensure_devices([new_id])
    with _gateway(ns, "follow") as gateway:
        seeded = len(gateway.registry.devices)
        old, new = _client(ns.settings, old_id), _client(ns.settings, new_id)
        sent: dict[str, list[int]] = {old_id: [], new_id: []}
        stop = threading.Event()

        def publish() -> None:
            seq = 0
            while not stop.is_set():
                seq += 1
                for client, device_id in ((old, old_id), (new, new_id)):
                    try:
                        client.publish(f"gs/v1/{device_id}/telemetry", _reading(seq), qos=1).wait_for_publish(10)
                    except (RuntimeError, ValueError):  # not connected (paho reconnects): not sent, not counted
                        continue
                    sent[device_id].append(seq)
                time.sleep(0.02)

        publisher = threading.Thread(target=publish, daemon=True)
        publisher.start()
        wait_for(lambda: gateway.rejections["unknown_device"] >= 3, 30, "the unregistered device's first messages")

        producer = Producer({"bootstrap.servers": ns.settings.kafka_bootstrap, "linger.ms": 20})
        topic = gateway.topics.devices
        started = time.monotonic()
        for i in range(CHANGES):
            device = _device(new_id) if i == CHANGES // 2 else _device(f"{tag}-n{i:05d}")
            change = _change(device)
            while True:
                try:
                    producer.produce(topic, key=change.key(), value=change.encode())
                    break
                except BufferError:
                    producer.poll(0.1)
        producer.flush(30)
        produced = time.monotonic()
        wait_for(lambda: gateway.follower is not None and gateway.follower.stats["applied"] >= CHANGES, 120,
                 "the gateway to apply every change", every=0.05)
        applied = time.monotonic()
        print(f"\n[follow] {CHANGES} DeviceChange messages: produced in {produced - started:.2f} s, all applied by "
              f"the running gateway {applied - started:.2f} s after the first was produced "
              f"({applied - produced:.2f} s after the last was flushed)")
        assert len(gateway.registry.devices) == seeded + CHANGES
        accepted_before = len(sent[new_id])
        wait_for(lambda: len(sent[new_id]) >= accepted_before + 5, 30, "readings after the registration")

        retire = _change(_device(new_id), revision=2, state="retired")
        producer.produce(topic, key=retire.key(), value=retire.encode())
        producer.flush(10)
        wait_for(lambda: gateway.registry.retirement(new_id) is not None, 30, "the retirement")
        wait_for(lambda: gateway.rejections["device_retired"] >= 3, 30, "the retired device's next messages")
        stop.set()
        publisher.join(10)
        for client in (old, new):
            client.disconnect()
            client.loop_stop()
        wait_for(lambda: gateway.stats.acked >= gateway.stats.received, 30, "Kafka to take every message")
        assert gateway.follower is not None and gateway.follower.stats["bad"] == 0
        assert gateway.stats.recoveries == 0  # the same gateway throughout, never restarted or reconnected

    readings = [Reading.from_json(v) for v in _read_all(ns, gateway.topics.readings, 1)]
    letters = [DeadLetter.from_json(v) for v in _read_all(ns, gateway.topics.deadletter, 1)]
    got = {d: {r.seq for r in readings if r.device_id == d and r.seq is not None} for d in sent}
    assert got[old_id] == set(sent[old_id]), "no reading of a registered device is lost"
    unknown = {json.loads(base64.b64decode(letter.payload_b64))["seq"] for letter in letters
               if letter.device_id == new_id and letter.reason == "unknown_device"}
    retired = [letter for letter in letters if letter.device_id == new_id and letter.reason == "device_retired"]
    retired_seqs = {json.loads(base64.b64decode(letter.payload_b64))["seq"] for letter in retired}
    accepted = got[new_id]
    assert unknown and accepted and retired_seqs
    assert unknown | accepted | retired_seqs == set(sent[new_id]), "each message accepted or dead-lettered"
    assert max(unknown) < min(accepted) and max(accepted) < min(retired_seqs), "once in, accepted until retired"
    assert f"{retire.changed_at:.3f}" in retired[0].detail and "revision 2" in retired[0].detail


def test_the_api_shows_a_last_will_offline_and_a_silence(ns: Namespace) -> None:
    tag = ns.prefix.strip(".")
    willing, quiet = f"{tag}-will", f"{tag}-quiet"
    Mosquitto(ns.settings).ensure_devices([willing, quiet])
    producer = Producer({"bootstrap.servers": ns.settings.kafka_bootstrap})
    for change in (_change(_device(willing, 300.0)), _change(_device(quiet, 1.0))):
        producer.produce(ns.settings.topic_prefix + "gs.devices", key=change.key(), value=change.encode())
    producer.flush(10)
    tokens = TokenStore([TokenEntry(id="t-viewer", role="viewer", hash=hash_token("v-token"))])
    app = create_app(ns.settings, follow_devices=True, tokens=tokens)
    with _gateway(ns, "health", health_every_s=0.5) as gateway:
        wait_for(lambda: gateway.registry.get(quiet) is not None, 30, "the gateway to register the devices")
        a = _client(ns.settings, willing, will=True)
        a.publish(f"gs/v1/{willing}/status", b"online", qos=1).wait_for_publish(10)
        a.publish(f"gs/v1/{willing}/telemetry", _reading(1), qos=1).wait_for_publish(10)
        b = _client(ns.settings, quiet)
        b.publish(f"gs/v1/{quiet}/telemetry", json.dumps({"ts": time.time(), "seq": 1, "metrics": {
            "water_level_m": 0.2, "battery_v": 3.55, "rssi_dbm": -81}}).encode(), qos=1).wait_for_publish(10)
        b.disconnect()
        b.loop_stop()

        async def scenario() -> None:
            async with app.router.lifespan_context(app):
                transport = httpx.ASGITransport(app=app)
                async with httpx.AsyncClient(transport=transport, base_url="http://api",
                                             headers={"Authorization": "Bearer v-token"}) as http:
                    async def health(device_id: str) -> dict[str, object]:
                        r = await http.get(f"/api/v1/devices/{device_id}/health")
                        return r.json() if r.status_code == 200 else {}  # 404 until the API has it

                    await _until(lambda: health(willing), lambda h: h.get("state") == "online"
                                 and h.get("messages") == 1, "the device online")
                    sock = a.socket()
                    assert sock is not None
                    sock.close()  # a dead connection: the broker publishes the last will
                    h = await _until(lambda: health(willing), lambda h: h.get("state") == "offline",
                                     "the last will to make it offline")
                    assert "last will" in str(h["reason"]) and h["status"] == "offline"
                    s = await _until(lambda: health(quiet), lambda h: h.get("state") == "silent",
                                     "the silence to show")
                    assert s["battery"] == 3.55 and s["rssi"] == -81 and s["messages"] == 1
                    assert "3 x the expected interval of 1 s" in str(s["reason"])
                    listed = (await http.get("/api/v1/devices/health", params={"status": "offline"})).json()
                    ids = {item["device_id"] for item in listed["items"]}
                    assert {willing, quiet} <= ids and listed["timezone"] == "Asia/Shanghai"
                    only_silent = (await http.get("/api/v1/devices/health", params={"status": "silent"})).json()
                    assert quiet in {i["device_id"] for i in only_silent["items"]}
                    assert willing not in {i["device_id"] for i in only_silent["items"]}

        asyncio.run(scenario())
        a.loop_stop()


async def _until(fetch, ok, what: str, timeout: float = 30.0):
    """Poll ``fetch`` until ``ok`` holds for its answer (a bound on waiting, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    last: dict[str, object] = {}
    while time.monotonic() < deadline:
        last = await fetch()
        if ok(last):
            return last
        await asyncio.sleep(0.3)
    raise AssertionError(f"gave up waiting {timeout:.0f}s for {what}; last answer: {last}")
