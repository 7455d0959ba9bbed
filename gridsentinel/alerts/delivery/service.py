""":class:`AlertDelivery`: what the Faust case stage calls for every case event it produces.

    delivery = AlertDelivery.from_settings(settings, on_dead_letter=produce_dead_letter)
    await delivery.start()
    ...
    results = await delivery.deliver(event)   # per event from apply_detection / sweep / transitions
    ...
    await delivery.close()

Events without ``notify`` are skipped. Each matching receiver gets the event (CAP 1.2 XML when the
receiver wants CAP and the category is an emergency one, JSON otherwise), concurrently; every notified
event also goes to MQTT. A failed delivery ends as a dead letter through ``on_dead_letter``; ``deliver``
itself does not raise for a receiver's failure.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import logging
import time
from collections.abc import Callable
from datetime import tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

from gridsentinel.alerts.delivery.cap import CONTENT_TYPE as CAP_CONTENT_TYPE
from gridsentinel.alerts.delivery.cap import build_cap, is_emergency
from gridsentinel.alerts.delivery.config import Receiver, ReceiversFile, load_receivers
from gridsentinel.alerts.delivery.mqtt import MqttAlertPublisher, MqttDeliveryError
from gridsentinel.alerts.delivery.routing import receivers_for
from gridsentinel.alerts.delivery.webhook import DeadLetterSink, DeliveryResult, Payload, WebhookSender
from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.events import CaseEvent
from gridsentinel.core.records import DeadLetter
from gridsentinel.settings import Settings

log = logging.getLogger(__name__)


class AlertDelivery:
    def __init__(
        self,
        config: ReceiversFile,
        *,
        webhook: WebhookSender,
        mqtt: MqttAlertPublisher | None = None,
        event_names: dict[str, str] | None = None,
        tz: tzinfo | None = None,
        on_dead_letter: DeadLetterSink | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.config = config
        self.webhook = webhook
        self.mqtt = mqtt
        self.event_names = event_names or {}
        self.tz = tz or ZoneInfo("UTC")
        self._on_dead_letter = on_dead_letter
        self._clock = clock
        # Secrets resolved once, at construction: a missing one stops start-up, not the first alert.
        self._secrets = {r.name: r.resolve_secret() for r in config.receivers}

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        on_dead_letter: DeadLetterSink | None = None,
        path: Path | None = None,
        mqtt: bool | None = None,
        config: ReceiversFile | None = None,
        catalog: Catalog | None = None,
    ) -> AlertDelivery:
        """Load ``receivers.yaml`` (default ``<config_dir>/receivers.yaml``), category names and the
        calendar's time zone from the config folder; MQTT as configured unless ``mqtt`` says otherwise.
        ``config`` / ``catalog``: use these (the live versions) instead of the files."""
        from gridsentinel.cases.categories import load_catalog

        config = config or load_receivers(path or settings.config_dir / "receivers.yaml")
        catalog = catalog or load_catalog(settings.config_dir)
        use_mqtt = config.mqtt.enabled if mqtt is None else mqtt
        publisher = (
            MqttAlertPublisher(settings, topic_prefix=config.mqtt.topic_prefix, qos=config.mqtt.qos)
            if use_mqtt
            else None
        )
        delivery = cls(
            config,
            webhook=WebhookSender(on_dead_letter=on_dead_letter),  # its own aiohttp session, made on first use
            mqtt=publisher,
            event_names={k: p.spec.name for k, p in catalog.policies.items()},
            tz=ZoneInfo(catalog.calendar.timezone),
            on_dead_letter=on_dead_letter,
        )
        return delivery

    def reconfigure(self, config: ReceiversFile) -> list[str]:
        """Switch to a new ``receivers.yaml`` from the next event on: receivers, their routing and
        secrets, CAP settings, the MQTT topic prefix and QoS. Secrets are resolved first: a missing one
        raises ``ConfigError`` and the old config stays. ``mqtt.enabled`` is not switched live (it needs
        the MQTT connection opened or closed): a change of it is returned as a note and applies at the
        next start. Returns such notes."""
        secrets = {r.name: r.resolve_secret() for r in config.receivers}
        notes = []
        if config.mqtt.enabled != (self.mqtt is not None):
            notes.append(f"mqtt.enabled={config.mqtt.enabled} applies at the next restart")
        if self.mqtt is not None:
            self.mqtt.topic_prefix, self.mqtt.qos = config.mqtt.topic_prefix, config.mqtt.qos
        self.config, self._secrets = config, secrets  # deliver() reads both per event
        return notes

    def use_catalog(self, catalog: Catalog) -> None:
        """Category names (CAP event names) and the calendar's time zone of a new catalogue."""
        self.event_names = {k: p.spec.name for k, p in catalog.policies.items()}
        self.tz = ZoneInfo(catalog.calendar.timezone)

    async def start(self) -> None:
        if self.mqtt is not None:
            await asyncio.to_thread(self.mqtt.start)

    async def close(self) -> None:
        if self.mqtt is not None:
            self.mqtt.close()
        await self.webhook.close()

    def payload_for(self, receiver: Receiver, event: CaseEvent, body: bytes | None = None) -> Payload:
        """What ``receiver`` gets for ``event``. ``body``: the event's JSON as read from ``gs.case-events``
        (:meth:`CaseEvent.to_json`'s bytes, as the cases stage produced them), the JSON body as it is."""
        if receiver.format == "cap" and is_emergency(event, self.config.cap):
            cap = build_cap(
                event, self.config.cap, event_name=self.event_names.get(event.category_key, ""), tz=self.tz
            )
            return Payload(event.event_id, event.type, cap, CAP_CONTENT_TYPE)
        return Payload(event.event_id, event.type, body or event.to_json(), "application/json")

    async def deliver(self, event: CaseEvent, body: bytes | None = None) -> list[DeliveryResult]:
        """Deliver one case event to its receivers and MQTT; the webhook results (empty if not notified).
        ``body``: the event's JSON as read (see :meth:`payload_for`); without it the event is encoded."""
        if not event.notify:
            return []
        config, secrets = self.config, self._secrets  # one receivers version for the whole event
        jobs = [
            self.webhook.send(r, self.payload_for(r, event, body), secrets[r.name])
            for r in receivers_for(event, config.receivers)
        ]
        # one receiver (the usual case): awaited as it is, without a task of its own for gather to wait on
        results = [await jobs[0]] if len(jobs) == 1 else list(await asyncio.gather(*jobs))
        if self.mqtt is not None:
            try:
                await self.mqtt.publish(event)
            except MqttDeliveryError as exc:
                log.warning("MQTT delivery of %s failed: %s", event.event_id, exc)
                await self._mqtt_dead_letter(event, str(exc))
        return results

    async def deliver_many(self, events: list[CaseEvent]) -> list[DeliveryResult]:
        """Deliver events in order (one case's events stay ordered for each receiver)."""
        out: list[DeliveryResult] = []
        for event in events:
            out += await self.deliver(event)
        return out

    async def _mqtt_dead_letter(self, event: CaseEvent, error: str) -> None:
        if self._on_dead_letter is None:
            return
        letter = DeadLetter(
            reason="mqtt_failed",
            detail=f"event {event.event_id}: {error}",
            origin=f"mqtt:{event.grid_code}",
            received_at=self._clock(),
            payload_b64=base64.b64encode(event.to_json()).decode(),
        )
        outcome = self._on_dead_letter(letter)
        if inspect.isawaitable(outcome):
            await outcome
