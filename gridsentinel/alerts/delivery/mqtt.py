"""MQTT alert publisher: notified case events to ``gs/v1/alerts/{district}/{street}/{community}/{grid_code}``
at QoS 1 (paho, I/O). The topic levels follow the grid code (gridsentinel/core/alert_topics.py) so the
broker ACL can give a center's subscribers its own alerts only (``gridsentinel centers subscriber``).

Connects as the gateway user (the broker ACL lets it write alerts). paho's network thread never raises
into our code: a refused connection is stored and raised by :meth:`start` / :meth:`publish` in the
caller's task, and ``publish`` waits for the broker's PUBACK off the event loop.
"""

from __future__ import annotations

import asyncio
import os
import socket
import threading
from typing import Any

import paho.mqtt.client as mqtt

from gridsentinel.cases.events import CaseEvent
from gridsentinel.core.alert_topics import AlertTopicError, alert_topic
from gridsentinel.errors import ServiceError
from gridsentinel.settings import Settings


class MqttDeliveryError(ServiceError):
    """The broker refused the connection or did not acknowledge a publish."""


__all__ = ["MqttAlertPublisher", "MqttDeliveryError", "alert_topic"]


class MqttAlertPublisher:
    def __init__(
        self,
        settings: Settings,
        *,
        topic_prefix: str = "gs/v1/alerts",
        qos: int = 1,
        client_id: str | None = None,
        username: str = "gateway",
        password: str | None = None,
        ack_timeout_s: float = 10.0,
    ) -> None:
        self.settings = settings
        self.topic_prefix = topic_prefix
        self.qos = qos
        self.ack_timeout_s = ack_timeout_s
        self.client_id = client_id or f"gs-alerts-{socket.gethostname()}-{os.getpid()}"
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=self.client_id, protocol=mqtt.MQTTv5
        )
        self._client.username_pw_set(
            username, password if password is not None else settings.gateway_password
        )
        self._client.on_connect = self._on_connect
        self._connected = threading.Event()
        self._error: str | None = None

    def _on_connect(self, _c: mqtt.Client, _u: Any, _f: Any, reason: Any, _p: Any) -> None:
        if reason.is_failure:
            self._error = f"MQTT broker refused {self.client_id}: {reason}"
        self._connected.set()

    def _raise_stored(self) -> None:
        if self._error is not None:
            raise MqttDeliveryError(self._error)

    def start(self, timeout_s: float = 10.0) -> None:
        """Connect and start paho's network thread; raise if the broker refuses or does not answer."""
        try:
            self._client.connect(self.settings.mqtt_host, self.settings.mqtt_port, keepalive=30)
        except OSError as exc:
            raise MqttDeliveryError(
                f"cannot reach MQTT {self.settings.mqtt_host}:{self.settings.mqtt_port}: {exc}"
            ) from exc
        self._client.loop_start()
        if not self._connected.wait(timeout_s):
            raise MqttDeliveryError(
                f"no CONNACK from MQTT {self.settings.mqtt_host}:{self.settings.mqtt_port}"
            )
        self._raise_stored()

    async def publish(self, event: CaseEvent) -> str:
        """Publish ``event`` and wait for the broker's acknowledgement; return the topic."""
        self._raise_stored()
        try:
            topic = alert_topic(event.grid_code, self.topic_prefix)
        except AlertTopicError as exc:  # dead-lettered by the caller, like a refused publish
            raise MqttDeliveryError(f"event {event.event_id}: {exc}") from exc
        info = self._client.publish(topic, event.to_json(), qos=self.qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            raise MqttDeliveryError(f"publish to {topic} failed: {mqtt.error_string(info.rc)}")
        await asyncio.to_thread(info.wait_for_publish, self.ack_timeout_s)
        if not info.is_published():
            raise MqttDeliveryError(f"no acknowledgement for {event.event_id} on {topic}")
        return topic

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
