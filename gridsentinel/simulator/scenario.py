"""The simulated district's script: every reading and frame, and the incidents' ground truth — pure.

Everything here is computed from the registry, the detector and category config, the seed and the
window length; nothing touches the network or the clock. Times are *offsets* in seconds from the start
of the simulated window; :class:`~gridsentinel.simulator.clock.SimClock` turns them into event times.

>>> from pathlib import Path
>>> from gridsentinel.settings import REPO_ROOT
>>> s = build_scenario(REPO_ROOT / "config", seed=7)
>>> sorted({i.kind for i in s.incidents})
['camera_covered', 'cover_lifted', 'device_offline', 'drain_overflow', 'left_object', 'sensor_stuck']
>>> s == build_scenario(REPO_ROOT / "config", seed=7)   # deterministic
True
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from gridsentinel.core.devices import Device, Registry
from gridsentinel.detectors.config import load_file
from gridsentinel.detectors.noise import LIMITS as NOISE_LIMITS
from gridsentinel.errors import ConfigError

UTC_OFFSET_S = 8 * 3600  # the district's local time (China Standard Time) drives the diurnal cycles
HOUR = 3600.0
MIN = 60.0

# The script, as offsets from the window start (seconds). The stuck sensor needs the flatline
# detector's whole minimum duration before the window ends, so it starts first.
STUCK_AT = 10 * MIN
STORM_START = 40 * MIN  # rain begins
STORM_PEAK = 65 * MIN
STORM_END = 120 * MIN
OFFLINE_AT = 150 * MIN
COVER_LIFT_AT = 180 * MIN
COVER_LIFT_FOR = 25 * MIN
TAMPER_SCENE_AT = 210 * MIN
LEFT_SCENE_AT = 240 * MIN
SCENE_LEAD_S = 40.0  # normal footage before a camera incident (detectors warm up after a gap)
COVERED_FOR_S = 40.0
LEFT_OBJECT_FOR_S = 150.0
SCENE_TAIL_S = 20.0
END_MARGIN_S = 20 * MIN  # quiet time after the last expected detection
STORM_CELLS_DEVICES = ("drain-003", "drain-004", "drain-005")  # neighbouring cells 001004/005/007
PEAK_RAIN_MM_H = 38.0  # below the rain gauges' 50 mm/h heavy-rain threshold: the storm itself is no case
NOISE_MARGIN_DB = (11.0, 9.0)  # normal street noise sits this far under the zone's (day, night) limit


@dataclass(frozen=True)
class Incident:
    """One scripted incident and what the pipeline should make of it."""

    id: str
    kind: str  # drain_overflow | cover_lifted | sensor_stuck | device_offline | camera_covered | left_object
    device_id: str
    grid_code: str
    category: str  # expected case category key, e.g. "component:0103"
    detection_kind: str  # the detector finding that should open the case
    detector: str
    start: float  # offset: when the problem begins (event time)
    end: float  # offset: when it is over (the end of the window if it lasts)
    expected_delay_s: float  # the case's first detection must be at most this long after start
    why: str  # how the delay bound follows from the detector config


@dataclass(frozen=True)
class Message:
    """One thing a device sends at an offset: a telemetry reading set, a frame, or a status change."""

    at: float
    device_id: str
    type: str  # "telemetry" | "frame" | "online" | "offline" (a dropped connection: the will fires)
    metrics: tuple[tuple[str, float], ...] = ()
    frame: tuple[int, str] = (0, "")  # (footage index, effect "" | "covered" | "object")


@dataclass(frozen=True)
class Scene:
    """A stretch of the window the clock plays slowly, so cameras can stream at a realistic rate."""

    start: float
    end: float


@dataclass(frozen=True)
class Scenario:
    duration_s: float
    seed: int
    window_start: float | None
    devices: tuple[Device, ...]
    incidents: tuple[Incident, ...]
    scenes: tuple[Scene, ...]
    messages: tuple[Message, ...] = field(repr=False)

    def by_time(self) -> Iterator[Message]:
        return iter(self.messages)


def min_duration_s(config_dir: Path) -> float:
    """The shortest window that fits the whole script (the stuck sensor needs the flatline time)."""
    return STUCK_AT + _stuck_delay(config_dir, None) + END_MARGIN_S


def build_scenario(config_dir: Path, seed: int = 1, duration_s: float | None = None,
                   frame_interval_s: float = 0.5, idle_frame_interval_s: float = 120.0,
                   footage_frames: int = 40, window_start: float | None = None,
                   id_prefix: str = "", incidents: bool = True) -> Scenario:
    """The whole script for the district in ``config_dir``.

    ``frame_interval_s``: camera frame spacing (event time) inside scenes; ``idle_frame_interval_s``
    outside them (a fast clock cannot stream video; detectors warm up again at each scene's lead-in).
    ``window_start``: the event time of offset 0 (Unix s); only the diurnal cycles depend on it (local
    06:00 when not given), so a script is deterministic for a seed and a start.
    ``id_prefix``: only devices whose id starts with it take part, and the script addresses them by
    the rest of their id (tests run a private copy of the district under unique ids).
    ``incidents=False``: the district's normal signals only (no storm, nothing stuck, lifted, offline or
    covered), for any window length; nothing in it should open a case at any hour.
    """
    day = LocalDay.of(window_start)
    registry = Registry.load(config_dir)
    need = min_duration_s(config_dir)
    duration = need if duration_s is None else float(duration_s)
    if incidents and duration < need:
        raise ConfigError(f"simulated window of {duration:.0f}s is too short: the script needs {need:.0f}s "
                          f"(the stuck sensor must stay flat for the flatline detector's min_duration_s)")
    devices = {d.id.removeprefix(id_prefix): d.model_copy(update={"id": d.id.removeprefix(id_prefix)})
               for d in registry.devices.values() if d.id.startswith(id_prefix)}
    for required in ("drain-003", "drain-004", "drain-005", "cover-001", "noise-002", "aq-002", "cam-001",
                     "cam-002"):
        if required not in devices:
            raise ConfigError(f"{config_dir / 'devices.yaml'}: the simulator's script needs "
                              f"device {required}")
    det = load_file(config_dir / "detectors.yaml")
    kinds_map = _category_kinds(config_dir)
    scenes: tuple[Scene, ...] = ()
    if incidents:
        scenes = (Scene(TAMPER_SCENE_AT, TAMPER_SCENE_AT + SCENE_LEAD_S + COVERED_FOR_S + SCENE_TAIL_S),
                  Scene(LEFT_SCENE_AT, LEFT_SCENE_AT + SCENE_LEAD_S + LEFT_OBJECT_FOR_S + SCENE_TAIL_S))
    messages: list[Message] = []
    script: list[Incident] = []
    rain = _rain_field(devices)
    storm = _rain if incidents else _no_rain

    def scripted(device_id: str) -> bool:
        return incidents and device_id in (*STORM_CELLS_DEVICES, "cover-001", "noise-002", "aq-002")

    for dev in sorted(devices.values(), key=lambda d: d.id):
        drng = random.Random(f"{seed}:{dev.id}")
        interval = dev.expected_interval_s
        times = _times(duration, interval, drng)
        stop = OFFLINE_AT if scripted(dev.id) and dev.id == "aq-002" else duration
        if dev.kind == "camera":
            messages += _camera(dev, duration, scenes, frame_interval_s, idle_frame_interval_s,
                                footage_frames)
            continue
        messages.append(Message(0.0, dev.id, "online"))
        if dev.kind == "drain_level":
            levels = _drain_levels(dev, times, rain, drng, day, storm)
            messages += [Message(t, dev.id, "telemetry", (("water_level", round(v, 3)),))
                         for t, v in zip(times, levels, strict=True)]
            if scripted(dev.id):
                script.append(_drain_incident(dev, times, levels, det, kinds_map))
        elif dev.kind == "rain_gauge":
            weight = rain.get(dev.id, 0.3)
            for t in times:
                rate = max(0.0, weight * storm(t) * (1 + drng.gauss(0, 0.05)))
                messages.append(Message(t, dev.id, "telemetry", (("rain_rate", round(rate, 2)),)))
        elif dev.kind == "cover_tilt":
            messages += _cover(dev, times, drng, lifted=scripted(dev.id))
            if scripted(dev.id):
                script.append(_cover_incident(dev, det, kinds_map))
        elif dev.kind == "air_quality":
            messages += [Message(t, dev.id, "telemetry", _air(t, drng, day, storm)) for t in times if t < stop]
            if scripted(dev.id):
                last = max(t for t in times if t < stop)
                messages.append(Message(last + 1.0, dev.id, "offline"))
                script.append(_offline_incident(dev, last, duration, det, kinds_map))
        elif dev.kind == "noise":
            street = StreetNoise.for_device(det, dev, window_start)
            stuck = scripted(dev.id)
            stuck_value = None
            for t in times:
                level = round(street.level(t, drng), 1)
                if stuck and t >= STUCK_AT:
                    # the sensor freezes; a frozen daytime level would break the night limit and open a
                    # second case nothing scripted, so it freezes at a level that is normal at any hour
                    stuck_value = stuck_value if stuck_value is not None else min(level, street.quiet_db)
                    messages.append(Message(t, dev.id, "telemetry", (("laeq", stuck_value),)))
                else:
                    messages.append(Message(t, dev.id, "telemetry", (("laeq", level),)))
            if stuck:
                first = min(t for t in times if t >= STUCK_AT)
                script.append(_stuck_incident(dev, first, duration, config_dir, kinds_map))
    if incidents:
        for scene_dev, kind in (("cam-001", "camera_covered"), ("cam-002", "left_object")):
            script.append(_camera_incident(devices[scene_dev], kind, config_dir, frame_interval_s, kinds_map))
    for inc in script:
        if inc.start + inc.expected_delay_s > duration:
            raise ConfigError(f"incident {inc.id} cannot be detected inside a {duration:.0f}s window")
    if id_prefix:
        messages = [replace(m, device_id=id_prefix + m.device_id) for m in messages]
        script = [replace(i, device_id=id_prefix + i.device_id,
                          id=i.id.replace(":", ":" + id_prefix, 1)) for i in script]
        devices = {k: d.model_copy(update={"id": id_prefix + d.id}) for k, d in devices.items()}
    messages.sort(key=lambda m: (m.at, m.device_id))
    script.sort(key=lambda i: (i.start, i.id))
    return Scenario(duration, seed, window_start, tuple(sorted(devices.values(), key=lambda d: d.id)),
                    tuple(script), scenes, tuple(messages))


# --- signals -------------------------------------------------------------------------------------

def _times(duration: float, interval: float, rng: random.Random) -> list[float]:
    """Reporting times: every ``interval`` with a small clock jitter, from a random phase."""
    t = rng.uniform(0.0, interval)
    out = []
    while t < duration:
        out.append(round(t, 3))
        t += interval * (1 + rng.uniform(-0.02, 0.02))
    return out


@dataclass(frozen=True)
class LocalDay:
    """Local time of day along the window: the diurnal cycles follow the real hour of the window.

    >>> day = LocalDay.of(1_767_225_600.0, utc_offset_s=8 * 3600)   # 2026-01-01 08:00 in Shanghai
    >>> day.hour(0.0), day.hour(15 * 3600.0)
    (8.0, 23.0)
    >>> round(day.cycle(4 * 3600.0, peak_hour=12.0), 3)             # at 12:00, the peak
    1.0
    """

    start_hour: float  # local hour at offset 0

    @classmethod
    def of(cls, window_start: float | None, utc_offset_s: float = UTC_OFFSET_S) -> LocalDay:
        """The day of a window starting at ``window_start`` (Unix s); None: a window from local 06:00."""
        return cls(6.0 if window_start is None else ((window_start + utc_offset_s) / HOUR) % 24.0)

    def hour(self, offset: float) -> float:
        """Hour of the local day at an offset into the window."""
        return (self.start_hour + offset / HOUR) % 24.0

    def cycle(self, offset: float, peak_hour: float) -> float:
        """A daily cycle in [0, 1] peaking at ``peak_hour`` local time."""
        return 0.5 + 0.5 * math.cos(2 * math.pi * (self.hour(offset) - peak_hour) / 24.0)


def _rain(t: float) -> float:
    """Storm rain rate at the storm centre (mm/h): a smooth rise, a peak, a long tail."""
    if t < STORM_START or t > STORM_END:
        return 0.0
    if t <= STORM_PEAK:
        x = (t - STORM_START) / (STORM_PEAK - STORM_START)
        return PEAK_RAIN_MM_H * math.sin(x * math.pi / 2) ** 2
    x = (t - STORM_PEAK) / (STORM_END - STORM_PEAK)
    return PEAK_RAIN_MM_H * (1 - x) ** 2


def _no_rain(t: float) -> float:
    return 0.0


def _rain_field(devices: dict[str, Device]) -> dict[str, float]:
    """Each device's share of the storm-centre rain: the storm sits over the west of community 001."""
    centre = (31.8710, 120.5512)
    out = {}
    for d in devices.values():
        dist_m = math.hypot((d.location.lat - centre[0]) * 111_000, (d.location.lon - centre[1]) * 94_500)
        out[d.id] = max(0.15, math.exp(-dist_m / 350.0))
    return out


