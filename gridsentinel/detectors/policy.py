"""Deciding, apart from scoring: hysteresis thresholds and the incident policy built from them.

A scorer says how unusual a value is; :class:`Policy` turns a stream of ``(time, score)`` into incidents:
a level is entered at ``enter`` and left below ``exit`` (hysteresis), must hold for ``hold_s`` seconds and
``min_samples`` readings before it counts, an incident clears only after ``cooldown_s`` of quiet, and a
signal that keeps bouncing is marked as flapping (and needs twice the quiet to clear). A flapping signal
is therefore one incident: one ``open`` finding, maybe ``escalate`` findings, one ``clear``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal

from gridsentinel.core.records import SEVERITIES
from gridsentinel.detectors.base import Finding, Stateful, finite


class Hysteresis(Stateful):
    """Threshold with separate enter and exit levels and a minimum hold time.

    ``step`` returns True while the condition is confirmed: the value went ``>= enter`` (``<= enter``
    for ``direction="below"``), has not gone back past ``exit`` since, and that has lasted at least
    ``hold_s`` seconds and ``min_samples`` readings.

    >>> h = Hysteresis(enter=10.0, exit=8.0, hold_s=2.0)
    >>> [h.step(t, x) for t, x in [(0, 11), (1, 9), (2, 9), (3, 7), (4, 12)]]
    [False, False, True, False, False]
    """

    _state_fields: ClassVar[tuple[str, ...]] = ("since", "samples")

    def __init__(self, enter: float, exit: float, hold_s: float = 0.0, min_samples: int = 1,
                 direction: Literal["above", "below"] = "above") -> None:
        sign = 1.0 if direction == "above" else -1.0
        if sign * exit > sign * enter:
            raise ValueError(f"exit {exit} must not be past enter {enter} for direction {direction!r}")
        self.enter = enter
        self.exit = exit
        self.hold_s = hold_s
        self.min_samples = min_samples
        self._sign = sign
        self.since: float | None = None
        self.samples = 0

    def step(self, t: float, x: float) -> bool:
        s = self._sign
        if self.since is None:
            if s * x >= s * self.enter:
                self.since = t
                self.samples = 1
        elif s * x < s * self.exit:
            self.since = None
            self.samples = 0
        else:
            self.samples += 1
        return self.confirmed(t)

    def confirmed(self, t: float) -> bool:
        return (self.since is not None and t - self.since >= self.hold_s
                and self.samples >= self.min_samples)

    @property
    def engaged(self) -> bool:
        """Inside the hysteresis band or above it (confirmed or not)."""
        return self.since is not None


@dataclass(frozen=True, slots=True)
class Level:
    """One rung of a policy's ladder: severity, enter/exit levels on the score, and the hold needed."""

    severity: str
    enter: float
    exit: float
    hold_s: float = 0.0
    min_samples: int = 1

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {SEVERITIES}, got {self.severity!r}")


class Policy(Stateful):
    """Scores to incidents: a severity ladder of hysteresis thresholds plus cool-down and flap state.

    >>> p = Policy("demo", [Level("warning", 1.0, 0.8), Level("alarm", 2.0, 1.8)], cooldown_s=10)
    >>> steps = [(0, 0.5), (1, 1.2), (2, 0.5), (3, 1.1), (4, 0.4), (5, 2.5), (30, 0.1), (45, 0.1)]
    >>> [(f.phase, f.severity, f.started_at) for t, s in steps for f in p.step(t, s, s)]
    [('open', 'warning', 1), ('escalate', 'alarm', 1), ('clear', 'alarm', 1)]
    """

    _state_fields: ClassVar[tuple[str, ...]] = (
        "active", "level", "started_at", "quiet_since", "flaps", "peak_score", "peak_value")

    def __init__(self, kind: str, levels: Sequence[Level], cooldown_s: float = 0.0, flap_limit: int = 3,
                 direction: Literal["above", "below"] = "above") -> None:
        if not levels:
            raise ValueError("a policy needs at least one level")
        self.kind = kind
        self.levels = tuple(levels)
        self.cooldown_s = cooldown_s
        self.flap_limit = flap_limit
        self.gates = [Hysteresis(lv.enter, lv.exit, lv.hold_s, lv.min_samples, direction) for lv in levels]
        self.active = False
        self.level = -1
        self.started_at = 0.0
        self.quiet_since: float | None = None
        self.flaps = 0
        self.peak_score = 0.0
        self.peak_value = 0.0

    def state(self) -> dict[str, Any]:
        out = super().state()
        out["gates"] = [g.state() for g in self.gates]
        return out

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        for gate, st in zip(self.gates, state.get("gates", []), strict=False):
            gate.restore(st)

    @property
    def flapping(self) -> bool:
        return self.flaps >= self.flap_limit

    def step(self, t: float, score: float, value: float,
             evidence: dict[str, Any] | None = None) -> list[Finding]:
        """Feed one scored reading; return the findings it causes (usually none)."""
        confirmed = -1
        engaged = False
        for i, gate in enumerate(self.gates):
            if gate.step(t, score):
                confirmed = i
            engaged = engaged or gate.engaged
        if not self.active:
            if confirmed < 0:
                return []
            starts = [g.since for g in self.gates if g.since is not None]
            self.active = True
            self.level = confirmed
            self.started_at = min(starts) if starts else t
            self.quiet_since = None
            self.flaps = 0
            self.peak_score = finite(score)
            self.peak_value = value
            return [self._finding("open", t, score, value, evidence)]
        if score > self.peak_score:
            self.peak_score, self.peak_value = finite(score), value
        if engaged:
            if self.quiet_since is not None:
                self.flaps += 1
                self.quiet_since = None
            if confirmed > self.level:
                self.level = confirmed
                return [self._finding("escalate", t, score, value, evidence)]
            return []
        if self.quiet_since is None:
            self.quiet_since = t
        quiet_needed = self.cooldown_s * (2.0 if self.flapping else 1.0)
        if t - self.quiet_since >= quiet_needed:
            self.active = False
            self.quiet_since = None
            return [self._finding("clear", t, score, value, evidence)]
        return []

    def _finding(self, phase: Literal["open", "escalate", "clear"], t: float, score: float, value: float,
                 evidence: dict[str, Any] | None) -> Finding:
        ev = dict(evidence or {})
        ev.update(flaps=self.flaps, flapping=self.flapping, peak_score=self.peak_score,
                  peak_value=self.peak_value)
        return Finding(kind=self.kind, phase=phase, severity=self.levels[self.level].severity,
                       started_at=self.started_at, observed_at=t, value=value, score=finite(score),
                       evidence=ev)
