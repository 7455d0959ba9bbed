"""Device credentials and the broker ACL, checked by delivery (Mosquitto acks a forbidden publish and
grants a forbidden subscription; what matters is whether the message reaches anyone)."""

from __future__ import annotations

import queue
import uuid

import paho.mqtt.client as mqtt
import pytest

from .conftest import Namespace
from .test_reliability import device_client, drain_device

pytestmark = pytest.mark.integration


def listener(ns: Namespace, username: str, password: str,
             topics: list[str]) -> tuple[mqtt.Client, queue.Queue[bytes]]:
    got: queue.Queue[bytes] = queue.Queue()
    subscribed: queue.Queue[int] = queue.Queue()
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"acl-{uuid.uuid4().hex[:8]}",
                         protocol=mqtt.MQTTv5)
    client.username_pw_set(username, password)
    client.on_message = lambda _c, _u, msg: got.put(bytes(msg.payload))
    client.on_subscribe = lambda _c, _u, mid, _r, _p: subscribed.put(mid)
    client.connect(ns.settings.mqtt_host, ns.settings.mqtt_port)
    client.loop_start()
    client.subscribe([(t, 1) for t in topics])
    subscribed.get(timeout=10)
    return client, got


def test_a_device_cannot_publish_as_another_nor_read_its_topics(ns: Namespace) -> None:
    tag = ns.prefix.strip(".")
    alice, bob = f"alice-{tag}", f"bob-{tag}"
    ns.add_devices([drain_device(alice), drain_device(bob)])
    # A privileged subscriber (the gateway's user) sees everything under both devices (and only theirs:
    # the broker is shared with other tests' devices).
    watcher, seen = listener(ns, "gateway", ns.settings.gateway_password,
                             [f"gs/v1/{alice}/telemetry", f"gs/v1/{bob}/telemetry"])
    # Alice listens to Bob's topic: the broker grants the SUBACK, but must not deliver.
    snoop, snooped = listener(ns, alice, ns.settings.device_password(alice), [f"gs/v1/{bob}/#"])
    a, b = device_client(ns, alice), device_client(ns, bob)
    try:
        a.publish(f"gs/v1/{bob}/telemetry", b"forged by alice", qos=1).wait_for_publish(10)
        a.publish(f"gs/v1/{alice}/telemetry", b"alice's own", qos=1).wait_for_publish(10)
        b.publish(f"gs/v1/{bob}/telemetry", b"bob's own", qos=1).wait_for_publish(10)
        # Messages from one connection arrive in order, and alice's own was published after her forgery
        # was acknowledged: once the watcher has both real ones, a delivered forgery would be here too.
        received = {seen.get(timeout=10), seen.get(timeout=10)}
        assert received == {b"alice's own", b"bob's own"}
        assert seen.empty(), "a forged publish was delivered"
        assert snooped.empty(), "a device read another device's topic"
        # And a wrong password is refused at CONNECT.
        verdict: queue.Queue[bool] = queue.Queue()
        intruder = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"x-{tag}", protocol=mqtt.MQTTv5)
        intruder.username_pw_set(bob, "not-the-password")
        intruder.on_connect = lambda _c, _u, _f, reason, _p: verdict.put(reason.is_failure)
        intruder.connect(ns.settings.mqtt_host, ns.settings.mqtt_port)
        intruder.loop_start()
        try:
            assert verdict.get(timeout=10) is True
        finally:
            intruder.disconnect()
            intruder.loop_stop()
    finally:
        for c in (a, b, watcher, snoop):
            c.disconnect()
            c.loop_stop()
