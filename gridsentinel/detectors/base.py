"""The uniform detector interface: a reading in, a score and findings out; state as plain JSON.

Every detector is one small class whose configuration is its constructor arguments. ``update(reading)``
returns an :class:`Outcome` (how unusual the reading is, plus any findings the policy decided on);
``check(now)`` lets time pass without a reading (dropout); ``state()`` / ``restore()`` move the mutable
state through JSON so a Faust table can hold it.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar, Literal

from gridsentinel.ingest.records import Reading

Phase = Literal["open", "escalate", "clear"]


@dataclass(frozen=True, slots=True)
class Finding:
    """One decision of a detector's policy about an incident.

    ``open`` starts an incident, ``escalate`` raises its severity, ``clear`` ends it. ``started_at`` (the
    event time the incident began) is the same for every finding of one incident, which is what makes
    detection ids deterministic and a flapping signal one incident.
    """

    kind: str
    phase: Phase
    severity: str
    started_at: float
    observed_at: float
    value: float
    score: float
    message: str = ""
    evidence: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """What ``update`` returns: the scorer's score (finite, >= 0, larger = more unusual) and findings."""

    score: float
    findings: tuple[Finding, ...] = ()


def finite(x: float | None, default: float = 0.0) -> float:
    """``x`` when it is a finite number, else ``default`` (keeps scores and state JSON-safe)."""
    if x is None or not math.isfinite(x):
        return default
    return float(x)


class Stateful:
    """Serialise the attributes named in ``_state_fields`` (and child ``Stateful`` objects) as JSON data.

    Only plain values are allowed in state: numbers (finite), strings, bools, None, lists, dicts with
    string keys, and deques (stored as lists, their ``maxlen`` kept from the constructor).
    """

    _state_fields: ClassVar[tuple[str, ...]] = ()
    _children: ClassVar[tuple[str, ...]] = ()

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in self._state_fields:
            out[name] = _to_json(getattr(self, name))
        for name in self._children:
            child = getattr(self, name)
            out[name] = None if child is None else child.state()
        return out

    def restore(self, state: dict[str, Any]) -> None:
        for name in self._state_fields:
            if name not in state:
                continue
            current = getattr(self, name)
            value = state[name]
            if isinstance(current, deque):
                setattr(self, name, deque(value, maxlen=current.maxlen))
            elif isinstance(value, list):
                setattr(self, name, list(value))
            elif isinstance(value, dict):
                setattr(self, name, dict(value))
            else:
                setattr(self, name, value)
        for name in self._children:
            child = getattr(self, name)
            if child is not None and state.get(name) is not None:
                child.restore(state[name])


def _to_json(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"non-finite float {value!r} in detector state")
    if isinstance(value, (deque, list, tuple)):
        return [_to_json(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _to_json(v) for k, v in value.items()}
    return value


class Detector(Stateful):
    """Base class of every registered detector.

    Subclasses set ``name`` (the registry key) and ``metrics`` (the reading metrics they consume; empty
    means any metric) and implement ``update``. Findings come only from a policy, never from a scorer.
    """

    name: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ()

    def accepts(self, reading: Reading) -> bool:
        """Whether this detector consumes ``reading`` (by metric)."""
        return not self.metrics or reading.metric in self.metrics

    def update(self, reading: Reading) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, now: float) -> list[Finding]:
        """Let time pass to ``now`` (event time or the worker's wall clock, passed in). Default: nothing."""
        return []

    def describe(self, finding: Finding) -> str:
        """A one-line human message for a finding; detectors override it with domain wording."""
        verb = {"open": "started", "escalate": "escalated", "clear": "cleared"}[finding.phase]
        return (f"{finding.kind} {verb} ({finding.severity}): value {finding.value:g}, "
                f"score {finding.score:.2f}")

    def _emit(self, score: float, findings: list[Finding]) -> Outcome:
        return Outcome(finite(score), tuple(replace(f, message=self.describe(f)) for f in findings))
