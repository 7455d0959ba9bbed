"""Device registrations reload the broker in batches: a burst of them costs one (or a few) SIGHUPs, and
every registered device can connect as soon as its registration returns.

Runs its own Mosquitto (the project's build, a private run folder and port), so counting reloads in its
log is not disturbed by other tests registering devices on the shared broker."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from gridsentinel.settings import Settings
from gridsentinel.stack.services import Mosquitto

pytestmark = pytest.mark.integration


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Mosquitto]:
    config = tmp_path / "config"
    config.mkdir()
    (config / "devices.yaml").write_text("devices: []\n")
    settings = Settings().with_(run_dir=tmp_path / "run", mqtt_port=free_port(), config_dir=config)
    mosquitto = Mosquitto(settings)
    mosquitto.start(lambda _: None)
    yield mosquitto
    mosquitto.proc.stop()


def reloads(mosquitto: Mosquitto) -> int:
    return (mosquitto.dir / "broker.log").read_text().count("Reloading config.")


def connects(mosquitto: Mosquitto, device_id: str) -> bool:
    """One CONNECT with the device's credentials, right away: accepted or not (no retry)."""
    s = mosquitto.settings
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{device_id}-check", protocol=mqtt.MQTTv5)
    client.username_pw_set(device_id, s.device_password(device_id))
    result: list[bool] = []
    client.on_connect = lambda _c, _u, _f, reason, _p: result.append(not reason.is_failure)
    client.connect(s.mqtt_host, s.mqtt_port, keepalive=10)
    client.loop_start()
    try:
        for _ in range(100):
            if result:
                break
            threading.Event().wait(0.05)
    finally:
        client.disconnect()
        client.loop_stop()
    return bool(result and result[0])


def test_a_burst_of_registrations_shares_one_reload_and_every_device_connects(broker: Mosquitto) -> None:
    before = reloads(broker)
    ids = [f"burst-{i:02d}" for i in range(20)]
    accepted: dict[str, bool] = {}
    errors: list[BaseException] = []

    def register(device_id: str) -> None:
        try:
            broker.ensure_devices([device_id])
            accepted[device_id] = connects(broker, device_id)  # as soon as its registration returned
        except BaseException as exc:  # reported below, with the others
            errors.append(exc)

    threads = [threading.Thread(target=register, args=(d,)) for d in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors
    assert accepted == {d: True for d in ids}, "a device could not connect after its registration returned"
    assert broker.known_users() >= set(ids)
    assert 1 <= reloads(broker) - before <= 3, f"{reloads(broker) - before} reloads for {len(ids)} registrations"


def test_registering_known_devices_again_does_not_reload(broker: Mosquitto) -> None:
    broker.ensure_devices(["again-1", "again-2"])
    before = reloads(broker)
    broker.ensure_devices(["again-2", "again-1"])
    assert reloads(broker) == before
    assert connects(broker, "again-1") and connects(broker, "again-2")

