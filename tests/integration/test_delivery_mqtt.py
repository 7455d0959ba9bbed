"""Notified case events reach MQTT subscribers on gs/v1/alerts/{district}/{street}/{community}/{grid_code} at
QoS 1 (real Mosquitto)."""

from __future__ import annotations

import asyncio
import json
import queue
import uuid

import paho.mqtt.client as mqtt
import pytest

from gridsentinel.alerts.delivery.mqtt import MqttAlertPublisher
from gridsentinel.cases.events import CaseEvent
from gridsentinel.settings import Settings

pytestmark = pytest.mark.integration


def test_case_event_published_at_qos1_to_the_cell_topic(settings: Settings) -> None:
    cell = "320582004001001"
    got: queue.Queue[mqtt.MQTTMessage] = queue.Queue()
    subscribed = queue.Queue[int]()
    sub = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"t-sub-{uuid.uuid4().hex[:8]}", protocol=mqtt.MQTTv5
    )
    sub.username_pw_set("gateway", settings.gateway_password)
    sub.on_message = lambda _c, _u, msg: got.put(msg)
    sub.on_subscribe = lambda _c, _u, mid, _r, _p: subscribed.put(mid)
    sub.connect(settings.mqtt_host, settings.mqtt_port)
    sub.loop_start()
    publisher = MqttAlertPublisher(settings, client_id=f"t-pub-{uuid.uuid4().hex[:8]}")
    try:
        sub.subscribe("gs/v1/alerts/320582/004/#", qos=1)  # the street's alerts: its topic levels
        subscribed.get(timeout=10)
        publisher.start()
        event = CaseEvent(
            event_id=f"{uuid.uuid4()}:1",
            case_id="c",
            type="open",
            at=1.0,
            actor="system:dedup",
            grid_code=cell,
            category_key="event:L005",
            status="open",
            severity="critical",
            notify=True,
        )
        topic = asyncio.run(publisher.publish(event))
        msg = got.get(timeout=10)
        assert topic == msg.topic == f"gs/v1/alerts/320582/004/001/{cell}" and msg.qos == 1
        assert CaseEvent(**json.loads(msg.payload)) == event
    finally:
        publisher.close()
        sub.disconnect()
        sub.loop_stop()
