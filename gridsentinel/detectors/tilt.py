"""Manhole-cover tilt: an angle held past the limit opens a component case; above 90° it is unconditional.

Passing traffic rocks a cover for a moment, so the alarm needs the angle held for ``hold_s`` seconds
(docs/domain.md: one design alarms at > 15° held >= 2 s). A cover flipped past ``critical_deg`` (90°
by default) is critical at once. Tilt sensors often report only on change, so ``check(now)`` lets the
last angle keep holding while no reading arrives.
"""

from __future__ import annotations

from typing import ClassVar

from gridsentinel.core.records import Reading
from gridsentinel.core.words import Words
from gridsentinel.detectors.base import Detector, Finding, Outcome
from gridsentinel.detectors.policy import Level, Policy


class CoverTiltDetector(Detector):
    """Tilt angle with hysteresis and hold time; unconditional above ``critical_deg``.

    >>> d = CoverTiltDetector(alarm_deg=10, hold_s=2)
    >>> r = lambda t, deg: Reading("cover-7", "tilt", "deg", deg, t)
    >>> [f.phase for f in d.update(r(0.0, 25.0)).findings + d.update(r(1.0, 1.0)).findings]  # a bus
    []
    >>> [(f.phase, f.severity) for f in [*d.update(r(10.0, 30.0)).findings, *d.check(13.0)]]
    [('open', 'alarm')]
    >>> [(f.phase, f.severity, f.message) for f in d.update(r(20.0, 120.0)).findings]
    [('escalate', 'critical', 'cover tilted 120° (limit 10°)')]
    """

    name: ClassVar[str] = "cover_tilt"
    metrics: ClassVar[tuple[str, ...]] = ("tilt",)
    _state_fields: ClassVar[tuple[str, ...]] = ("last_t", "last_deg")
    _children: ClassVar[tuple[str, ...]] = ("policy",)

    def __init__(self, alarm_deg: float = 10.0, exit_deg: float | None = None, hold_s: float = 2.0,
                 critical_deg: float = 90.0, cooldown_s: float = 600.0) -> None:
        self.alarm_deg = alarm_deg
        exit_level = 0.8 * alarm_deg if exit_deg is None else exit_deg
        self.policy = Policy("cover_tilt", [
            Level("alarm", alarm_deg, exit_level, hold_s=hold_s),
            Level("critical", critical_deg, critical_deg - 5.0),  # unconditional: no hold
        ], cooldown_s)
        self.last_t: float | None = None
        self.last_deg = 0.0

    def update(self, reading: Reading) -> Outcome:
        deg = abs(reading.value)
        self.last_t, self.last_deg = reading.observed_at, deg
        return self._emit(deg / self.alarm_deg, self.policy.step(reading.observed_at, deg, deg))

    def check(self, now: float) -> list[Finding]:
        if self.last_t is None or now <= self.last_t:
            return []
        return list(self._emit(0.0, self.policy.step(now, self.last_deg, self.last_deg)).findings)

    def describe(self, finding: Finding) -> Words:
        if finding.phase == "clear":
            return Words(f"cover level again ({finding.value:.0f}°)", f"井盖已复位（{finding.value:.0f}°）")
        return Words(f"cover tilted {finding.value:.0f}° (limit {self.alarm_deg:g}°)",
                     f"井盖倾斜 {finding.value:.0f}°（限值 {self.alarm_deg:g}°）")
