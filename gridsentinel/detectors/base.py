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
from typing import Any, ClassVar, Generic, Literal, TypeVar

from gridsentinel.core.records import Reading
from gridsentinel.core.words import Words

Phase = Literal["open", "escalate", "clear"]

# Device housekeeping, not a measurement: a battery voltage is steady for days and arrives between the
# readings that matter, so detectors that take "any metric" leave it alone (it must mask nothing).
HOUSEKEEPING_METRICS: frozenset[str] = frozenset({"battery", "battery_level", "rssi"})


@dataclass(frozen=True, slots=True)
class Finding:
    """One decision of a detector's policy about an incident.

    ``open`` starts an incident, ``escalate`` raises its severity, ``clear`` ends it. ``started_at`` (the
    event time the incident began) is the same for every finding of one incident, which is what makes
    detection ids deterministic and a flapping signal one incident. ``metric`` names the metric a
    per-metric detector judged (None when the finding is about the device as a whole).
    """

    kind: str
    phase: Phase
    severity: str
    started_at: float
    observed_at: float
    value: float
    score: float
    message: str = ""  # English
    evidence: dict[str, Any] = field(default_factory=dict)
    metric: str | None = None
    messages: dict[str, str] = field(default_factory=dict)  # other languages: {"zh-CN": ...}


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
    means any measurement, housekeeping such as ``battery`` excluded) and implement ``update``. Findings
    come only from a policy, never from a scorer, so ``kinds`` (every finding kind the detector can emit)
    is read off its policies; a detector that makes policies lazily overrides it.
    """

    name: ClassVar[str] = ""
    metrics: ClassVar[tuple[str, ...]] = ()

    @property
    def kinds(self) -> tuple[str, ...]:
        """The finding kinds this detector can emit (its policies' kinds, in ``_children`` order)."""
        out: list[str] = []
        for name in self._children:
            kind = getattr(getattr(self, name, None), "kind", None)
            if isinstance(kind, str) and kind not in out:
                out.append(kind)
        return tuple(out)

    def accepts(self, reading: Reading) -> bool:
        """Whether this detector consumes ``reading`` (by metric)."""
        if self.metrics:
            return reading.metric in self.metrics
        return reading.metric not in HOUSEKEEPING_METRICS

    def update(self, reading: Reading) -> Outcome:  # pragma: no cover - abstract
        raise NotImplementedError

    def check(self, now: float) -> list[Finding]:
        """Let time pass to ``now`` (event time or the worker's wall clock, passed in). Default: nothing."""
        return []

    def describe(self, finding: Finding) -> str | Words:
        """A one-line human message for a finding (English, or :class:`Words` with its Chinese);
        detectors override it with domain wording."""
        verb = {"open": "started", "escalate": "escalated", "clear": "cleared"}[finding.phase]
        verb_zh = {"open": "开始", "escalate": "升级", "clear": "解除"}[finding.phase]
        return Words(f"{finding.kind} {verb} ({finding.severity}): value {finding.value:g}, "
                     f"score {finding.score:.2f}",
                     f"{finding.kind} 异常{verb_zh}（{finding.severity}）：数值 {finding.value:g}，"
                     f"评分 {finding.score:.2f}")

    def _emit(self, score: float, findings: list[Finding]) -> Outcome:
        return Outcome(finite(score), tuple(self._worded(f) for f in findings))

    def _worded(self, finding: Finding) -> Finding:
        words = Words.of(self.describe(finding))
        return replace(finding, message=words.en, messages=words.messages())


T = TypeVar("T", bound=Stateful)


class PerMetric(Detector, Generic[T]):
    """A detector that judges each metric on its own: one ``track`` (scorer + policy) per metric.

    A device that sends several metrics (pm2_5 and pm10, a level and its battery) would otherwise feed
    one scorer an interleaving of unrelated series. State is ``{"metrics": {metric: track state}}``.
    State saved before tracks were per metric (the track's own shape, at the top level) is kept aside
    and taken over by the first metric that arrives: exact for single-metric devices, and a mixed
    history washes out of the scorer as that metric's own readings come in.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.tracks: dict[str, T] = {}
        self._legacy: dict[str, Any] | None = None

    @property
    def kinds(self) -> tuple[str, ...]:
        return (self.kind,)

    def new_track(self) -> T:  # pragma: no cover - abstract
        raise NotImplementedError

    def track(self, metric: str) -> T:
        tr = self.tracks.get(metric)
        if tr is None:
            tr = self.tracks[metric] = self.new_track()
            if self._legacy is not None:
                tr.restore(self._legacy)
                self._legacy = None
        return tr

    def state(self) -> dict[str, Any]:
        out: dict[str, Any] = {"metrics": {m: tr.state() for m, tr in self.tracks.items()}}
        if self._legacy is not None:
            out["legacy"] = _to_json(self._legacy)
        return out

    def restore(self, state: dict[str, Any]) -> None:
        self.tracks = {}
        if "metrics" not in state:  # the single-track shape of earlier versions
            self._legacy = dict(state) if state else None
            return
        for metric, st in (state.get("metrics") or {}).items():
            tr = self.tracks[metric] = self.new_track()
            tr.restore(st)
        self._legacy = state.get("legacy")

    def _named(self, metric: str, findings: list[Finding]) -> list[Finding]:
        return [replace(f, metric=metric, evidence={**f.evidence, "metric": metric}) for f in findings]
