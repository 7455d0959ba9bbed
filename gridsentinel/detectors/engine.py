"""The detection engine: one ``DeviceDetectors`` bank per device, fed in event-time order.

Pure and deterministic (no clock, no I/O): the Faust stage and the backtest drive the same engine. Per
device it keeps a small reorder buffer keyed by event time. A reading is released to the detectors once
the device's watermark (its newest event time) is ``lateness_s`` past it, or when ``check(now)`` finds the
device quiet for ``idle_flush_s`` (so a device that goes silent is not held back). A reading older than
what was already released (the watermark minus the lateness) cannot be put in order any more: it is
rejected as ``too_late`` (see ``take_rejected``).

Rain gauges feed drains: a ``rain_rate`` reading of a rain gauge is remembered per grid cell, and a drain's
rain-aware detectors get the rain of their own and neighbouring cells (event time up to the drain
reading's) before each of its readings. ``note_rain``/``rain_for`` let a partitioned stage share rain
across workers.

>>> from gridsentinel.detectors.config import DetectorConfig
>>> from gridsentinel.ingest.registry import Device, Registry
>>> config = DetectorConfig.model_validate({"version": "v1", "lateness_s": 60, "kinds": {"cover_tilt": {
...     "metrics": ["tilt"], "category": {"code": "0103", "standard": "GB/T 30428.2-2013"},
...     "detectors": {"cover_tilt": {"alarm_deg": 10.0, "hold_s": 0.0}}}}})
>>> registry = Registry([Device(id="cover-7", kind="cover_tilt", location={"lat": 31.9, "lon": 120.5},
...                             grid_code="320582110152102")])
>>> engine = DetectionEngine(config, registry)
>>> engine.process(Reading("cover-7", "tilt", "deg", 95.0, 100.0))   # buffered: within lateness
[]
>>> [(d.kind, d.severity) for d in engine.process(Reading("cover-7", "tilt", "deg", 96.0, 170.0))]
[('cover_tilt', 'critical')]
>>> engine.process(Reading("cover-7", "tilt", "deg", 1.0, 90.0)), engine.take_rejected()[0].reason
([], 'too_late')
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from gridsentinel.detectors.bank import DeviceDetectors
from gridsentinel.detectors.config import DetectorConfig, DeviceSettings
from gridsentinel.ingest.records import Detection, Reading
from gridsentinel.ingest.registry import Device, Registry

RAIN_METRIC = "rain_rate"
RAIN_KIND = "rain_gauge"
RAIN_KEEP = 32  # positive rain readings remembered per grid cell

_SortKey = tuple[float, int, str]


@dataclass(frozen=True, slots=True)
class Rejected:
    """A reading the engine could not use: ``too_late`` or ``unknown_device`` (dead-letter reasons)."""

    reading: Reading
    reason: str
    detail: str


@dataclass
class _DeviceState:
    device: Device
    bank: DeviceDetectors
    buffer: list[tuple[_SortKey, Reading, float]] = field(default_factory=list)
    high: float | None = None  # newest event time seen (the device's watermark)
    frontier: float | None = None  # released up to this event time; older readings are too late
    last_arrival: float | None = None  # processing time of the newest arrival
    rain_seen: float | None = None  # newest rain event time fed to the bank


def _sort_key(r: Reading) -> _SortKey:
    return (r.observed_at, -1 if r.seq is None else r.seq, r.metric)


def _buffer_row(r: Reading, arrived: float) -> list[Any]:
    """A buffered reading as a flat JSON row (the device id is the table key): a fraction of the bytes
    and of the time of ``[arrived, r.to_dict()]``, which the stage writes on every state save."""
    return [arrived, r.metric, r.unit, r.value, r.observed_at, r.seq, r.received_at, r.kind, r.grid_code]


def _from_buffer_row(device_id: str, row: list[Any]) -> tuple[Reading, float]:
    arrived, rest = row[0], row[1:]
    if len(rest) == 1 and isinstance(rest[0], dict):  # the older ``[arrived, reading dict]`` form
        return Reading.from_dict(rest[0]), float(arrived)
    metric, unit, value, observed_at, seq, received_at, kind, grid_code = rest
    reading = Reading(device_id, metric, unit, value, observed_at, seq, received_at, kind, grid_code)
    return reading, float(arrived)


class DetectionEngine:
    """One DeviceDetectors bank per device, created lazily from the detector config and the registry."""

    def __init__(self, config: DetectorConfig, registry: Registry, *, config_version: str | None = None):
        self.config = config
        self.registry = registry
        self.version = config_version or config.version
        self._devices: dict[str, _DeviceState] = {}
        self._rain: dict[str, list[tuple[float, float]]] = {}
        self._rejected: list[Rejected] = []
        self.counts: dict[str, int] = {"readings": 0, "released": 0, "too_late": 0, "unknown_device": 0,
                                       "detections": 0}

    # -- readings ----------------------------------------------------------------------------------

    def process(self, reading: Reading, now: float | None = None) -> list[Detection]:
        """Take one reading (event time from the reading); return detections of the readings released.

        ``now`` is the processing time of its arrival (default: ``received_at``, else the event time); it
        only matters for the idle flush in ``check``.
        """
        self.counts["readings"] += 1
        st = self._state(reading.device_id)
        if st is None:
            self._reject(reading, "unknown_device",
                         f"device {reading.device_id!r} is not in the registry or its kind has no detectors")
            return []
        t = reading.observed_at
        if st.frontier is not None and t < st.frontier:
            self._reject(reading, "too_late",
                         f"event time {t:.3f} is {st.frontier - t:.3f} s older than what device "
                         f"{reading.device_id} already released ({st.frontier:.3f}; lateness "
                         f"{self.config.lateness_s:g} s)")
            return []
        if reading.metric == RAIN_METRIC and st.device.kind == RAIN_KIND and st.device.grid_code:
            self.note_rain(st.device.grid_code, [(t, reading.value)])
        arrived = now if now is not None else (reading.received_at or t)
        st.last_arrival = arrived if st.last_arrival is None else max(st.last_arrival, arrived)
        key = _sort_key(reading)
        i = bisect.bisect_left(st.buffer, key, key=lambda e: e[0])
        if i < len(st.buffer) and st.buffer[i][0] == key and st.buffer[i][1] == reading:
            return []  # the same reading twice (an MQTT/Kafka redelivery): once is enough
        st.buffer.insert(i, (key, reading, arrived))
        st.high = t if st.high is None else max(st.high, t)
        return self._release(st, st.high - self.config.lateness_s)

    def check(self, now: float, devices: Iterable[str] | None = None) -> list[Detection]:
        """Let time pass to ``now`` for ``devices`` (default: every registry device with detectors).

        A quiet device's buffer is flushed first; a device never heard from goes offline from the first
        check that saw it. A device with readings still buffered is not advanced (its readings will).
        """
        ids = sorted(self.registry.devices) if devices is None else list(devices)
        out: list[Detection] = []
        for device_id in ids:
            st = self._state(device_id)
            if st is None:
                continue
            quiet = st.last_arrival is not None and now - st.last_arrival >= self.config.idle_flush_s
            if st.buffer and quiet:
                out += self._release(st, st.buffer[-1][0][0])
            if not st.buffer:
                out += st.bank.check(now)
        self.counts["detections"] += len(out)
        return out

    def flush(self, devices: Iterable[str] | None = None) -> list[Detection]:
        """Release every buffered reading now (the end of a replay)."""
        out: list[Detection] = []
        for device_id in sorted(self._devices) if devices is None else list(devices):
            st = self._devices.get(device_id)
            if st is not None and st.buffer:
                out += self._release(st, st.buffer[-1][0][0])
        return out

    def take_rejected(self) -> list[Rejected]:
        """Readings rejected since the last call (for the dead-letter topic)."""
        out, self._rejected = self._rejected, []
        return out

    # -- rain ----------------------------------------------------------------------------------------

    def note_rain(self, grid_code: str, rain: Iterable[tuple[float, float]] | Iterable[list[float]]) -> None:
        """Remember rain ``(event time, mm/h)`` in a grid cell (positive rates only, newest kept)."""
        cell = self._rain.setdefault(grid_code, [])
        known = set(cell)
        for t, mm_h in rain:
            item = (float(t), float(mm_h))
            if item[1] > 0 and item not in known:
                bisect.insort(cell, item)
                known.add(item)
        del cell[:-RAIN_KEEP]

    def rain_for(self, grid_code: str) -> list[list[float]]:
        """The rain remembered for a cell, JSON-safe (what a stage shares with other workers)."""
        return [[t, v] for t, v in self._rain.get(grid_code, [])]

    def rain_cells(self, device_id: str) -> list[str]:
        """Cells whose rain a drain listens to: its own and the neighbouring ones."""
        device = self.registry.get(device_id)
        if device is None or not device.grid_code:
            return []
        near: Iterable[str] = ()
        if self.registry.grid is not None:
            near = self.registry.grid.neighbours().get(device.grid_code, frozenset())
        return sorted({device.grid_code, *near})

    # -- state ---------------------------------------------------------------------------------------

    def export_state(self, device_id: str) -> dict[str, Any]:
        """JSON-safe state of one device (empty when the engine has none)."""
        st = self._devices.get(device_id)
        if st is None:
            return {}
        return {"bank": st.bank.state(), "params": st.bank.settings.detectors,
                "buffer": [_buffer_row(r, arrived) for _, r, arrived in st.buffer],
                "high": st.high, "frontier": st.frontier, "last_arrival": st.last_arrival,
                "rain_seen": st.rain_seen}

    def import_state(self, device_id: str, state: dict[str, Any]) -> None:
        """Restore a device from ``export_state``; a detector whose settings changed since starts fresh."""
        st = self._state(device_id, fresh=True)
        if st is None or not state:
            return
        params = state.get("params") or {}
        bank_state = state.get("bank") or {}
        kept = {name: s for name, s in (bank_state.get("detectors") or {}).items()
                if params.get(name) == st.bank.settings.detectors.get(name)}
        st.bank.restore({**bank_state, "detectors": kept})
        buffered = [_from_buffer_row(device_id, row) for row in state.get("buffer") or []]
        st.buffer = sorted(((_sort_key(r), r, a) for r, a in buffered), key=lambda e: e[0])
        st.high, st.frontier = state.get("high"), state.get("frontier")
        st.last_arrival, st.rain_seen = state.get("last_arrival"), state.get("rain_seen")

    def known(self, device_id: str) -> bool:
        """Whether the engine holds state for the device (a stage restores it from its table if not)."""
        return device_id in self._devices

    def forget(self, devices: Iterable[str] | None = None) -> None:
        """Drop in-memory state (a stage does it when partitions move to another worker)."""
        for device_id in list(self._devices) if devices is None else list(devices):
            self._devices.pop(device_id, None)

    def reconfigure(self, config: DetectorConfig, version: str) -> set[str]:
        """Rebuild banks for a new config; detectors whose resolved settings did not change keep their
        state. Returns the ids of devices whose detector settings changed."""
        self.config, self.version = config, version
        changed: set[str] = set()
        for device_id, st in list(self._devices.items()):
            settings = self._settings(st.device)
            if settings is None:
                del self._devices[device_id]
                changed.add(device_id)
                continue
            old = st.bank
            bank = DeviceDetectors(settings, lat=old.lat, lon=old.lon, component_id=old.component_id)
            for name, params in settings.detectors.items():
                if old.settings.detectors.get(name) == params:
                    bank.detectors[name] = old.detectors[name]
            if settings.detectors != old.settings.detectors:
                changed.add(device_id)
            st.bank = bank
        return changed

    # -- internals -----------------------------------------------------------------------------------

    def _settings(self, device: Device) -> DeviceSettings | None:
        if device.kind not in self.config.kinds:
            return None
        s = self.config.settings_for(device.id, device.kind, device.grid_code or "")
        detectors = {name: dict(params) for name, params in s.detectors.items()}
        own = self.config.device_overrides.get(device.id)
        named = own.model_dump(exclude_unset=True) if own is not None else {}
        # the registry knows the device better than a kind or a grid does; its own override wins
        if "dropout" in detectors and "expected_interval_s" not in (named.get("dropout") or {}):
            detectors["dropout"]["expected_interval_s"] = device.expected_interval_s
        depth = device.install.get("depth_m")
        if ("drainage_level" in detectors and isinstance(depth, (int, float)) and 0.1 < depth <= 30
                and "depth_m" not in (named.get("drainage_level") or {})):
            detectors["drainage_level"]["depth_m"] = float(depth)
        return replace(s, version=self.version, detectors=detectors)

    def _state(self, device_id: str, fresh: bool = False) -> _DeviceState | None:
        st = self._devices.get(device_id)
        if st is not None and not fresh:
            return st
        device = self.registry.get(device_id)
        if device is None:
            return None
        settings = self._settings(device)
        if settings is None:
            return None
        st = _DeviceState(device, DeviceDetectors(settings, lat=device.location.lat, lon=device.location.lon,
                                                  component_id=device.component_id))
        self._devices[device_id] = st
        return st

    def _release(self, st: _DeviceState, upto: float) -> list[Detection]:
        st.frontier = upto if st.frontier is None else max(st.frontier, upto)
        out: list[Detection] = []
        n = 0
        while n < len(st.buffer) and st.buffer[n][0][0] <= st.frontier:
            out += self._apply(st, st.buffer[n][1])
            n += 1
        del st.buffer[:n]
        self.counts["released"] += n
        self.counts["detections"] += len(out)
        return out

    def _apply(self, st: _DeviceState, reading: Reading) -> list[Detection]:
        out: list[Detection] = []
        if st.device.kind != RAIN_KIND:
            rain_aware = {n: d for n, d in st.bank.detectors.items() if RAIN_METRIC in d.metrics}
            if rain_aware:
                out += self._feed_rain(st, rain_aware, reading.observed_at)
        return out + st.bank.update(reading)

    def _feed_rain(self, st: _DeviceState, detectors: dict[str, Any], upto: float) -> list[Detection]:
        rain = sorted({item for cell in self.rain_cells(st.device.id) for item in self._rain.get(cell, ())})
        out: list[Detection] = []
        for t, mm_h in rain:
            if t > upto or (st.rain_seen is not None and t <= st.rain_seen):
                continue
            # only the rain-aware detectors hear it: a gauge's reading is not the drain reporting
            synthetic = Reading(st.device.id, RAIN_METRIC, "mm/h", mm_h, t, kind=st.device.kind,
                                grid_code=st.device.grid_code or "")
            for name, det in detectors.items():
                out += st.bank._detections(name, det.update(synthetic).findings)
            st.rain_seen = t
        return out

    def _reject(self, reading: Reading, reason: str, detail: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1
        self._rejected.append(Rejected(reading, reason, detail))


class EventClock:
    """The time line timers run on: the newest event time seen, advanced by the wall time since.

    Devices stamp their readings, and a replay or a simulator runs behind the wall clock. Timers
    (dropout, held states) must judge silence on the event time line, or every device of a replay would
    look offline at once. When the stream goes quiet the clock keeps moving at wall speed, so a silent
    district is still noticed; it never runs ahead of the wall clock.

    >>> clock = EventClock()
    >>> clock.now(wall=5000.0)            # nothing seen yet: the wall clock
    5000.0
    >>> clock.observe(1000.0, wall=5000.0)
    >>> clock.now(wall=5010.0)            # ten seconds of silence after event time 1000
    1010.0
    >>> clock.observe(900.0, wall=5020.0)  # an older event does not move it back
    >>> clock.now(wall=5020.0)
    1020.0
    """

    def __init__(self) -> None:
        self._event: float | None = None
        self._wall = 0.0

    def observe(self, event_time: float, wall: float) -> None:
        if self._event is None or event_time > self._event + (wall - self._wall):
            self._event, self._wall = event_time, wall

    def now(self, wall: float) -> float:
        if self._event is None:
            return wall
        return min(wall, self._event + (wall - self._wall))
