"""Per-center alert subscribers on a real Mosquitto (a private one: its own run folder, port and ACL), with
the case database on SQLite and on PostgreSQL.

A street subscriber gets its street's alerts and not another street's, even subscribed to ``#``; it can read
no device telemetry and publish nothing (neither a forged alert nor into the device topics its username
would have by the device pattern); a district subscriber gets both streets of its district, a city
subscriber every district of its city; a revoked subscriber is cut at the reload and refused after it; a
rotated one works with its new password only.

Mosquitto grants a SUBACK for any filter and acknowledges a forbidden PUBLISH; what matters is delivery.
Messages leave the broker towards one subscriber in the order the broker accepted them, and every publish
below waits for its acknowledgement before the next one starts, so once a subscriber has the last message,
an earlier one it was allowed would be in its queue already."""

from __future__ import annotations

import asyncio
import json
import queue
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import paho.mqtt.client as mqtt
import pytest

from gridsentinel.alerts.delivery.mqtt import MqttAlertPublisher
from gridsentinel.cases.events import CaseEvent
from gridsentinel.core.alert_topics import alert_topic
from gridsentinel.core.devices import Device, Location
from gridsentinel.devices.commands import open_registry
from gridsentinel.devices.subscriber_commands import open_subscribers
from gridsentinel.devices.subscribers import SubscriberRegistry
from gridsentinel.settings import REPO_ROOT, Settings
from gridsentinel.stack.services import Mosquitto

from .conftest import wait_for
from .test_device_registry import Client, connects, free_port

pytestmark = pytest.mark.integration
T = TypeVar("T")

STREET_A = "320582004001001"  # in the shipped grid
STREET_B = "320582005001001"  # added below: another street of district 320582
DISTRICT_2 = "320583001001001"  # added below: another district of city 3205


