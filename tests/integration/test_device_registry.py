"""The device registry end to end: PostgreSQL, a private real Mosquitto (its own run folder and port, so its
reloads can be counted) and the shared Kafka under a private topic prefix.

A created device connects with its issued password; a rotation cuts the live connection of the old one and
refuses it while the new one works; a retired device cannot connect; each change lands on gs.devices with
growing revisions; a bulk import of 2,000 devices costs one broker reload; a change committed while Kafka is
unreachable is published by the next sync."""

from __future__ import annotations

import asyncio
import socket
import threading
import uuid
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import paho.mqtt.client as mqtt
import pytest

from gridsentinel.core.device_feed import DeviceChange
from gridsentinel.core.devices import Device, Location
from gridsentinel.core.topics import Topics, delete_topics
from gridsentinel.devices.commands import open_registry
from gridsentinel.devices.registry import DeviceRegistry, Outcome
from gridsentinel.settings import REPO_ROOT, Settings
from gridsentinel.stack.services import Mosquitto

from .conftest import wait_for

pytestmark = pytest.mark.integration
T = TypeVar("T")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def stack(settings: Settings, postgres_url: Callable[[], str], tmp_path: Path) -> Iterator[Settings]:
    """Settings of a private broker (no seeded devices), a fresh PostgreSQL database and a topic prefix."""
    config = tmp_path / "config"
    config.mkdir()
    (config / "devices.yaml").write_text("devices: []\n")
    (config / "grid.geojson").write_text((REPO_ROOT / "config" / "grid.geojson").read_text())
    prefix = f"t{uuid.uuid4().hex[:10]}."
    private = settings.with_(run_dir=tmp_path / "run", mqtt_port=free_port(), config_dir=config,
                             database_url=postgres_url(), topic_prefix=prefix)
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


class Client:
    """A device's MQTT connection, kept open: records whether it was accepted and when it was cut."""

    def __init__(self, settings: Settings, device_id: str, password: str) -> None:
        self.accepted = threading.Event()
        self.refused = threading.Event()
        self.cut = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{device_id}-{uuid.uuid4().hex[:6]}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(device_id, password)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = lambda *_: self.cut.set()
        self.client.connect(settings.mqtt_host, settings.mqtt_port, keepalive=30)
        self.client.loop_start()
        wait_for(lambda: self.accepted.is_set() or self.refused.is_set(), 10, f"{device_id}'s CONNACK", every=0.05)

    def _on_connect(self, _c: object, _u: object, _f: object, reason: mqtt.ReasonCode, _p: object) -> None:
        (self.refused if reason.is_failure else self.accepted).set()
        if reason.is_failure:
            self.client.disconnect()

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def connects(settings: Settings, device_id: str, password: str) -> bool:
    client = Client(settings, device_id, password)
    client.close()
    return client.accepted.is_set()


