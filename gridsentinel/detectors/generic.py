"""General-purpose detectors: one scorer plus one policy each, for any metric.

Constructor arguments are the config fields of the same names (see ``detectors/config.py``).
"""

from __future__ import annotations

import math
from typing import ClassVar, Literal

from gridsentinel.detectors.base import Detector, Finding, Outcome
from gridsentinel.detectors.policy import Level, Policy
from gridsentinel.detectors.scorers import (
    Flatline,
    RateOfChange,
    RobustScorer,
    SeasonalBaseline,
    Silence,
    TimeToThreshold,
)
from gridsentinel.ingest.records import Reading

Direction = Literal["above", "below"]


class ThresholdDetector(Detector):
    """A fixed limit with hysteresis and a minimum hold time.

    The score is how far past the exit level the value is, in units of the enter−exit band (1 = at the
    enter level).

    >>> d = ThresholdDetector(enter=10.0, exit=8.0, hold_s=60, severity="alarm")
    >>> r = lambda t, v: Reading("dev-1", "water_level", "m", v, t)
    >>> steps = [(0, 9), (60, 11), (120, 12), (180, 9), (240, 7)]
    >>> [f.phase for t, v in steps for f in d.update(r(t, v)).findings]
    ['open', 'clear']
    """

    name: ClassVar[str] = "threshold"
    _children: ClassVar[tuple[str, ...]] = ("policy",)

    def __init__(self, enter: float, exit: float, hold_s: float = 0.0, min_samples: int = 1,
                 direction: Direction = "above", severity: str = "warning", cooldown_s: float = 0.0,
                 kind: str = "threshold") -> None:
        self.enter, self.exit, self.direction = enter, exit, direction
        self.policy = Policy(kind, [Level(severity, enter, exit, hold_s, min_samples)], cooldown_s,
                             direction=direction)

    def update(self, reading: Reading) -> Outcome:
        x = reading.value
        band = abs(self.enter - self.exit) or max(abs(self.enter), 1.0)
        past = (x - self.exit) if self.direction == "above" else (self.exit - x)
        score = max(0.0, past / band)
        return self._emit(score, self.policy.step(reading.observed_at, x, x))


class RateOfChangeDetector(Detector):
    """A value rising (or falling) faster than ``max_rate`` units per ``per_s`` seconds.

    >>> d = RateOfChangeDetector(max_rate=0.05, per_s=60, window_s=300)
    >>> levels = [1.0, 1.0, 1.01, 1.1, 1.25, 1.4]
    >>> rows = [Reading("d", "water_level", "m", v, i * 60.0) for i, v in enumerate(levels)]
    >>> [f.phase for r in rows for f in d.update(r).findings]
    ['open']
    """

    name: ClassVar[str] = "rate_of_change"
    _children: ClassVar[tuple[str, ...]] = ("trend", "policy")

    def __init__(self, max_rate: float, per_s: float = 60.0, window_s: float = 600.0,
                 direction: Literal["rise", "fall", "both"] = "rise", hold_s: float = 0.0,
                 cooldown_s: float = 900.0, severity: str = "warning", kind: str = "rate_of_change") -> None:
        self.max_rate, self.per_s, self.direction = max_rate, per_s, direction
        self.trend = RateOfChange(window_s)
        self.policy = Policy(kind, [Level(severity, 1.0, 0.8, hold_s)], cooldown_s)

    def update(self, reading: Reading) -> Outcome:
        rate = self.trend.update(reading.observed_at, reading.value) * self.per_s
        signed = {"rise": rate, "fall": -rate, "both": abs(rate)}[self.direction]
        score = max(0.0, signed / self.max_rate)
        return self._emit(score, self.policy.step(reading.observed_at, score, reading.value,
                                                  {"rate_per_s": rate / self.per_s}))


