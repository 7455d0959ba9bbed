"""Device health: what the gateways report per device (``gs.device-health``) and how a state is judged.

Each gateway counts, per device, the messages it took and the ones it rejected (by reason), when it last
heard from the device, the device's last status (``online``/``offline``, its retained status or its
last will) and its last battery and signal readings, if it reports them. Every few seconds it produces a
``HealthReport`` of each device that changed to the compacted ``gs.device-health`` topic (key = device
id; ``gateway`` in the value, so a reader keeps one report per gateway and merges them: with a shared
subscription, one device's messages are spread over every gateway).

Rates come from a ``RateWindow``: counts in fixed buckets of wall time (30 s by default, ten of them:
a five-minute window). A report carries its buckets, so a reader computes the rate at its own time and a
device that went quiet decays to zero without another report; merging two gateways adds their buckets.

``judge`` turns what is known of a device into its state, whichever comes first:

- ``offline`` (reason ``last_will``): its status says offline (the broker published its last will, or it
  said so itself) and nothing came from it after that;
- ``silent``: nothing arrived for ``SILENT_AFTER`` x its ``expected_interval_s``;
- ``online``: heard from within that time (or it said ``online`` and is not silent yet);
- ``unknown``: nothing on record at all.

Memory is per device: a fixed number of buckets, a counter per rejection reason (a closed set of codes).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

SILENT_AFTER = 3.0  # silent when nothing arrived for this many expected intervals
BUCKET_S = 30.0
BUCKETS = 10  # window: BUCKETS x BUCKET_S = five minutes

# Metrics whose last value the health report keeps: (report field, reading metric names).
VITALS: dict[str, str] = {"battery": "battery", "battery_level": "battery_level", "rssi": "rssi"}

STATES = ("online", "offline", "silent", "unknown")


class RateWindow:
    """Event counts in ``buckets`` buckets of ``bucket_s`` seconds of wall time (fixed memory).

    >>> w = RateWindow()
    >>> for t in range(0, 120, 2): w.add(1000.0 + t)
    >>> w.total(1120.0), round(w.per_minute(1120.0, since=1000.0), 1)
    (60, 30.0)
    >>> w.total(1000.0 + 301 + 120)  # five minutes of quiet later, the window is empty
    0
    """

    __slots__ = ("bucket_s", "counts", "stamps")

    def __init__(self, bucket_s: float = BUCKET_S, buckets: int = BUCKETS) -> None:
        self.bucket_s = bucket_s
        self.counts = [0] * buckets
        self.stamps = [-1] * buckets  # the bucket number (time // bucket_s) each slot holds

    @property
    def window_s(self) -> float:
        return self.bucket_s * len(self.counts)

    def add(self, now: float, n: int = 1) -> None:
        idx = int(now // self.bucket_s)
        slot = idx % len(self.counts)
        if self.stamps[slot] != idx:
            self.stamps[slot] = idx
            self.counts[slot] = 0
        self.counts[slot] += n

    def buckets(self, now: float) -> dict[int, int]:
        """The live buckets at ``now``: bucket number -> count (what a report carries)."""
        low = int(now // self.bucket_s) - len(self.counts)
        return {s: c for s, c in zip(self.stamps, self.counts, strict=True) if s > low and c}

    def total(self, now: float) -> int:
        return sum(self.buckets(now).values())

    def per_minute(self, now: float, since: float | None = None) -> float:
        return rate_per_minute(self.buckets(now), now, self.bucket_s, len(self.counts), since)


def rate_per_minute(buckets: dict[int, int], now: float, bucket_s: float = BUCKET_S, n: int = BUCKETS,
                    since: float | None = None) -> float:
    """Events per minute in the window ending at ``now`` (buckets older than the window do not count).
    ``since``: when counting began (a window that started later is shorter, not emptier)."""
    low = int(now // bucket_s) - n
    count = sum(c for b, c in buckets.items() if b > low)
    span = bucket_s * n
    if since is not None:
        span = min(span, max(bucket_s, now - since))
    return count * 60.0 / span


@dataclass
class HealthReport:
    """One gateway's view of one device (the ``gs.device-health`` value)."""

    device_id: str
    gateway: str
    at: float  # when the report was made (the gateway's clock)
    since: float  # when this gateway began counting for the device
    last_seen: float | None = None  # its last telemetry or frame (status messages are not "seen")
    messages: int = 0  # telemetry and frames taken since ``since``, accepted or not
    rejections: dict[str, int] = field(default_factory=dict)  # by reason, since ``since``
    status: str | None = None  # online / offline: its last status message (or last will)
    status_at: float | None = None
    vitals: dict[str, float] = field(default_factory=dict)  # battery / battery_level / rssi: last value
    vitals_at: float | None = None
    bucket_s: float = BUCKET_S
    message_buckets: dict[int, int] = field(default_factory=dict)
    rejection_buckets: dict[int, int] = field(default_factory=dict)

    def encode(self) -> bytes:
        body = {k: v for k, v in self.__dict__.items()}
        body["message_buckets"] = {str(k): v for k, v in self.message_buckets.items()}
        body["rejection_buckets"] = {str(k): v for k, v in self.rejection_buckets.items()}
        return json.dumps(body, separators=(",", ":")).encode()

    @classmethod
    def decode(cls, key: bytes | None, value: bytes | None) -> HealthReport:
        """Parse one ``gs.device-health`` message (``ValueError`` with the reason when it is not one)."""
        if value is None:
            raise ValueError("gs.device-health message has no value")
        try:
            body = json.loads(value)
            report = cls(
                device_id=str(body["device_id"]), gateway=str(body["gateway"]), at=float(body["at"]),
                since=float(body["since"]), last_seen=_opt_float(body.get("last_seen")),
                messages=int(body.get("messages", 0)),
                rejections={str(k): int(v) for k, v in (body.get("rejections") or {}).items()},
                status=body.get("status"), status_at=_opt_float(body.get("status_at")),
                vitals={str(k): float(v) for k, v in (body.get("vitals") or {}).items()},
                vitals_at=_opt_float(body.get("vitals_at")), bucket_s=float(body.get("bucket_s", BUCKET_S)),
                message_buckets={int(k): int(v) for k, v in (body.get("message_buckets") or {}).items()},
                rejection_buckets={int(k): int(v) for k, v in (body.get("rejection_buckets") or {}).items()})
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"gs.device-health message does not parse: {exc!r}") from None
        if key is not None and key.decode(errors="replace") != report.device_id:
            raise ValueError(f"gs.device-health key {key!r} differs from the device id {report.device_id!r}")
        if report.status not in (None, "online", "offline"):
            raise ValueError(f"gs.device-health status {report.status!r} is not online/offline")
        return report


