"""The gateway's per-device health counters, and the reports it produces to ``gs.device-health``.

``HealthTracker.note`` runs for every message on paho's network thread (a dict lookup, a few counters,
a lock nobody else holds for long); ``HealthTracker.reports`` runs on the main loop every few seconds and
returns a ``HealthReport`` (core/device_health.py) of each device that changed since the last one. Only
registered devices (active or retired) are tracked, so memory is one small record per device, whatever
arrives.
"""

from __future__ import annotations

import threading

from gridsentinel.core.device_health import BUCKET_S, HealthReport, RateWindow


class _DeviceCounters:
    __slots__ = ("since", "last_seen", "messages", "rejections", "status", "status_at", "vitals", "vitals_at",
                 "message_window", "rejection_window")

    def __init__(self, now: float) -> None:
        self.since = now
        self.last_seen: float | None = None
        self.messages = 0
        self.rejections: dict[str, int] = {}
        self.status: str | None = None
        self.status_at: float | None = None
        self.vitals: dict[str, float] = {}
        self.vitals_at: float | None = None
        self.message_window = RateWindow()
        self.rejection_window = RateWindow()


class HealthTracker:
    """Per-device counters of one gateway (``gateway``: its client id, in every report)."""

    def __init__(self, gateway: str) -> None:
        self.gateway = gateway
        self._devices: dict[str, _DeviceCounters] = {}
        self._dirty: set[str] = set()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._devices)

    def note(self, device_id: str, now: float, *, status: str | None = None, rejected: str | None = None,
             vitals: dict[str, float] | None = None) -> None:
        """One message of a registered device: a status (``status``: online/offline), or telemetry/frame
        (``rejected``: its dead-letter reason, if it was rejected; ``vitals``: battery/signal it carried)."""
        with self._lock:
            c = self._devices.get(device_id)
            if c is None:
                c = self._devices[device_id] = _DeviceCounters(now)
            self._dirty.add(device_id)
            if status is not None:
                c.status, c.status_at = status, now
                return
            c.last_seen = now
            c.messages += 1
            c.message_window.add(now)
            if rejected is not None:
                c.rejections[rejected] = c.rejections.get(rejected, 0) + 1
                c.rejection_window.add(now)
            if vitals:
                c.vitals.update(vitals)
                c.vitals_at = now

    def reports(self, now: float) -> list[HealthReport]:
        """A report of each device noted since the last call (then forgotten as changed)."""
        with self._lock:
            dirty, self._dirty = self._dirty, set()
            out = []
            for device_id in dirty:
                c = self._devices[device_id]
                out.append(HealthReport(
                    device_id=device_id, gateway=self.gateway, at=now, since=c.since, last_seen=c.last_seen,
                    messages=c.messages, rejections=dict(c.rejections), status=c.status, status_at=c.status_at,
                    vitals=dict(c.vitals), vitals_at=c.vitals_at, bucket_s=BUCKET_S,
                    message_buckets=c.message_window.buckets(now),
                    rejection_buckets=c.rejection_window.buckets(now)))
        return out

    def again(self, device_id: str) -> None:
        """A report that Kafka failed: send the device's next report anyway."""
        with self._lock:
            if device_id in self._devices:
                self._dirty.add(device_id)