class RobustDetector(Detector):
    """Robust z-score against the recent past (median/MAD or EWMA), with a warning/alarm ladder.

    >>> d = RobustDetector(warn_z=5, alarm_z=8, warmup=10)
    >>> values = [50 + (i % 3) for i in range(30)] + [90]
    >>> rows = [Reading("d", "pm2_5", "ug/m3", v, i * 60.0) for i, v in enumerate(values)]
    >>> [(f.phase, f.severity) for r in rows for f in d.update(r).findings]
    [('open', 'alarm')]
    """

    name: ClassVar[str] = "robust"
    _children: ClassVar[tuple[str, ...]] = ("scorer", "policy")

    def __init__(self, method: Literal["mad", "ewma"] = "mad", window: int = 60, alpha: float = 0.05,
                 warmup: int = 10, min_scale: float = 1e-6, warn_z: float = 5.0, alarm_z: float = 8.0,
                 hold_s: float = 0.0, cooldown_s: float = 900.0, kind: str = "outlier") -> None:
        self.scorer = RobustScorer(method, window, alpha, warmup, min_scale)
        self.policy = Policy(kind, [Level("warning", warn_z, 0.8 * warn_z, hold_s),
                                    Level("alarm", alarm_z, 0.8 * alarm_z, hold_s)], cooldown_s)

    def update(self, reading: Reading) -> Outcome:
        z = self.scorer.update(reading.value)
        return self._emit(z, self.policy.step(reading.observed_at, z, reading.value, {"z": z}))


class SeasonalDetector(Detector):
    """Deviation from the usual value for this time of day (or hour of the week).

    >>> d = SeasonalDetector(slot_s=3600, warmup=3, min_scale=1.0, warn_z=6, alarm_z=12)
    >>> out = []
    >>> for day in range(6):
    ...     for hour in (3, 8):
    ...         v = 100.0 if hour == 8 or day == 5 else 10.0      # day 5: busy at 03:00
    ...         out += d.update(Reading("d", "laeq", "dB", v, day * 86400 + hour * 3600)).findings
    >>> [(f.phase, f.severity) for f in out]
    [('open', 'alarm')]
    """

    name: ClassVar[str] = "seasonal"
    _children: ClassVar[tuple[str, ...]] = ("baseline", "policy")

    def __init__(self, period: Literal["day", "week"] = "day", slot_s: float = 3600.0,
                 utc_offset_s: float = 28800.0, alpha: float = 0.2, warmup: int = 3, min_scale: float = 1e-6,
                 warn_z: float = 6.0, alarm_z: float = 10.0, hold_s: float = 0.0, cooldown_s: float = 3600.0,
                 kind: str = "seasonal_deviation") -> None:
        self.baseline = SeasonalBaseline(period, slot_s, utc_offset_s, alpha, warmup, min_scale)
        self.policy = Policy(kind, [Level("warning", warn_z, 0.8 * warn_z, hold_s),
                                    Level("alarm", alarm_z, 0.8 * alarm_z, hold_s)], cooldown_s)

    def update(self, reading: Reading) -> Outcome:
        z = self.baseline.update(reading.observed_at, reading.value)
        return self._emit(z, self.policy.step(reading.observed_at, z, reading.value, {"z": z}))


class FlatlineDetector(Detector):
    """A stuck sensor: the value has not moved more than ``tolerance`` for ``min_duration_s``.

    >>> d = FlatlineDetector(min_duration_s=3600, tolerance=0.0)
    >>> rows = [Reading("d", "water_level", "m", 0.42, i * 300.0) for i in range(20)]
    >>> out = [f for r in rows for f in d.update(r).findings]
    >>> [(f.kind, f.phase, f.started_at) for f in out]
    [('sensor_stuck', 'open', 0.0)]
    """

    name: ClassVar[str] = "flatline"
    _children: ClassVar[tuple[str, ...]] = ("run", "policy")

    def __init__(self, min_duration_s: float = 6 * 3600.0, tolerance: float = 0.0,
                 severity: str = "advisory", kind: str = "sensor_stuck") -> None:
        self.min_duration_s = min_duration_s
        self.run = Flatline(tolerance)
        self.policy = Policy(kind, [Level(severity, 1.0, 1.0)])

    def update(self, reading: Reading) -> Outcome:
        held = self.run.update(reading.observed_at, reading.value)
        score = held / self.min_duration_s
        findings = self.policy.step(reading.observed_at, score, reading.value, {"flat_for_s": held})
        if findings and findings[0].phase == "open":
            # the incident began when the value stopped moving, not when we became sure of it
            findings = [_restart(findings[0], self.run.run_start)]
            self.policy.started_at = findings[0].started_at
        return self._emit(score, findings)

    def describe(self, finding: Finding) -> str:
        if finding.phase == "clear":
            return f"sensor moving again at {finding.value:g}"
        return f"sensor stuck at {finding.value:g} for {finding.evidence['flat_for_s'] / 3600:.1f} h"


