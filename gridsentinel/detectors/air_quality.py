"""Air quality: individual air-quality index (IAQI) from versioned breakpoint tables.

IAQI is piecewise linear between breakpoints: for a concentration C in [BP_lo, BP_hi] with index band
[I_lo, I_hi], IAQI = (I_hi - I_lo) / (BP_hi - BP_lo) · (C - BP_lo) + I_lo; AQI is the largest IAQI.
The PM breakpoints are for 24-hour means, so the detector averages over ``averaging_s`` (hourly buckets)
and says which window it used. Tables are keyed by their standard's version: codes and bands change
(HJ 633-2026 revises the PM bands), and a detection must say which table it used.
"""

from __future__ import annotations

from collections import deque
from types import MappingProxyType
from typing import ClassVar, Literal

from gridsentinel.core.records import Reading
from gridsentinel.core.words import Words
from gridsentinel.detectors.base import Detector, Finding, Outcome
from gridsentinel.detectors.policy import Level, Policy

IAQI_LEVELS: tuple[float, ...] = (0.0, 50.0, 100.0, 150.0, 200.0, 300.0, 400.0, 500.0)

# Breakpoints (µg/m³, 24-hour means), from docs/domain.md. Add a new version beside the old one.
BREAKPOINTS: MappingProxyType[str, MappingProxyType[str, tuple[float, ...]]] = MappingProxyType({
    "HJ 633-2012": MappingProxyType({
        "pm2_5": (0, 35, 75, 115, 150, 250, 350, 500),
        "pm10": (0, 50, 150, 250, 350, 420, 500, 600),
    }),
})

TableVersion = Literal["HJ 633-2012"]


def iaqi(concentration: float, breakpoints: tuple[float, ...]) -> float:
    """IAQI of one pollutant; above the top breakpoint it is capped at 500.

    >>> iaqi(55.0, BREAKPOINTS["HJ 633-2012"]["pm2_5"])
    75.0
    >>> iaqi(600.0, BREAKPOINTS["HJ 633-2012"]["pm2_5"])
    500.0
    """
    c = max(0.0, concentration)
    for i in range(1, len(breakpoints)):
        lo, hi = breakpoints[i - 1], breakpoints[i]
        if c <= hi:
            return (IAQI_LEVELS[i] - IAQI_LEVELS[i - 1]) / (hi - lo) * (c - lo) + IAQI_LEVELS[i - 1]
    return IAQI_LEVELS[-1]


class AirQualityDetector(Detector):
    """IAQI of PM2.5/PM10 means; advisory > 100 (over the limit), warning > 150, alarm > 200, critical > 300.

    >>> d = AirQualityDetector(averaging_s=3600, hold_s=0)
    >>> out = [f for i, c in enumerate([30, 40, 120, 130, 160, 170])
    ...        for f in d.update(Reading("aq-3", "pm2_5", "ug/m3", c, i * 3600.0 + 60)).findings]
    >>> [(f.phase, f.severity) for f in out]
    [('open', 'warning'), ('escalate', 'alarm')]
    >>> out[0].message
    'IAQI 157 (pm2_5 120 ug/m3, 1h mean, HJ 633-2012)'
    """

    name: ClassVar[str] = "air_quality"
    metrics: ClassVar[tuple[str, ...]] = ("pm2_5", "pm10")
    _state_fields: ClassVar[tuple[str, ...]] = ("buckets", "latest")
    _children: ClassVar[tuple[str, ...]] = ("policy",)

    def __init__(self, table: TableVersion = "HJ 633-2012", averaging_s: float = 86400.0,
                 bucket_s: float = 3600.0, hold_s: float = 3600.0, hysteresis: float = 10.0,
                 cooldown_s: float = 7200.0) -> None:
        self.table = table
        self.breakpoints = BREAKPOINTS[table]
        self.averaging_s = averaging_s
        self.bucket_s = min(bucket_s, averaging_s)
        # per metric: deque of [bucket start, sum, count]
        self.buckets: dict[str, list[list[float]]] = {}
        self.latest: dict[str, float] = {}
        levels = [Level(sev, lim, lim - hysteresis, hold_s)
                  for sev, lim in (("advisory", 100.0), ("warning", 150.0), ("alarm", 200.0),
                                   ("critical", 300.0))]
        self.policy = Policy("air_quality", levels, cooldown_s)

    def mean(self, metric: str, t: float) -> float | None:
        rows = [b for b in self.buckets.get(metric, []) if b[0] > t - self.averaging_s]
        n = sum(b[2] for b in rows)
        return sum(b[1] for b in rows) / n if n else None

    def update(self, reading: Reading) -> Outcome:
        t, metric = reading.observed_at, reading.metric
        rows = deque(self.buckets.get(metric, []))
        start = t - t % self.bucket_s
        if rows and rows[-1][0] == start:
            rows[-1][1] += reading.value
            rows[-1][2] += 1
        else:
            rows.append([start, reading.value, 1])
        while rows and rows[0][0] <= t - self.averaging_s - self.bucket_s:
            rows.popleft()
        self.buckets[metric] = list(rows)
        indices: dict[str, float] = {}
        for m in self.breakpoints:
            mean = self.mean(m, t)
            if mean is not None:
                indices[m] = iaqi(mean, self.breakpoints[m])
                self.latest[m] = mean
        aqi = max(indices.values()) if indices else 0.0
        primary = max(indices, key=lambda m: indices[m]) if indices else metric
        evidence = {"aqi": aqi, "primary": primary, "mean": self.latest.get(primary),
                    "iaqi": indices, "table": self.table, "averaging_s": self.averaging_s}
        return self._emit(aqi / 100.0, self.policy.step(t, aqi, reading.value, evidence))

    def describe(self, finding: Finding) -> Words:
        ev = finding.evidence
        hours = ev["averaging_s"] / 3600.0
        window, window_zh = f"{hours:g}h mean", f"{hours:g} 小时均值"
        if finding.phase == "clear":
            return Words(f"IAQI back to {ev['aqi']:.0f} ({window})",
                         f"空气质量分指数回落至 {ev['aqi']:.0f}（{window_zh}）")
        return Words(f"IAQI {ev['aqi']:.0f} ({ev['primary']} {ev['mean']:.0f} ug/m3, {window}, {ev['table']})",
                     f"空气质量分指数 {ev['aqi']:.0f}（{ev['primary']} {ev['mean']:.0f} 微克/立方米，{window_zh}，"
                     f"{ev['table']}）")