def feed(settings: Settings, expected: int) -> list[DeviceChange]:
    from confluent_kafka import Consumer

    consumer = Consumer({"bootstrap.servers": settings.kafka_bootstrap, "group.id": f"check-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    consumer.subscribe([Topics(settings.topic_prefix).devices])
    changes: list[DeviceChange] = []
    try:
        def more() -> bool:
            for msg in consumer.consume(1000, 0.5):
                if msg.error() is None:
                    changes.append(DeviceChange.decode(msg.key(), msg.value()))
            return len(changes) >= expected

        wait_for(more, 30, f"{expected} changes on gs.devices", every=0)
    finally:
        consumer.close()
    return changes


def reloads(settings: Settings) -> int:
    return (settings.run_dir / "mosquitto" / "broker.log").read_text().count("Reloading config.")


def test_issued_rotated_and_retired_credentials_on_the_real_broker(stack: Settings) -> None:
    device = Device(id="pipe-1", kind="drain_level", location=Location(lat=31.87225, lon=120.55053))
    created = registry_run(stack, lambda r: r.create(device, "test"))
    first = created.passwords["pipe-1"]
    assert created.pending == 0
    live = Client(stack, "pipe-1", first)
    assert live.accepted.is_set(), "a created device connects with its issued password"
    assert not connects(stack, "pipe-1", "not-the-password")

    rotated = registry_run(stack, lambda r: r.rotate("pipe-1", "test"))
    second = rotated.passwords["pipe-1"]
    wait_for(live.cut.is_set, 10, "the reload to cut the old credential's live connection", every=0.05)
    live.close()
    assert not connects(stack, "pipe-1", first), "the old password is refused after a rotation"
    assert connects(stack, "pipe-1", second)

    registry_run(stack, lambda r: r.move("pipe-1", Location(lat=31.87055, lon=120.55073), "test"))
    holder = Client(stack, "pipe-1", second)
    registry_run(stack, lambda r: r.retire("pipe-1", "test", "replaced"))
    wait_for(holder.cut.is_set, 10, "the reload to cut the retired device's connection", every=0.05)
    holder.close()
    assert not connects(stack, "pipe-1", second), "a retired device cannot connect"

    changes = feed(stack, 4)
    assert [(c.revision, c.state, c.credential_epoch) for c in changes] == [
        (1, "active", 1), (2, "active", 2), (3, "active", 2), (4, "retired", 3)]
    assert changes[2].device.grid_code == "320582004001007" and changes[3].actor == "test"


def test_bulk_import_of_2000_devices_is_one_reload(stack: Settings, tmp_path: Path) -> None:
    rows = "".join(f"bulk-{i:04d},noise,{31.870 + (i % 40) * 0.0001:.4f},{120.550 + (i // 40) * 0.0001:.4f}\n"
                   for i in range(2000))
    text = "id,kind,lat,lon\n" + rows
    before = reloads(stack)
    dry = registry_run(stack, lambda r: r.import_text(text, "bulk.csv", "test", dry_run=True))
    assert dry.ok and dry.devices == 2000 and dry.outcome is None
    assert reloads(stack) == before
    report = registry_run(stack, lambda r: r.import_text(text, "bulk.csv", "test", dry_run=False))
    outcome = report.outcome
    assert outcome is not None and report.ok
    assert len(outcome.records) == 2000 and outcome.pending == 0
    assert reloads(stack) - before == 1, "one broker reload for the whole import"
    for device_id in ("bulk-0000", "bulk-1999"):
        assert connects(stack, device_id, outcome.passwords[device_id])
    assert not connects(stack, "bulk-0000", outcome.passwords["bulk-1999"])  # one password opens one device
    assert len({c.device_id for c in feed(stack, 2000)}) == 2000


def test_a_change_committed_while_kafka_is_down_is_published_by_sync(stack: Settings) -> None:
    down = stack.with_(kafka_bootstrap=f"127.0.0.1:{free_port()}")  # nothing listens there
    device = Device(id="late-1", kind="noise", location=Location(lat=31.872, lon=120.555))

    async def create_while_down() -> Outcome:
        async with open_registry(down) as registry:
            assert registry.publisher is not None
            registry.publisher.timeout_s = 2
            return await registry.create(device, "test")

    outcome = asyncio.run(create_while_down())
    assert outcome.publish_error and outcome.pending == 1
    assert connects(stack, "late-1", outcome.passwords["late-1"])
    synced, removed = registry_run(stack, lambda r: r.sync())
    assert synced.published == 1 and synced.pending == 0 and removed == []
    [change] = feed(stack, 1)
    assert (change.device_id, change.revision) == ("late-1", 1)


def test_the_simulator_takes_back_a_device_the_registry_rotated(stack: Settings) -> None:
    """A rotated device's password cannot be read back: the simulator (and the demo) gives it the derived one
    again instead of publishing into a refusal, and the device stays managed (``up`` leaves it alone)."""
    broker = Mosquitto(stack)
    device = Device(id="pipe-2", kind="drain_level", location=Location(lat=31.87225, lon=120.55053))
    issued = registry_run(stack, lambda r: r.create(device, "test")).passwords["pipe-2"]
    derived = stack.device_password("pipe-2")
    assert connects(stack, "pipe-2", issued) and not connects(stack, "pipe-2", derived)

    assert broker.ensure_simulated(["pipe-2"]) == ["pipe-2"]
    assert connects(stack, "pipe-2", derived), "the simulator can publish as the device again"
    assert not connects(stack, "pipe-2", issued)
    assert "pipe-2" in broker.managed_devices()
    assert broker.ensure_simulated(["pipe-2"]) == []  # already the derived password: nothing to take back
    assert connects(stack, "pipe-2", derived)