def _opt_float(v: Any) -> float | None:
    if v is None:
        return None
    f = float(v)
    if not math.isfinite(f):
        raise ValueError(f"{v!r} is not a finite number")
    return f


@dataclass(frozen=True)
class Verdict:
    state: str  # one of STATES
    reason: str  # a sentence
    since: float | None  # when the state began (the will's time, or when the silence began)


def judge(now: float, expected_interval_s: float, last_seen: float | None, status: str | None,
          status_at: float | None) -> Verdict:
    """The device's state from its last message and its last status, whichever says offline first.

    >>> judge(1000.0, 60, last_seen=990.0, status="online", status_at=900.0).state
    'online'
    >>> judge(1000.0, 60, last_seen=990.0, status="offline", status_at=995.0).reason
    'last will / status offline at 995 (nothing from it since)'
    >>> v = judge(1000.0, 60, last_seen=800.0, status="offline", status_at=990.0)
    >>> v.state, v.since  # silent from 980 (800 + 3 x 60): that came first
    ('silent', 980.0)
    """
    limit = SILENT_AFTER * expected_interval_s
    will = status_at if status == "offline" and status_at is not None and (
        last_seen is None or status_at >= last_seen) else None
    silent_from: float | None = None
    if last_seen is not None and now - last_seen >= limit:
        silent_from = last_seen + limit
    elif last_seen is None and status == "online" and status_at is not None and now - status_at >= limit:
        silent_from = status_at + limit  # said online, then never sent anything
    if will is not None and (silent_from is None or will <= silent_from):
        return Verdict("offline", f"last will / status offline at {will:.0f} (nothing from it since)", will)
    if silent_from is not None:
        heard = f"last message at {last_seen:.0f}" if last_seen is not None else f"online at {status_at:.0f}"
        return Verdict("silent", f"nothing for {now - (silent_from - limit):.0f} s, more than {SILENT_AFTER:g} x "
                       f"the expected interval of {expected_interval_s:g} s ({heard})", silent_from)
    if last_seen is None and status is None:
        return Verdict("unknown", "no message and no status from it on record", None)
    return Verdict("online", "heard from within the expected time" if last_seen is not None
                   else "its status says online", status_at if last_seen is None else last_seen)


@dataclass
class Merged:
    """Every gateway's report of one device, merged (``merge``)."""

    last_seen: float | None = None
    messages: int = 0
    rejections: dict[str, int] = field(default_factory=dict)
    status: str | None = None
    status_at: float | None = None
    vitals: dict[str, float] = field(default_factory=dict)
    vitals_at: float | None = None
    messages_per_min: float = 0.0
    rejections_per_min: float = 0.0
    gateways: list[str] = field(default_factory=list)


def merge(reports: list[HealthReport], now: float) -> Merged:
    """Sum counters and bucket rates over gateways; newest last-seen, status and vitals win."""
    out = Merged()
    if not reports:
        return out
    msg: dict[int, int] = {}
    rej: dict[int, int] = {}
    for r in reports:
        out.gateways.append(r.gateway)
        out.messages += r.messages
        for reason, n in r.rejections.items():
            out.rejections[reason] = out.rejections.get(reason, 0) + n
        if r.last_seen is not None and (out.last_seen is None or r.last_seen > out.last_seen):
            out.last_seen = r.last_seen
        if r.status_at is not None and (out.status_at is None or r.status_at > out.status_at):
            out.status, out.status_at = r.status, r.status_at
        if r.vitals and r.vitals_at is not None and (out.vitals_at is None or r.vitals_at > out.vitals_at):
            out.vitals, out.vitals_at = dict(r.vitals), r.vitals_at
        for b, c in r.message_buckets.items():
            msg[b] = msg.get(b, 0) + c
        for b, c in r.rejection_buckets.items():
            rej[b] = rej.get(b, 0) + c
    since = min(r.since for r in reports)
    bucket_s = reports[0].bucket_s
    out.messages_per_min = rate_per_minute(msg, now, bucket_s, since=since)
    out.rejections_per_min = rate_per_minute(rej, now, bucket_s, since=since)
    out.gateways.sort()
    return out
