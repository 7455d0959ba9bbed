"""Drainage level: how full a manhole is, how fast it rises, when it will overflow, and whether it rains.

The sensor reports ``water_level`` in metres above the manhole's invert (its bottom); ``depth_m`` is the
invert-to-rim depth, so ``fill = level / depth_m`` and the rim is fill 1.0. Defaults follow
docs/domain.md ("Thresholds in practice"): warn at 80 % full, alarm when freeboard <= 0.3 m or the level
rises fast or is forecast to reach the rim within the horizon, critical at surcharge (level >= rim).
Rain (``rain_rate`` readings routed from a nearby gauge) makes the detector rain-aware: while it rains,
the "rain + level" double threshold warns earlier; a high level in dry weather is reported on its own
as a suspected blockage.
"""

from __future__ import annotations

import math
from typing import ClassVar

from gridsentinel.core.records import Reading
from gridsentinel.core.words import Words
from gridsentinel.detectors.base import Detector, Finding, Outcome
from gridsentinel.detectors.policy import Level, Policy
from gridsentinel.detectors.scorers import TimeToThreshold


class DrainageLevelDetector(Detector):
    """Fill ratio against manhole depth and rim, rain-aware, with a time-to-overflow forecast.

    >>> d = DrainageLevelDetector(depth_m=2.0, hold_samples=2)
    >>> _ = d.update(Reading("drain-1", "rain_rate", "mm/h", 12.0, 0.0))
    >>> out = []
    >>> for i, level in enumerate([1.1, 1.15, 1.2, 1.22, 1.24, 1.5, 1.75, 1.85, 2.05]):
    ...     out += d.update(Reading("drain-1", "water_level", "m", level, 300.0 * (i + 1))).findings
    >>> [(f.phase, f.severity) for f in out]
    [('open', 'warning'), ('escalate', 'alarm'), ('escalate', 'critical')]
    >>> out[1].message
    'drain 92% full (freeboard 0.15 m), rising 3.5 cm/min, overflows in ~4 min, raining'
    """

    name: ClassVar[str] = "drainage_level"
    metrics: ClassVar[tuple[str, ...]] = ("water_level", "rain_rate")
    _state_fields: ClassVar[tuple[str, ...]] = ("last_rain_at",)
    _children: ClassVar[tuple[str, ...]] = ("forecast", "overflow", "blockage")

    def __init__(self, depth_m: float = 3.0, warn_fill: float = 0.8, alarm_freeboard_m: float = 0.3,
                 hysteresis: float = 0.05, hold_samples: int = 2, cooldown_s: float = 1800.0,
                 fast_rise_m_per_min: float = 0.02, rise_min_fill: float = 0.5,
                 forecast_horizon_s: float = 1800.0, trend_window_s: float = 1200.0,
                 rain_threshold_mm_h: float = 2.0, rain_window_s: float = 3600.0,
                 rain_warn_fill: float = 0.6, dry_high_fill: float = 0.5, dry_hold_s: float = 3600.0) -> None:
        self.depth_m = depth_m
        self.warn_fill = warn_fill
        self.alarm_fill = max(warn_fill, 1.0 - alarm_freeboard_m / depth_m)
        self.fast_rise_m_per_min = fast_rise_m_per_min
        self.rise_min_fill = rise_min_fill
        self.forecast_horizon_s = forecast_horizon_s
        self.rain_threshold_mm_h = rain_threshold_mm_h
        self.rain_window_s = rain_window_s
        self.rain_warn_fill = rain_warn_fill
        self.dry_high_fill = dry_high_fill
        self.last_rain_at: float | None = None
        self.forecast = TimeToThreshold(level=depth_m, window_s=trend_window_s)
        h = hysteresis
        self.overflow = Policy("drain_overflow", [
            Level("warning", warn_fill, warn_fill - h, min_samples=hold_samples),
            Level("alarm", self.alarm_fill, self.alarm_fill - h, min_samples=hold_samples),
            Level("critical", 1.0, 1.0 - h),  # surcharge needs no persistence
        ], cooldown_s)
        self.blockage = Policy("drain_blockage_suspected",
                               [Level("advisory", dry_high_fill, dry_high_fill - h, hold_s=dry_hold_s)],
                               cooldown_s)

    def raining(self, t: float) -> bool:
        return self.last_rain_at is not None and 0.0 <= t - self.last_rain_at <= self.rain_window_s

    def update(self, reading: Reading) -> Outcome:
        t = reading.observed_at
        if reading.metric == "rain_rate":
            if reading.value >= self.rain_threshold_mm_h:
                self.last_rain_at = t if self.last_rain_at is None else max(self.last_rain_at, t)
            return Outcome(0.0)
        level = reading.value
        fill = level / self.depth_m
        eta = self.forecast.update(t, level)
        rate_min = self.forecast.trend.slope() * 60.0
        raining = self.raining(t)
        risk = fill
        if raining and fill >= self.rain_warn_fill:
            risk = max(risk, self.warn_fill)  # rain + level double threshold
        fast = rate_min >= self.fast_rise_m_per_min and fill >= self.rise_min_fill
        soon = math.isfinite(eta) and eta <= self.forecast_horizon_s and fill >= self.rise_min_fill
        if fast or soon:
            risk = max(risk, self.alarm_fill)
        evidence = {"fill": fill, "freeboard_m": self.depth_m - level, "rise_m_per_min": rate_min,
                    "eta_overflow_s": eta if math.isfinite(eta) else None, "raining": raining}
        findings = self.overflow.step(t, risk, level, evidence)
        dry_fill = 0.0 if raining else fill
        findings += self.blockage.step(t, dry_fill, level, evidence)
        return self._emit(risk, findings)

    def describe(self, finding: Finding) -> Words:
        ev = finding.evidence
        fill = f"{ev['fill']:.0%}"
        if finding.kind == "drain_blockage_suspected":
            if finding.phase == "clear":
                return Words("dry-weather level back to normal", "旱天水位恢复正常")
            return Words(f"drain {fill} full without rain: blockage suspected", f"无雨时井内水位达 {fill}：疑似堵塞")
        if finding.phase == "clear":
            return Words(f"drain back to {fill} full", f"井内水位回落至 {fill}")
        parts = [Words(f"drain {fill} full (freeboard {ev['freeboard_m']:.2f} m)",
                       f"井内水位 {fill}（距井口 {ev['freeboard_m']:.2f} 米）")]
        if ev["rise_m_per_min"] > 0.001:
            rise = f"{ev['rise_m_per_min'] * 100:.1f}"
            parts.append(Words(f"rising {rise} cm/min", f"每分钟上涨 {rise} 厘米"))
        if ev["eta_overflow_s"] is not None and ev["eta_overflow_s"] > 0:
            eta = f"{ev['eta_overflow_s'] / 60:.0f}"
            parts.append(Words(f"overflows in ~{eta} min", f"约 {eta} 分钟后溢出"))
        if ev["fill"] >= 1.0:
            parts.append(Words("surcharging", "已满溢"))
        if ev["raining"]:
            parts.append(Words("raining", "正在降雨"))
        return Words.join(parts)
