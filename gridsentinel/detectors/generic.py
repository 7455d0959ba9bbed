"""General-purpose detectors: one scorer plus one policy each, for any metric.

Constructor arguments are the config fields of the same names (see ``detectors/config.py``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import Any, ClassVar, Literal

from gridsentinel.core.records import Reading
from gridsentinel.core.words import Words
from gridsentinel.detectors.base import Detector, Finding, Outcome, PerMetric, Stateful
from gridsentinel.detectors.policy import Level, Policy
from gridsentinel.detectors.scorers import (
    Flatline,
    RateOfChange,
    RobustScorer,
    SeasonalBaseline,
    TimeToThreshold,
)

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


class _RobustTrack(Stateful):
    _children: ClassVar[tuple[str, ...]] = ("scorer", "policy")

    def __init__(self, scorer: RobustScorer, policy: Policy) -> None:
        self.scorer, self.policy = scorer, policy


class RobustDetector(PerMetric[_RobustTrack]):
    """Robust z-score against the recent past (median/MAD or EWMA), with a warning/alarm ladder.

    Each metric is scored against its own past (pm2_5 against pm2_5, pm10 against pm10).

    >>> d = RobustDetector(warn_z=5, alarm_z=8, warmup=10)
    >>> values = [50 + (i % 3) for i in range(30)] + [90]
    >>> rows = [Reading("d", "pm2_5", "ug/m3", v, i * 60.0) for i, v in enumerate(values)]
    >>> [(f.phase, f.severity, f.metric) for r in rows for f in d.update(r).findings]
    [('open', 'alarm', 'pm2_5')]
    """

    name: ClassVar[str] = "robust"

    def __init__(self, method: Literal["mad", "ewma"] = "mad", window: int = 60, alpha: float = 0.05,
                 warmup: int = 10, min_scale: float = 1e-6, warn_z: float = 5.0, alarm_z: float = 8.0,
                 hold_s: float = 0.0, cooldown_s: float = 900.0, kind: str = "outlier") -> None:
        super().__init__(kind)
        self.method, self.window, self.alpha, self.warmup = method, window, alpha, warmup
        self.min_scale, self.warn_z, self.alarm_z = min_scale, warn_z, alarm_z
        self.hold_s, self.cooldown_s = hold_s, cooldown_s

    def new_track(self) -> _RobustTrack:
        z, hold = self.warn_z, self.hold_s
        return _RobustTrack(
            RobustScorer(self.method, self.window, self.alpha, self.warmup, self.min_scale),
            Policy(self.kind, [Level("warning", z, 0.8 * z, hold),
                               Level("alarm", self.alarm_z, 0.8 * self.alarm_z, hold)], self.cooldown_s))

    def update(self, reading: Reading) -> Outcome:
        tr = self.track(reading.metric)
        z = tr.scorer.update(reading.value)
        findings = tr.policy.step(reading.observed_at, z, reading.value, {"z": z})
        return self._emit(z, self._named(reading.metric, findings))


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


class _FlatlineTrack(Stateful):
    _children: ClassVar[tuple[str, ...]] = ("run", "policy")

    def __init__(self, run: Flatline, policy: Policy) -> None:
        self.run, self.policy = run, policy


class FlatlineDetector(PerMetric[_FlatlineTrack]):
    """A stuck sensor: a metric has not moved more than ``tolerance`` for ``min_duration_s``.

    Each metric is judged on its own: an air monitor whose pm2_5 and pm10 are both frozen is stuck
    twice, not "alternating between two values", and a steady battery voltage masks nothing.

    >>> d = FlatlineDetector(min_duration_s=3600, tolerance=0.0)
    >>> rows = [Reading("d", m, "ug/m3", v, i * 300.0) for i in range(20)
    ...         for m, v in (("pm2_5", 35.0), ("pm10", 61.0))]
    >>> out = [f for r in rows for f in d.update(r).findings]
    >>> [(f.kind, f.phase, f.metric, f.started_at) for f in out]
    [('sensor_stuck', 'open', 'pm2_5', 0.0), ('sensor_stuck', 'open', 'pm10', 0.0)]
    >>> out[1].message
    'pm10 stuck at 61 for 1.0 h'
    """

    name: ClassVar[str] = "flatline"

    def __init__(self, min_duration_s: float = 6 * 3600.0, tolerance: float = 0.0,
                 severity: str = "advisory", kind: str = "sensor_stuck") -> None:
        super().__init__(kind)
        self.min_duration_s, self.tolerance, self.severity = min_duration_s, tolerance, severity

    def new_track(self) -> _FlatlineTrack:
        return _FlatlineTrack(Flatline(self.tolerance), Policy(self.kind, [Level(self.severity, 1.0, 1.0)]))

    def update(self, reading: Reading) -> Outcome:
        tr = self.track(reading.metric)
        held = tr.run.update(reading.observed_at, reading.value)
        score = held / self.min_duration_s
        findings = tr.policy.step(reading.observed_at, score, reading.value, {"flat_for_s": held})
        if findings and findings[0].phase == "open":
            # the incident began when the value stopped moving, not when we became sure of it
            findings = [_restart(findings[0], tr.run.run_start)]
            tr.policy.started_at = findings[0].started_at
        return self._emit(score, self._named(reading.metric, findings))

    def describe(self, finding: Finding) -> Words:
        what, what_zh = finding.metric or "sensor", finding.metric or "传感器"
        if finding.phase == "clear":
            return Words(f"{what} moving again at {finding.value:g}", f"{what_zh} 读数恢复变化（{finding.value:g}）")
        hours = finding.evidence["flat_for_s"] / 3600
        return Words(f"{what} stuck at {finding.value:g} for {hours:.1f} h",
                     f"{what_zh} 读数停在 {finding.value:g} 已 {hours:.1f} 小时")


def _restart(f: Finding, started_at: float | None) -> Finding:
    return f if started_at is None else replace(f, started_at=started_at)


class DropoutDetector(Detector):
    """A device that stopped reporting a metric (or never reported) for ``misses`` expected intervals.

    Each metric the device has sent keeps its own clock, and the device's silence is that of its most
    silent metric: a level sensor whose level stopped is offline even while its battery still reports
    (housekeeping metrics are not consumed at all), and so is an air monitor whose pm10 channel died.
    A metric's interval is the registry's ``expected_interval_s``, or the metric's own usual gap (the
    median of its last few) when that is longer, so a channel sent hourly is not late after 15 minutes;
    a metric is judged once it has shown that cadence.
    Time passes through ``check(now)``; ``since`` is when the device was registered, so a device that
    never sent anything goes offline too. The incident clears once every silent metric is back.

    >>> d = DropoutDetector(expected_interval_s=300, misses=3, since=0.0)
    >>> [(f.kind, f.phase) for f in d.check(1000.0)]
    [('device_offline', 'open')]
    >>> [f.phase for f in d.update(Reading("d", "water_level", "m", 1.0, 1100.0)).findings]
    ['clear']
    >>> for t in (1200.0, 1500.0):                  # pm10 reports, then stops; water_level goes on
    ...     _ = d.update(Reading("d", "pm10", "ug/m3", 60.0, t))
    >>> _ = d.update(Reading("d", "water_level", "m", 1.0, 2600.0))
    >>> [(f.phase, f.evidence["metric"], f.message) for f in d.check(2700.0)]
    [('open', 'pm10', 'no pm10 reading for 4.0 expected intervals')]
    """

    name: ClassVar[str] = "dropout"
    _state_fields: ClassVar[tuple[str, ...]] = ("last_seen", "gaps", "since")
    _children: ClassVar[tuple[str, ...]] = ("policy",)
    GAPS_KEPT: ClassVar[int] = 5

    def __init__(self, expected_interval_s: float = 300.0, misses: float = 3.0, since: float | None = None,
                 severity: str = "warning", kind: str = "device_offline") -> None:
        if expected_interval_s <= 0:
            raise ValueError("expected_interval_s must be > 0")
        self.expected_interval_s, self.misses = expected_interval_s, misses
        self.since = since  # before any reading, silence counts from here
        self.last_seen: dict[str, float] = {}  # metric -> newest event time
        self.gaps: dict[str, list[float]] = {}  # metric -> its last few gaps between readings, seconds
        self.policy = Policy(kind, [Level(severity, misses, misses)])

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self.gaps = {m: list(g) for m, g in self.gaps.items()}
        old = state.get("silence")
        if "last_seen" not in state and isinstance(old, dict):
            # one clock for the whole device (earlier versions): its metrics count from its last reading
            ref = old.get("last_seen")
            self.since = ref if ref is not None else old.get("since")
            self.last_seen, self.gaps = {}, {}

    def interval(self, metric: str) -> float:
        """Seconds between two readings of ``metric``: the registry's interval or its own usual gap."""
        gaps = sorted(self.gaps.get(metric) or ())
        usual = gaps[len(gaps) // 2] if gaps else 0.0
        return max(self.expected_interval_s, usual)

    def silence(self, now: float) -> tuple[float, list[str]]:
        """(silence in expected intervals, metrics silent for ``misses`` or more, most silent first)."""
        if not self.last_seen:
            if self.since is None:
                self.since = now  # first look at a silent device: start counting here
            return max(0.0, now - self.since) / self.expected_interval_s, []
        # a metric is judged once it has shown its cadence (two readings); a device that sent one of each
        # and stopped is judged on the registry's interval
        judged = [m for m in self.last_seen if self.gaps.get(m)] or list(self.last_seen)
        late = {m: max(0.0, now - self.last_seen[m]) / self.interval(m) for m in judged}
        silent = sorted((m for m, g in late.items() if g >= self.misses), key=lambda m: (-late[m], m))
        return max(late.values()), silent

    def update(self, reading: Reading) -> Outcome:
        t, metric = reading.observed_at, reading.metric
        previous = self.last_seen.get(metric)
        seen = self.since if previous is None else previous
        late = 0.0 if seen is None else max(0.0, t - seen) / self.interval(metric)
        if previous is None or t > previous:
            self.last_seen[metric] = t
            if previous is not None:
                self.gaps[metric] = [*self.gaps.get(metric, ()), t - previous][-self.GAPS_KEPT:]
        findings: list[Finding] = []
        if self.policy.active:
            gap, silent = self.silence(t)
            findings = self.policy.step(t, gap, reading.value, self._evidence(gap, silent))
        return self._emit(late / self.misses, findings)

    def check(self, now: float) -> list[Finding]:
        gap, silent = self.silence(now)
        findings = self.policy.step(now, gap, gap, self._evidence(gap, silent))
        return list(self._emit(gap, findings).findings)

    def _evidence(self, gap: float, silent: list[str]) -> dict[str, Any]:
        ev: dict[str, Any] = {"silent_intervals": gap, "silent_metrics": silent}
        if silent:
            ev["metric"] = silent[0]
        return ev

    def describe(self, finding: Finding) -> Words:
        if finding.phase == "clear":
            return Words("device reporting again", "设备恢复上报")
        silent = finding.evidence.get("silent_metrics") or []
        what, what_zh = " or ".join(silent) or "reading", "、".join(silent) or "读数"
        gap = finding.evidence.get("silent_intervals", 0)
        return Words(f"no {what} reading for {gap:.1f} expected intervals",
                     f"已有 {gap:.1f} 个上报周期未收到{what_zh}")


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

    def describe(self, finding: Finding) -> Words:
        eta = finding.evidence.get("eta_s")
        level = self.forecast.level
        if finding.phase == "clear" or eta is None:
            return Words(f"no longer heading for {level:g}", f"不再趋向 {level:g}")
        return Words(f"reaches {level:g} in ~{eta / 60:.0f} min", f"约 {eta / 60:.0f} 分钟后达到 {level:g}")