@pytest.fixture
def stack(settings: Settings, case_store_url: str, tmp_path: Path) -> Iterator[Settings]:
    """A private broker and a grid of two streets in district 320582 and a second district, 320583."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "devices.yaml").write_text("devices: []\n")
    grid = json.loads((REPO_ROOT / "config" / "grid.geojson").read_text())
    first = grid["features"][0]
    for code in (STREET_B, DISTRICT_2):  # the same square again under other codes: only the codes matter here
        grid["features"].append({**first, "properties": {"code": code, "name": code}})
    (config / "grid.geojson").write_text(json.dumps(grid))
    private = settings.with_(run_dir=tmp_path / "run", mqtt_port=free_port(), config_dir=config,
                             database_url=case_store_url)
    broker = Mosquitto(private)
    broker.start(lambda _: None)
    yield private
    broker.proc.stop()


def subscribers(settings: Settings, action: Callable[[SubscriberRegistry], Awaitable[T]]) -> T:
    async def main() -> T:
        async with open_subscribers(settings) as registry:
            return await action(registry)

    return asyncio.run(main())


class Listener:
    """An MQTT client kept open that records the topics (and payloads) delivered to it."""

    def __init__(self, settings: Settings, username: str, password: str, filters: list[str]) -> None:
        self.got: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.cut = threading.Event()
        subscribed: queue.Queue[int] = queue.Queue()
        connected = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{username}-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(username, password)
        self.client.on_connect = lambda _c, _u, _f, reason, _p: (None if reason.is_failure else connected.set())
        self.client.on_message = lambda _c, _u, msg: self.got.put((msg.topic, bytes(msg.payload)))
        self.client.on_subscribe = lambda _c, _u, mid, _r, _p: subscribed.put(mid)
        self.client.on_disconnect = lambda *_: self.cut.set()
        self.client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
        self.client.loop_start()
        assert connected.wait(10), f"{username} could not connect"
        if filters:
            self.client.subscribe([(f, 1) for f in filters])
            subscribed.get(timeout=10)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1).wait_for_publish(10)

    def take(self, n: int) -> list[str]:
        """The topics of the next ``n`` messages (waits for each: a bound, not a timing assertion)."""
        return [self.got.get(timeout=10)[0] for _ in range(n)]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def event(cell: str) -> CaseEvent:
    return CaseEvent(event_id=f"{uuid.uuid4()}:1", case_id=f"c-{cell}", type="open", at=1.0, actor="system:dedup",
                     grid_code=cell, category_key="event:L005", status="open", severity="critical", notify=True)


def test_each_center_reads_its_own_alerts_and_nothing_else(stack: Settings) -> None:
    async def create(registry: SubscriberRegistry) -> dict[str, str]:
        out = {}
        for name, center in (("street-a", "street:320582004"), ("district-320582", "district:320582"),
                             ("city-3205", "city:3205")):
            issued = await registry.create(name, center, "test")
            assert issued.password is not None
            out[name] = issued.password
        return out

    passwords = subscribers(stack, create)

    async def add_device() -> str:
        async with open_registry(stack, publish=False) as registry:
            outcome = await registry.create(Device(id="drain-1", kind="drain_level",
                                                   location=Location(lat=31.87225, lon=120.55053)), "test")
            return outcome.passwords["drain-1"]

    device_password = asyncio.run(add_device())

    street = Listener(stack, "street-a", passwords["street-a"], ["#"])  # asks for everything
    district = Listener(stack, "district-320582", passwords["district-320582"], ["gs/v1/alerts/#"])
    city = Listener(stack, "city-3205", passwords["city-3205"], ["gs/v1/alerts/#"])
    watcher = Listener(stack, "gateway", stack.gateway_password, ["gs/v1/#"])  # sees what the broker delivers
    device = Listener(stack, "drain-1", device_password, [])
    publisher = MqttAlertPublisher(stack, client_id=f"t-pub-{uuid.uuid4().hex[:8]}")
    publisher.start()
    try:
        device.publish("gs/v1/drain-1/telemetry", b'{"seq": 1}')
        street.publish(alert_topic(STREET_A), b"forged alert")  # a subscriber may not publish alerts...
        street.publish("gs/v1/street-a/telemetry", b"forged reading")  # ...nor under its name (device pattern)
        for cell in (STREET_B, DISTRICT_2, STREET_A):
            asyncio.run(publisher.publish(event(cell)))

        assert street.take(1) == [alert_topic(STREET_A)]
        assert street.got.empty(), "the street subscriber got another street's alert or a device's telemetry"
        assert district.take(2) == [alert_topic(STREET_B), alert_topic(STREET_A)]
        assert district.got.empty(), "the district subscriber got another district's alert"
        assert city.take(3) == [alert_topic(STREET_B), alert_topic(DISTRICT_2), alert_topic(STREET_A)]
        # the broker delivered the telemetry (to the gateway) but none of the subscriber's forgeries
        assert watcher.take(4) == ["gs/v1/drain-1/telemetry", alert_topic(STREET_B), alert_topic(DISTRICT_2),
                                   alert_topic(STREET_A)]
        assert watcher.got.empty(), "a subscriber's publish was delivered"

        # revoked: the reload cuts the live connection; the password is refused afterwards
        subscribers(stack, lambda r: r.revoke("street-a", "test"))
        wait_for(street.cut.is_set, 10, "the reload to cut the revoked subscriber", every=0.05)
        assert not connects(stack, "street-a", passwords["street-a"])

        # rotated: the old password is refused, the new one reads the district's alerts again
        rotated = subscribers(stack, lambda r: r.rotate("district-320582", "test"))
        assert rotated.password is not None
        wait_for(district.cut.is_set, 10, "the reload to cut the old credential's connection", every=0.05)
        assert not connects(stack, "district-320582", passwords["district-320582"])
        again = Listener(stack, "district-320582", rotated.password, ["gs/v1/alerts/#"])
        try:
            asyncio.run(publisher.publish(event(STREET_B)))
            assert again.take(1) == [alert_topic(STREET_B)]
        finally:
            again.close()
        assert city.take(1) == [alert_topic(STREET_B)] and not city.cut.is_set()  # others were not touched
    finally:
        publisher.close()
        for listener in (street, district, city, watcher, device):
            listener.close()


def test_a_subscriber_name_and_a_device_id_never_collide(stack: Settings) -> None:
    from gridsentinel.devices.store import DeviceConflict

    subscribers(stack, lambda r: r.create("street-a", "street:320582004", "test"))

    async def device_named_like_it() -> None:
        async with open_registry(stack, publish=False) as registry:
            await registry.create(Device(id="street-a", kind="noise",
                                         location=Location(lat=31.87225, lon=120.55053)), "test")

    with pytest.raises(DeviceConflict, match="alert subscribers' MQTT usernames"):
        asyncio.run(device_named_like_it())
    client = Client(stack, "street-a", "not-the-password")
    client.close()
    assert client.refused.is_set()
