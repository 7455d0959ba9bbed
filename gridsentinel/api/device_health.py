"""What the API follows live: the registry's feed (``gs.devices``), the gateways' health reports
(``gs.device-health``) and the devices' status / last will (``gs.device-status``).

``HealthBoard`` keeps, per device, the latest report of each gateway and the latest status: per-device
state only (a report replaces the one before it), so memory does not grow with the messages. ``view``
merges the gateways' reports (core/device_health.py ``merge``) and judges the state (``judge``).

``start_following`` is the one entry point the app's lifespan calls (kept apart so that an API reading the
registry from elsewhere only drops the registry follower).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

from gridsentinel.core.device_follow import RegistryFollower, TopicFollower
from gridsentinel.core.device_health import SILENT_AFTER, HealthReport, judge, merge
from gridsentinel.core.devices import Device, Registry
from gridsentinel.core.records import DeviceStatus, RecordError
from gridsentinel.core.topics import Topics
from gridsentinel.settings import Settings


class HealthBoard:
    """Latest health report per (device, gateway) and latest status per device."""

    def __init__(self) -> None:
        self._reports: dict[str, dict[str, HealthReport]] = {}
        self._status: dict[str, tuple[str, float]] = {}
        self._lock = threading.Lock()

    def take_report(self, key: bytes | None, value: bytes | None) -> None:
        """A ``gs.device-health`` message (``ValueError`` for one that is not a report)."""
        report = HealthReport.decode(key, value)
        with self._lock:
            held = self._reports.setdefault(report.device_id, {})
            old = held.get(report.gateway)
            if old is None or report.at >= old.at:
                held[report.gateway] = report

    def take_status(self, key: bytes | None, value: bytes | None) -> None:
        """A ``gs.device-status`` message (``ValueError`` for one that is not a status)."""
        if value is None:
            raise ValueError("gs.device-status message has no value")
        try:
            status = DeviceStatus.from_json(value)
        except (RecordError, TypeError) as exc:
            raise ValueError(f"gs.device-status message does not parse: {exc}") from None
        with self._lock:
            old = self._status.get(status.device_id)
            if old is None or status.received_at >= old[1]:
                self._status[status.device_id] = (status.status, status.received_at)

    def view(self, device: Device, now: float) -> dict[str, Any]:
        """The device's health as the API answers it."""
        with self._lock:
            reports = list(self._reports.get(device.id, {}).values())
            status = self._status.get(device.id)
        m = merge(reports, now)
        st, st_at = m.status, m.status_at
        if status is not None and (st_at is None or status[1] >= st_at):
            st, st_at = status
        verdict = judge(now, device.expected_interval_s, m.last_seen, st, st_at)
        return {
            "device_id": device.id, "kind": device.kind, "grid_code": device.grid_code,
            "state": verdict.state, "online": verdict.state == "online", "reason": verdict.reason,
            "since": verdict.since, "last_seen": m.last_seen, "status": st, "status_at": st_at,
            "expected_interval_s": device.expected_interval_s,
            "silent_after_s": SILENT_AFTER * device.expected_interval_s,
            "messages": m.messages, "rejections": m.rejections,
            "messages_per_min": round(m.messages_per_min, 3), "rejections_per_min": round(m.rejections_per_min, 3),
            "battery": m.vitals.get("battery"), "battery_level": m.vitals.get("battery_level"),
            "rssi": m.vitals.get("rssi"), "vitals_at": m.vitals_at, "gateways": m.gateways,
        }


@dataclass
class Following:
    """The followers the API runs (stopped by ``stop``)."""

    registry: RegistryFollower | None
    health: TopicFollower
    status: TopicFollower

    def stop(self) -> None:
        for f in (self.registry, self.health, self.status):
            if f is not None:
                f.stop(2.0)

    def stats(self) -> dict[str, Any]:
        return {f.name: {**f.stats, "caught_up": f.caught_up.is_set()}
                for f in (self.registry, self.health, self.status) if f is not None}


def start_following(settings: Settings, registry: Registry | None, board: HealthBoard) -> Following:
    """Follow the registry's feed into ``registry`` (None: the registry is kept elsewhere) and the health
    and status topics into ``board``, each in a daemon thread. Returns at once (the API serves meanwhile)."""
    topics, bootstrap = Topics(settings.topic_prefix), settings.kafka_bootstrap
    follower = (RegistryFollower(registry, bootstrap, topics.devices, name="api registry").start()
                if registry is not None else None)
    health = TopicFollower(bootstrap, topics.device_health, board.take_report, name="api device health",
                           ensure={"cleanup.policy": "compact"}).start()
    status = TopicFollower(bootstrap, topics.device_status, board.take_status, name="api device status",
                           ensure={}).start()
    return Following(follower, health, status)
