"""The detection engine: one ``DeviceDetectors`` bank per device, fed in event-time order.

Pure and deterministic (no clock, no I/O): the Faust stage and the backtest drive the same engine. Per
device it keeps a small reorder buffer keyed by event time. A reading is released to the detectors once
the device's watermark (its newest event time minus ``skew_s``, 2 s by default) has passed it, or when
``check(now)`` finds the device quiet for ``idle_flush_s`` on the stream's clock (so a device that goes
silent is not held back). A reading older than what the device already released, or more than
``lateness_s`` behind its newest one, cannot be put in order any more: it is rejected as ``too_late``
(see ``take_rejected``).

Rain gauges feed drains: a ``rain_rate`` reading of a rain gauge is remembered per grid cell, and a drain's
rain-aware detectors get the rain of their own and neighbouring cells (event time up to the drain
reading's) before each of its readings. ``note_rain``/``rain_for`` let a partitioned stage share rain
across workers.

>>> from gridsentinel.detectors.config import DetectorConfig
>>> from gridsentinel.core.devices import Device, Registry
>>> config = DetectorConfig.model_validate({"version": "v1", "lateness_s": 60, "kinds": {"cover_tilt": {
...     "metrics": ["tilt"], "detectors": {"cover_tilt": {"alarm_deg": 10.0, "hold_s": 0.0}}}}})
>>> registry = Registry([Device(id="cover-7", kind="cover_tilt", location={"lat": 31.9, "lon": 120.5},
...                             grid_code="320582110152102")])
>>> storm_cover = lambda device_kind, kind, component_class: ("0103", "GB/T 30428.2-2013")
>>> engine = DetectionEngine(config, registry, category_of=storm_cover)  # the catalog's, in a worker
>>> engine.process(Reading("cover-7", "tilt", "deg", 95.0, 100.0))   # buffered: the watermark is at 98
[]
>>> [(d.kind, d.severity) for d in engine.process(Reading("cover-7", "tilt", "deg", 96.0, 103.0))]
[('cover_tilt', 'critical')]
>>> engine.process(Reading("cover-7", "tilt", "deg", 1.0, 99.0)), engine.take_rejected()[0].reason
([], 'too_late')
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Any

from gridsentinel.core.devices import Device, Registry
from gridsentinel.core.records import Detection, Reading
from gridsentinel.detectors.bank import DeviceDetectors
from gridsentinel.detectors.config import DetectorConfig, DeviceSettings
from gridsentinel.detectors.detection import CategoryOf

RAIN_METRIC = "rain_rate"
RAIN_KIND = "rain_gauge"
RAIN_KEEP = 32  # positive rain readings remembered per grid cell
# A device's readings may arrive this much out of order and still be put in order; a busy device's reading
# waits no longer than this plus its reporting interval (a tilt reaches its case within seconds).
SKEW_S = 2.0

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
    released: _SortKey | None = None  # the newest reading released (a redelivery of it is dropped)
    last_arrival: float | None = None  # the stream's clock at the newest arrival (for the idle flush)
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
    """One DeviceDetectors bank per device, created lazily from the detector config and the registry;
    ``category_of`` (config/categories.yaml's ``Catalog.category_of``) labels the detections."""

    def __init__(self, config: DetectorConfig, registry: Registry, *, category_of: CategoryOf,
                 config_version: str | None = None, skew_s: float = SKEW_S):
        self.config = config
        self.category_of = category_of
        self.skew_s = skew_s
        # the stream's first event time (a stage sets it): a device never heard from counts its silence
        # from there; unset, from the first check that sees it
        self.stream_start: float | None = None
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

        ``now`` is the stream's clock at its arrival (the time line ``check`` is called on; default:
        ``received_at``, else the event time); it only matters for the idle flush in ``check``.
        """
        self.counts["readings"] += 1
        st = self._state(reading.device_id)
        if st is None:
            self._reject(reading, "unknown_device",
                         f"device {reading.device_id!r} is not in the registry or its kind has no detectors")
            return []
        t, key = reading.observed_at, _sort_key(reading)
        if st.released is not None and key == st.released:
            return []  # a redelivery of the reading released last: once is enough
        if st.frontier is not None and (t < st.frontier or (st.released is not None and key < st.released)):
            self._reject(reading, "too_late",
                         f"event time {t:.3f} is {st.frontier - t:.3f} s older than what device "
                         f"{reading.device_id} already released ({st.frontier:.3f}; newest {st.high}, "
                         f"lateness {self.config.lateness_s:g} s)")
            return []
        if reading.metric == RAIN_METRIC and st.device.kind == RAIN_KIND and st.device.grid_code:
            self.note_rain(st.device.grid_code, [(t, reading.value)])
        arrived = now if now is not None else (reading.received_at or t)
        st.last_arrival = arrived if st.last_arrival is None else max(st.last_arrival, arrived)
        i = bisect.bisect_left(st.buffer, key, key=lambda e: e[0])
        if i < len(st.buffer) and st.buffer[i][0] == key and st.buffer[i][1] == reading:
            return []  # the same reading twice (an MQTT/Kafka redelivery): once is enough
        st.buffer.insert(i, (key, reading, arrived))
        st.high = t if st.high is None else max(st.high, t)
        return self._release(st, st.high - min(self.skew_s, self.config.lateness_s))

    def check(self, now: float, devices: Iterable[str] | None = None) -> list[Detection]:
        """Let time pass to ``now`` for ``devices`` (default: every registry device with detectors).

        ``now`` is on the stream's time line (event time; the stage's ``PartitionClock``). A quiet
        device's buffer is flushed first; a device never heard from goes offline counted from
        ``stream_start`` (else from the first check that saw it). A device with readings still buffered
        is not advanced (its readings will).
        """
        ids = self.registry.ids() if devices is None else list(devices)
        out: list[Detection] = []
        for device_id in ids:
            st = self._state(device_id)
            if st is None:
                continue
            quiet = st.last_arrival is not None and now - st.last_arrival >= self.config.idle_flush_s
            if st.buffer and quiet:
                out += self._release(st, st.buffer[-1][0][0])  # counted by _release
            if not st.buffer:
                timed = st.bank.check(now)
                self.counts["detections"] += len(timed)
                out += timed
        return out

    def flush(self, devices: Iterable[str] | None = None) -> list[Detection]:
        """Release every buffered reading now (the end of a replay)."""
        out: list[Detection] = []
        for device_id in sorted(self._devices) if devices is None else list(devices):
            st = self._devices.get(device_id)
            if st is not None and st.buffer:
                out += self._release(st, st.buffer[-1][0][0])
        return out

    def newest(self, devices: Iterable[str]) -> float | None:
        """The newest event time the engine holds for any of ``devices`` (None: none of them reported)."""
        times = [st.high for d in devices if (st := self._devices.get(d)) is not None and st.high is not None]
        return max(times, default=None)

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
                "released": None if st.released is None else list(st.released), "rain_seen": st.rain_seen}

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
        released = state.get("released")
        st.released = None if not released else (float(released[0]), int(released[1]), str(released[2]))
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
            bank = DeviceDetectors(settings, self.category_of, since=self.stream_start, lat=old.lat,
                                   lon=old.lon, component_id=old.component_id)
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
        device = self.registry.get(device_id)
        if st is not None and not fresh:
            if st.device is device:
                return st
            return self._changed(st, device)  # the registry changed it (followed feed): moved, retired...
        if device is None:
            return None
        settings = self._settings(device)
        if settings is None:
            return None
        st = _DeviceState(device, DeviceDetectors(settings, self.category_of, since=self.stream_start,
                                                  lat=device.location.lat, lon=device.location.lon,
                                                  component_id=device.component_id))
        self._devices[device_id] = st
        return st

    def _changed(self, st: _DeviceState, device: Device | None) -> _DeviceState | None:
        """A device the registry changed since its bank was made: a retired one (or one whose kind has no
        detectors any more) is dropped (no dropout or offline cases from it); otherwise its bank is remade
        for the new record (grid code, place, interval, install), keeping the state of every detector whose
        settings did not change."""
        device_id = st.device.id
        settings = self._settings(device) if device is not None else None
        if device is None or settings is None:
            del self._devices[device_id]
            return None
        old = st.bank
        bank = DeviceDetectors(settings, self.category_of, since=self.stream_start, lat=device.location.lat,
                               lon=device.location.lon, component_id=device.component_id)
        if (old.lat, old.lon, old.component_id) == (device.location.lat, device.location.lon, device.component_id):
            for name, params in settings.detectors.items():
                if old.settings.detectors.get(name) == params and name in old.detectors:
                    bank.detectors[name] = old.detectors[name]
        st.device, st.bank = device, bank
        return st

    def _release(self, st: _DeviceState, upto: float) -> list[Detection]:
        """Apply the buffered readings up to event time ``upto``. The frontier (older readings are too
        late) is the newest reading released, and never less than ``lateness_s`` behind the newest one."""
        if st.high is not None:
            lowest = st.high - self.config.lateness_s
            st.frontier = lowest if st.frontier is None else max(st.frontier, lowest)
        upto = upto if st.frontier is None else max(upto, st.frontier)
        out: list[Detection] = []
        n = 0
        while n < len(st.buffer) and st.buffer[n][0][0] <= upto:
            out += self._apply(st, st.buffer[n][1])
            n += 1
        if n:
            st.released = st.buffer[n - 1][0]
            t = st.released[0]
            st.frontier = t if st.frontier is None else max(st.frontier, t)
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


class PartitionClock:
    """The time line the timers of a partitioned stage run on: per partition, the newest event time read
    there, advanced by the wall time since it was read, but only once the partition has read all there is.

    Devices stamp their readings, and a replay, a simulator or a backlog runs behind the wall clock, so
    timers (dropout, held tilt, the idle flush) judge silence on event time. A tick carries only the wall
    time it was made; what it means is decided when it is applied (``now``): a partition still reading a
    backlog gets its newest event time and nothing more (hours of backlog read in a minute never look
    like silence); a partition that has caught up moves on at wall speed from its newest reading, so a
    truly silent device is still found on a live stream. A caught-up partition also follows the worker's
    newest event time less ``lag`` (its devices fell silent while other partitions went on). It never
    runs ahead of the wall clock, and before any event time is known there is no time to judge on (None).

    >>> clock = PartitionClock()
    >>> clock.now(0, wall=5000.0, caught_up=True) is None   # nothing read yet: nothing to judge
    True
    >>> clock.observe(0, 1000.0, wall=5000.0)
    >>> clock.now(0, wall=4990.0, caught_up=True)           # a tick made before the reading was read
    1000.0
    >>> clock.now(0, wall=5010.0, caught_up=False)          # a backlog: wall time does not count
    1000.0
    >>> clock.now(0, wall=5010.0, caught_up=True)           # caught up: ten seconds of silence
    1010.0
    >>> clock.now(0, wall=5011.0, caught_up=False)          # and it never goes back
    1010.0
    >>> clock.observe(1, 1600.0, wall=5010.0)
    >>> clock.now(0, wall=5010.0, caught_up=True, lag=120.0)  # partition 1 went on: 1600 - 120
    1480.0
    >>> clock.now(3, wall=5070.0, caught_up=True, lag=120.0)  # nothing read on 3: a minute later
    1540.0
    >>> clock.now(2, wall=5010.0, caught_up=False) is None  # unread readings, nothing read: wait
    True
    """

    def __init__(self) -> None:
        self._read: dict[int, tuple[float, float]] = {}  # partition -> (newest event time, wall when read)
        self._given: dict[int, float] = {}  # partition -> the latest ``now`` given: time never goes back
        self.first: float | None = None  # the earliest event time read (where the stream starts)

    def observe(self, partition: int, event_time: float, wall: float) -> None:
        """A reading read on ``partition`` at wall time ``wall`` (a device clock ahead is capped at it)."""
        event_time = min(event_time, wall)
        self.first = event_time if self.first is None else min(self.first, event_time)
        seen = self._read.get(partition)
        if seen is None or event_time > seen[0]:
            self._read[partition] = (event_time, wall)

    def seed(self, partition: int, event_time: float | None, wall: float) -> None:
        """Start a partition with no reading read yet from its devices' saved newest event time."""
        if event_time is not None and partition not in self._read:
            self._read[partition] = (min(event_time, wall), wall)

    def known(self, partition: int) -> bool:
        return partition in self._read

    def forget(self, partition: int) -> None:
        self._read.pop(partition, None)
        self._given.pop(partition, None)

    def arrival(self, partition: int, wall: float) -> float:
        """The partition's clock when a reading arrives (after ``observe``): stamps the idle flush."""
        event, read_at = self._read.get(partition, (wall, wall))
        return event + max(0.0, wall - read_at)

    def now(self, partition: int, wall: float, caught_up: bool, lag: float = 0.0) -> float | None:
        """The event time a tick made at ``wall`` brings to ``partition`` (None: no event time known)."""
        own = self._read.get(partition)
        times = [] if own is None else [own[0]]
        if caught_up:
            moved = [event + max(0.0, wall - read_at) for event, read_at in self._read.values()]
            times += [] if own is None else [own[0] + max(0.0, wall - own[1])]
            times += [max(moved) - lag] if moved else []
        if partition in self._given:
            times.append(self._given[partition])
        if not times:
            return None
        self._given[partition] = now = min(wall, max(times))
        return now
