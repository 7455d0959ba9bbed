"""Noise: L_Aeq against the GB 3096-2008 limit for the zone class, by day and by night.

Day is 06:00–22:00 local time by default (GB 3096-2008); ``utc_offset_s`` sets local time because the
detector has no clock or time-zone database. At night a maximum level (``lmax``) is allowed up to the
night limit + 15 dB.
"""

from __future__ import annotations

from types import MappingProxyType
from typing import ClassVar, Literal

from gridsentinel.core.records import Reading
from gridsentinel.core.words import Words
from gridsentinel.detectors.base import Detector, Finding, Outcome
from gridsentinel.detectors.policy import Level, Policy

ZoneClass = Literal["0", "1", "2", "3", "4a", "4b"]

# (day, night) L_Aeq limits in dB(A), GB 3096-2008, from docs/domain.md.
LIMITS: MappingProxyType[str, tuple[float, float]] = MappingProxyType({
    "0": (50.0, 40.0), "1": (55.0, 45.0), "2": (60.0, 50.0), "3": (65.0, 55.0),
    "4a": (70.0, 55.0), "4b": (70.0, 60.0),
})
NIGHT_PEAK_ALLOWANCE_DB = 15.0


class NoiseDetector(Detector):
    """Exceedance of the zone's day/night limit, held for ``hold_s``; alarm ``alarm_excess_db`` over it.

    >>> d = NoiseDetector(zone_class="1", hold_s=600, utc_offset_s=0)
    >>> night = 23 * 3600.0                      # 23:00: class 1 allows 45 dB
    >>> rows = [Reading("n-1", "laeq", "dB", 52.0, night + 300 * i) for i in range(4)]
    >>> out = [f for r in rows for f in d.update(r).findings]
    >>> [(f.phase, f.severity, f.message) for f in out]
    [('open', 'warning', 'noise 52.0 dB(A) at night, limit 45 dB(A) (class 1, GB 3096-2008)')]
    """

    name: ClassVar[str] = "noise"
    metrics: ClassVar[tuple[str, ...]] = ("laeq", "lmax")
    _children: ClassVar[tuple[str, ...]] = ("policy",)

    def __init__(self, zone_class: ZoneClass = "2", day_start_h: float = 6.0, night_start_h: float = 22.0,
                 utc_offset_s: float = 28800.0, hold_s: float = 900.0, alarm_excess_db: float = 10.0,
                 hysteresis_db: float = 2.0, cooldown_s: float = 1800.0) -> None:
        self.zone_class = zone_class
        self.day_limit, self.night_limit = LIMITS[zone_class]
        self.day_start_s, self.night_start_s = day_start_h * 3600.0, night_start_h * 3600.0
        self.utc_offset_s = utc_offset_s
        self.policy = Policy("noise_exceedance", [
            Level("warning", 0.0, -hysteresis_db, hold_s),
            Level("alarm", alarm_excess_db, alarm_excess_db - hysteresis_db, hold_s),
        ], cooldown_s)

    def is_night(self, t: float) -> bool:
        sod = (t + self.utc_offset_s) % 86400.0
        return not (self.day_start_s <= sod < self.night_start_s)

    def limit(self, t: float, metric: str = "laeq") -> float:
        night = self.is_night(t)
        if metric == "lmax":
            return self.night_limit + NIGHT_PEAK_ALLOWANCE_DB if night else float("inf")
        return self.night_limit if night else self.day_limit

    def update(self, reading: Reading) -> Outcome:
        t = reading.observed_at
        limit = self.limit(t, reading.metric)
        if limit == float("inf"):
            return Outcome(0.0)  # lmax is only limited at night
        excess = reading.value - limit
        evidence = {"limit_db": limit, "night": self.is_night(t), "metric": reading.metric,
                    "zone_class": self.zone_class}
        return self._emit(max(0.0, reading.value / limit),
                          self.policy.step(t, excess, reading.value, evidence))

    def describe(self, finding: Finding) -> Words:
        ev = finding.evidence
        when, when_zh = ("at night", "夜间") if ev["night"] else ("by day", "昼间")
        if finding.phase == "clear":
            return Words(f"noise back under the limit ({finding.value:.1f} dB(A))",
                         f"噪声回落到限值以下（{finding.value:.1f} dB(A)）")
        return Words(f"noise {finding.value:.1f} dB(A) {when}, limit {ev['limit_db']:g} dB(A) "
                     f"(class {ev['zone_class']}, GB 3096-2008)",
                     f"{when_zh}噪声 {finding.value:.1f} dB(A)，限值 {ev['limit_db']:g} dB(A)"
                     f"（{ev['zone_class']} 类声环境功能区，GB 3096-2008）")