def _restart(f: Finding, started_at: float | None) -> Finding:
    return Finding(f.kind, f.phase, f.severity, f.started_at if started_at is None else started_at,
                   f.observed_at, f.value, f.score, f.message, f.evidence)


class DropoutDetector(Detector):
    """A device that stopped reporting (or never reported) for ``misses`` expected intervals.

    Time passes through ``check(now)``; ``since`` is when the device was registered, so a device that
    never sent anything goes offline too. The next reading clears the incident.

    >>> d = DropoutDetector(expected_interval_s=300, misses=3, since=0.0)
    >>> [(f.kind, f.phase) for f in d.check(1000.0)]
    [('device_offline', 'open')]
    >>> [f.phase for f in d.update(Reading("d", "water_level", "m", 1.0, 1100.0)).findings]
    ['clear']
    """

    name: ClassVar[str] = "dropout"
    _children: ClassVar[tuple[str, ...]] = ("silence", "policy")

    def __init__(self, expected_interval_s: float = 300.0, misses: float = 3.0, since: float | None = None,
                 severity: str = "warning", kind: str = "device_offline") -> None:
        self.misses = misses
        self.silence = Silence(expected_interval_s, since)
        self.policy = Policy(kind, [Level(severity, misses, misses)])

    def update(self, reading: Reading) -> Outcome:
        gap = self.silence.update(reading.observed_at)
        findings = self.policy.step(reading.observed_at, 0.0, reading.value) if self.policy.active else []
        return self._emit(gap / self.misses, findings)

    def check(self, now: float) -> list[Finding]:
        gap = self.silence.check(now)
        findings = self.policy.step(now, gap, gap, {"silent_intervals": gap})
        return list(self._emit(gap, findings).findings)

    def describe(self, finding: Finding) -> str:
        if finding.phase == "clear":
            return "device reporting again"
        return f"no reading for {finding.evidence.get('silent_intervals', 0):.1f} expected intervals"


class ForecastDetector(Detector):
    """Time-to-threshold: warns when the trend reaches ``level`` within ``horizon_s``.

    The score is ``horizon_s / eta`` (1 = reaches the level exactly at the horizon).

    >>> d = ForecastDetector(level=3.0, horizon_s=1800, window_s=900)
    >>> rows = [Reading("d", "water_level", "m", 2.0 + 0.03 * i, i * 60.0) for i in range(8)]
    >>> out = [f for r in rows for f in d.update(r).findings]
    >>> out[0].message
    'reaches 3 in ~29 min'
    """

    name: ClassVar[str] = "forecast"
    _children: ClassVar[tuple[str, ...]] = ("forecast", "policy")

    def __init__(self, level: float, horizon_s: float = 1800.0, window_s: float = 900.0, min_points: int = 3,
                 severity: str = "warning", cooldown_s: float = 900.0,
                 kind: str = "forecast_threshold") -> None:
        self.horizon_s, self.min_points = horizon_s, min_points
        self.forecast = TimeToThreshold(level, window_s)
        self.policy = Policy(kind, [Level(severity, 1.0, 0.8)], cooldown_s)

    def update(self, reading: Reading) -> Outcome:
        eta = self.forecast.update(reading.observed_at, reading.value)
        if len(self.forecast.trend.points) < self.min_points:
            eta = math.inf
        score = self.horizon_s / max(eta, 1.0) if math.isfinite(eta) else 0.0
        ev = {"eta_s": eta if math.isfinite(eta) else None}
        return self._emit(score, self.policy.step(reading.observed_at, score, reading.value, ev))

    def describe(self, finding: Finding) -> str:
        eta = finding.evidence.get("eta_s")
        if finding.phase == "clear" or eta is None:
            return f"no longer heading for {self.forecast.level:g}"
        return f"reaches {self.forecast.level:g} in ~{eta / 60:.0f} min"