def _drain_levels(dev: Device, times: list[float], rain: dict[str, float], rng: random.Random,
                  day: LocalDay, rain_at: Callable[[float], float]) -> list[float]:
    """A linear-reservoir manhole: inflow from rain on its catchment, outflow to the trunk sewer.

    Storm-cell manholes have large catchments and a throttled outlet, so they fill to the rim; the
    others rise a little. Dry-weather level follows the daily water use (a morning peak)."""
    depth = float(dev.install.get("depth_m", 3.0))
    base = 0.10 * depth
    storm = dev.id in STORM_CELLS_DEVICES
    gain = (0.0026 if storm else 0.0009) * depth  # metres per (mm/h·min) of inflow
    tau = 25 * MIN if storm else 12 * MIN
    extra, last_t, out = 0.0, 0.0, []
    for t in times:
        steps = max(1, int((t - last_t) // 30))
        dt = (t - last_t) / steps
        for k in range(steps):
            tt = last_t + (k + 1) * dt
            inflow = gain * rain.get(dev.id, 0.3) * rain_at(tt) * (dt / MIN)
            extra = extra + inflow - extra * (dt / tau)
        last_t = t
        level = base * (0.85 + 0.3 * day.cycle(t, 8.0)) + extra + rng.gauss(0, 0.004)
        out.append(max(0.0, min(level, depth + 0.08)))  # surcharge: water stands a little over the rim
    return out


def _cover(dev: Device, times: list[float], rng: random.Random, lifted: bool) -> list[Message]:
    """A seated cover reads ~0.5°; the lifted one leans at ~65° and is reported at once (on change)."""
    out = []
    lift_end = COVER_LIFT_AT + COVER_LIFT_FOR
    for t in times:
        up = lifted and COVER_LIFT_AT <= t < lift_end
        angle = 68.0 + rng.gauss(0, 1.0) if up else 0.5 + rng.gauss(0, 0.15)
        out.append(Message(t, dev.id, "telemetry", (("tilt", round(angle, 2)),)))
    if lifted:
        out.append(Message(COVER_LIFT_AT, dev.id, "telemetry", (("tilt", 64.0),)))
        out.append(Message(lift_end, dev.id, "telemetry", (("tilt", 0.6),)))
    return out


def _air(t: float, rng: random.Random, day: LocalDay,
         storm: Callable[[float], float]) -> tuple[tuple[str, float], ...]:
    """PM2.5 and PM10 with rush-hour peaks, well under the IAQI 100 band; rain washes them out."""
    traffic = 0.5 * day.cycle(t, 8.5) + 0.5 * day.cycle(t, 18.0)
    wash = 1.0 - 0.4 * min(1.0, storm(t) / 20.0)
    pm25 = (18 + 16 * traffic) * wash + rng.gauss(0, 1.5)
    pm10 = pm25 * 1.7 + rng.gauss(0, 2.0)
    return (("pm2_5", round(max(1.0, pm25), 1)), ("pm10", round(max(2.0, pm10), 1)))


@dataclass(frozen=True)
class StreetNoise:
    """Normal street noise (L_Aeq, dB(A)) under the device's GB 3096-2008 zone-class limits at every hour:
    traffic by day peaking at noon, quiet at night, with day and night as the noise detector counts them.

    >>> noise = StreetNoise(LocalDay(21.0), day_limit_db=60.0, night_limit_db=50.0)
    >>> noise.night(0.0), noise.night(3600.0), noise.night(9 * 3600.0)     # 21:00, 22:00, 06:00
    (False, True, False)
    >>> noise.quiet_db, round(noise.mean_db(0.0), 1), noise.mean_db(3600.0)
    (41.0, 49.7, 41.0)
    """

    day: LocalDay
    day_limit_db: float
    night_limit_db: float
    day_start_h: float = 6.0
    night_start_h: float = 22.0

    @classmethod
    def for_device(cls, det: Any, dev: Device, window_start: float | None) -> StreetNoise:
        """The levels for a noise monitor, from its noise detector settings (zone class, night hours)."""
        s = _settings(det, dev).get("noise") or {}
        day_limit, night_limit = NOISE_LIMITS[str(s.get("zone_class", "2"))]
        return cls(LocalDay.of(window_start, float(s.get("utc_offset_s", UTC_OFFSET_S))), day_limit, night_limit,
                   float(s.get("day_start_h", 6.0)), float(s.get("night_start_h", 22.0)))

    @property
    def quiet_db(self) -> float:
        """The night level: normal at any hour."""
        return self.night_limit_db - NOISE_MARGIN_DB[1]

    def night(self, offset: float) -> bool:
        return not self.day_start_h <= self.day.hour(offset) < self.night_start_h

    def mean_db(self, offset: float) -> float:
        if self.night(offset):
            return self.quiet_db
        return self.day_limit_db - NOISE_MARGIN_DB[0] + 5.0 * self.day.cycle(offset, 12.0)

    def level(self, offset: float, rng: random.Random) -> float:
        return self.mean_db(offset) + rng.gauss(0, 1.2)


def _camera(dev: Device, duration: float, scenes: tuple[Scene, ...], fast: float, idle: float,
            footage_frames: int) -> list[Message]:
    """Frames: sparse outside the scenes, ``fast`` apart inside them; which footage frame is shown
    follows event time (2.5 frames/s footage played forward and back)."""
    out = [Message(0.0, dev.id, "online")]
    t = 0.0
    cycle = 2 * (footage_frames - 1)

    def index(at: float) -> int:
        k = int(at * 2.5) % cycle
        return k if k < footage_frames else cycle - k

    while t < duration:
        scene = next((s for s in scenes if s.start <= t < s.end), None)
        effect = ""
        if scene is not None:
            into = t - scene.start - SCENE_LEAD_S
            if dev.id == "cam-001" and scene.start == TAMPER_SCENE_AT and 0 <= into < COVERED_FOR_S:
                effect = "covered"
            if dev.id == "cam-002" and scene.start == LEFT_SCENE_AT and 0 <= into < LEFT_OBJECT_FOR_S:
                effect = "object"
        out.append(Message(round(t, 3), dev.id, "frame", frame=(index(t), effect)))
        nxt = t + (fast if scene is not None else idle)
        upcoming = next((s.start for s in scenes if t < s.start < nxt), None)
        t = upcoming if upcoming is not None else nxt
    return out


# --- incidents and their expected delays -------------------------------------------------------------

def _category_kinds(config_dir: Path) -> dict[str, Any]:
    raw = yaml.safe_load((config_dir / "categories.yaml").read_text(encoding="utf-8")) or {}
    kinds: dict[str, Any] = raw.get("kinds") or {}
    return kinds


def expected_category(kinds: dict[str, Any], detection_kind: str, component_id: str | None = None) -> str:
    """The category key a detection kind becomes (config/categories.yaml ``kinds``)."""
    entry = kinds.get(detection_kind)
    if entry is None:
        raise ConfigError(f"categories.yaml: kind {detection_kind!r} is not mapped to a category")
    if component_id and "by_component_class" in entry:
        return str(entry["by_component_class"].get(component_id[6:10], entry["category"]))
    return str(entry["category"])


def _settings(det: Any, dev: Device) -> dict[str, dict[str, Any]]:
    detectors: dict[str, dict[str, Any]] = det.settings_for(dev.id, dev.kind, dev.grid_code or "").detectors
    return detectors


def _drain_incident(dev: Device, times: list[float], levels: list[float], det: Any,
                    kinds: dict[str, Any]) -> Incident:
    s = _settings(det, dev)["drainage_level"]
    depths = [float(dev.install.get("depth_m", s["depth_m"])), float(s["depth_m"])]
    # earliest possible trigger: a fast rise (or an overflow forecast) counts from rise_min_fill;
    # latest: the plain warning level held for hold_samples readings, whatever depth the stage uses.
    early = min(s["rise_min_fill"], s["rain_warn_fill"]) * min(depths)
    late = s["warn_fill"] * max(depths)
    start = next(t for t, v in zip(times, levels, strict=True) if v >= early)
    sure = next(t for t, v in zip(times, levels, strict=True) if v >= late)
    end = max(t for t, v in zip(times, levels, strict=True) if v >= early)
    delay = (sure - start) + (s["hold_samples"] + 1) * dev.expected_interval_s
    return Incident(f"drain_overflow:{dev.id}", "drain_overflow", dev.id, dev.grid_code or "",
                    expected_category(kinds, "drain_overflow"), "drain_overflow", "drainage_level",
                    start, end, round(delay, 1),
                    f"level passes {early:.2f} m (rise/rain-aware trigger) at start and "
                    f"{late:.2f} m (warn_fill {s['warn_fill']}) {sure - start:.0f}s later; "
                    f"+ {s['hold_samples'] + 1} readings of {dev.expected_interval_s:.0f}s")


def _cover_incident(dev: Device, det: Any, kinds: dict[str, Any]) -> Incident:
    s = _settings(det, dev)["cover_tilt"]
    delay = s["hold_s"] + dev.expected_interval_s + 5.0
    return Incident(f"cover_lifted:{dev.id}", "cover_lifted", dev.id, dev.grid_code or "",
                    expected_category(kinds, "cover_tilt", dev.component_id), "cover_tilt", "cover_tilt",
                    COVER_LIFT_AT, COVER_LIFT_AT + COVER_LIFT_FOR, delay,
                    f"hold_s {s['hold_s']}s + one report interval ({dev.expected_interval_s:.0f}s) + 5s")


def _stuck_delay(config_dir: Path, dev: Device | None) -> float:
    det = load_file(config_dir / "detectors.yaml")
    s = det.kinds["noise"].detectors.flatline
    if dev is not None:
        s_dev = _settings(det, dev).get("flatline")
        if s_dev is None:
            raise ConfigError(f"flatline is off for {dev.id}: the stuck-sensor incident cannot be detected")
        return float(s_dev["min_duration_s"]) + 3 * dev.expected_interval_s
    if s is None:
        raise ConfigError("detectors.yaml: kinds.noise has no flatline detector")
    return float(s.min_duration_s) + 3 * 60.0


def _stuck_incident(dev: Device, first: float, duration: float, config_dir: Path,
                    kinds: dict[str, Any]) -> Incident:
    delay = _stuck_delay(config_dir, dev) + (first - STUCK_AT)
    return Incident(f"sensor_stuck:{dev.id}", "sensor_stuck", dev.id, dev.grid_code or "",
                    expected_category(kinds, "sensor_stuck"), "sensor_stuck", "flatline",
                    STUCK_AT, duration, round(delay, 1),
                    "flatline min_duration_s + 3 report intervals")


def _offline_incident(dev: Device, last: float, duration: float, det: Any, kinds: dict[str, Any]) -> Incident:
    s = _settings(det, dev)["dropout"]
    interval = max(float(s["expected_interval_s"]), dev.expected_interval_s)
    delay = float(s["misses"]) * interval + 2 * dev.expected_interval_s + 60.0
    return Incident(f"device_offline:{dev.id}", "device_offline", dev.id, dev.grid_code or "",
                    expected_category(kinds, "device_offline"), "device_offline", "dropout",
                    last, duration, round(delay, 1),
                    f"dropout misses {s['misses']} x {interval:.0f}s + 2 intervals + 60s (timer)")


def _camera_defaults(config_dir: Path, camera_id: str) -> tuple[float, float]:
    """(tamper persist_s, static-object dwell_s) for a camera: config/cameras.yaml, else the defaults."""
    try:
        from gridsentinel.detectors.camera.static_object import StaticRegion
        from gridsentinel.detectors.camera.tamper import TamperConfig
    except ImportError:  # camera detectors not installed in this build: documented defaults
        return 2.0, 60.0
    persist, dwell = TamperConfig().persist_s, StaticRegion(name="frame").dwell_s
    path = config_dir / "cameras.yaml"
    if path.exists():
        raw = yaml.safe_load(path.read_text()) or {}
        for cam in raw.get("cameras") or []:
            if cam.get("camera_id") == camera_id:
                persist = float((cam.get("tamper") or {}).get("persist_s", persist))
                regions = (cam.get("static_object") or {}).get("regions") or []
                dwell = max([float(r.get("dwell_s", dwell)) for r in regions] or [dwell])
    return float(persist), float(dwell)


def _camera_incident(dev: Device, kind: str, config_dir: Path, frame_interval_s: float,
                     kinds: dict[str, Any]) -> Incident:
    persist, dwell = _camera_defaults(config_dir, dev.id)
    if kind == "camera_covered":
        start = TAMPER_SCENE_AT + SCENE_LEAD_S
        return Incident(f"camera_covered:{dev.id}", kind, dev.id, dev.grid_code or "",
                        expected_category(kinds, "camera_tamper"), "camera_tamper", "camera.tamper",
                        start, start + COVERED_FOR_S, persist + 4 * frame_interval_s + 5.0,
                        f"tamper persist_s {persist}s + 4 frames + 5s")
    start = LEFT_SCENE_AT + SCENE_LEAD_S
    return Incident(f"left_object:{dev.id}", kind, dev.id, dev.grid_code or "",
                    expected_category(kinds, "illegal_dumping"), "illegal_dumping", "camera.static_object",
                    start, start + LEFT_OBJECT_FOR_S, dwell + 15.0,
                    f"static object dwell_s {dwell}s + 15s")
