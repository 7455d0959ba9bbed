"""Department and center performance over a period, from case histories.

A :class:`CaseRecord` is one case reduced to what performance needs: when it opened, its department and
center, its closing, and its history (workflow events with times). Two adapters fill it: the case store
(:mod:`gridsentinel.analytics.sources`, from the audit log) and the Boston 311 extract (open, due and
closed times only). The figures, per group (a department or a center) over ``[start, end)``:

- **cases**: cases opened in the period (the cohort; every time below is about the cohort);
- **time to dispatch**: first ``dispatch`` minus opening (median, 90th percentile), dispatched cases;
- **time to resolve**: the resolution (the last ``resolve`` before closing as resolved; for a source
  without ``resolve`` events, the closing) minus opening, for cases resolved by ``as_of`` (median, p90);
- **overdue share**: of the cohort's cases with a deadline, those that missed one: a handling deadline
  (set by ``dispatch``/``rework``, or a source's single due time) passed before the case was resolved
  (or still open at ``as_of``), or the case was escalated for being overdue (an escalation after a
  refusal, ``reason`` ``repeated_refusal``/``multi_department_refusal``, says nothing about time);
- **rework, escalations sent/received, refusals**: events in ``[start, end)`` (of any case given). A
  center *sends* an escalation when a case leaves it (``from_center``) and *receives* one when the case
  arrives (``center``); a department is charged an escalation sent when its case escalates while with it,
  and receives none in today's workflow. A refusal is a ``refuse``/``refused`` event charged to the
  department it names (or holding the case); ``None`` means *not recorded* (the source has no such event),
  which is different from zero.

Nothing is read after ``as_of`` (default ``end``): the figures of a past week do not change later.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

REFUSAL_ACTIONS = frozenset({"refuse", "refused"})
CLOSING_ACTIONS = frozenset({"close", "false_alarm", "duplicate"})


@dataclass(frozen=True, slots=True)
class Event:
    at: float
    action: str
    data: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CaseRecord:
    """One case's history for performance figures; times are Unix seconds."""

    case_id: str
    opened_at: float
    department: str | None = None  # the department holding the case (last dispatch)
    center: str = ""  # the center it started at (e.g. "community:320582110152")
    closed_at: float | None = None
    resolved: bool = False  # closed as resolved (not a false alarm or duplicate)
    due_at: float | None = None  # a single due time, for sources without dispatch events (Boston)
    events: tuple[Event, ...] = ()
    grid_code: str = ""
    category: str = ""
    title: str = ""

    def events_until(self, as_of: float) -> list[Event]:
        return [e for e in self.events if e.at < as_of]


@dataclass
class GroupFigures:
    group: str
    cases: int = 0
    dispatched: int = 0
    dispatch_median_h: float | None = None
    dispatch_p90_h: float | None = None
    resolved: int = 0
    resolve_median_h: float | None = None
    resolve_p90_h: float | None = None
    with_deadline: int = 0
    overdue: int = 0
    rework: int | None = 0
    escalations_sent: int | None = 0
    escalations_received: int | None = 0
    refusals: int | None = None

    @property
    def overdue_share(self) -> float | None:
        return self.overdue / self.with_deadline if self.with_deadline else None


def _quantiles_h(values: Sequence[float]) -> tuple[float | None, float | None]:
    if not values:
        return None, None
    arr = np.asarray(values, dtype=float) / 3600.0
    return float(np.percentile(arr, 50)), float(np.percentile(arr, 90))


def first_dispatch(record: CaseRecord, as_of: float) -> float | None:
    return next((e.at for e in record.events_until(as_of) if e.action == "dispatch"), None)


def resolved_at(record: CaseRecord, as_of: float) -> float | None:
    """When the case was resolved, if it was by ``as_of`` (see the module's definition)."""
    events = record.events_until(as_of)
    if record.closed_at is not None and record.closed_at < as_of and not record.resolved:
        return None  # closed as a false alarm or duplicate: never resolved
    resolves = [e.at for e in events if e.action == "resolve"]
    if resolves:
        # The last resolve before a rework is not the resolution: only one that no rework followed.
        last = resolves[-1]
        if not any(e.action == "rework" and e.at > last for e in events):
            return last
        return None
    if record.resolved and record.closed_at is not None and record.closed_at < as_of:
        return record.closed_at
    return None


def was_overdue(record: CaseRecord, as_of: float) -> bool | None:
    """Whether the case missed a deadline by ``as_of``; None when it never had one."""
    events = record.events_until(as_of)
    if any(e.action == "escalate" and e.data.get("reason", "overdue") == "overdue" for e in events):
        return True  # an escalation without a reason is from before refusals escalated: overdue
    segments: list[tuple[float, float]] = []  # (due, end of the segment)
    handling_due: float | None = None
    for e in events:
        if e.action in ("dispatch", "rework", "reopen") and e.data.get("due_at") is not None:
            handling_due = float(e.data["due_at"])
        elif e.action in ("resolve", *CLOSING_ACTIONS) and handling_due is not None:
            segments.append((handling_due, e.at))
            handling_due = None
    if handling_due is not None:
        segments.append((handling_due, as_of))  # still being handled at as_of
    if record.due_at is not None:
        end = record.closed_at if record.closed_at is not None and record.closed_at < as_of else as_of
        segments.append((record.due_at, end))
    if not segments:
        return None
    return any(end > due for due, end in segments)


def _department_at(record: CaseRecord, at: float) -> str | None:
    dept = None
    for e in record.events:
        if e.at > at:
            break
        if e.action == "dispatch" and e.data.get("department"):
            dept = str(e.data["department"])
    return dept or record.department


def figures(records: Iterable[CaseRecord], by: str, *, start: float, end: float, as_of: float | None = None,
            refusals_recorded: bool = False, rework_recorded: bool = True,
            escalations_recorded: bool = True) -> list[GroupFigures]:
    """Performance per ``by`` ("department", "center" or "all") over ``[start, end)``, by cases (desc).

    ``refusals_recorded``, ``rework_recorded`` and ``escalations_recorded`` say whether the source can
    record those events at all; when it cannot, the figure is None ("not recorded"), never 0.
    """
    if by not in ("department", "center", "all"):
        raise ValueError(f"by must be 'department', 'center' or 'all', got {by!r}")
    as_of = end if as_of is None else as_of
    keys: dict[str, Callable[[CaseRecord], str]] = {
        "department": lambda r: r.department or "(not dispatched)",
        "center": lambda r: r.center or "(none)",
        "all": lambda r: "all"}
    key = keys[by]

    def holder(r: CaseRecord, at: float) -> str:
        """The group an event at ``at`` is charged to: the department holding the case then."""
        if by == "department":
            return _department_at(r, at) or "(not dispatched)"
        return key(r)
    groups: dict[str, GroupFigures] = {}
    dispatch: dict[str, list[float]] = defaultdict(list)
    resolve: dict[str, list[float]] = defaultdict(list)

    def group(name: str) -> GroupFigures:
        if name not in groups:
            groups[name] = GroupFigures(
                name, rework=0 if rework_recorded else None,
                escalations_sent=0 if escalations_recorded else None,
                escalations_received=(0 if escalations_recorded and by != "department" else None),
                refusals=0 if refusals_recorded else None)
        return groups[name]

    for r in records:
        if start <= r.opened_at < end and r.opened_at < as_of:
            g = group(key(r))
            g.cases += 1
            d = first_dispatch(r, as_of)
            if d is not None:
                g.dispatched += 1
                dispatch[g.group].append(d - r.opened_at)
            s = resolved_at(r, as_of)
            if s is not None:
                g.resolved += 1
                resolve[g.group].append(s - r.opened_at)
            late = was_overdue(r, as_of)
            if late is not None:
                g.with_deadline += 1
                g.overdue += int(late)
        for e in r.events:
            if not (start <= e.at < end and e.at < as_of):
                continue
            if e.action == "rework" and rework_recorded:
                rg = group(holder(r, e.at))
                rg.rework = (rg.rework or 0) + 1
            elif e.action == "escalate" and escalations_recorded:
                if by == "center":
                    sender = group(str(e.data.get("from_center") or key(r)))
                    receiver: GroupFigures | None = group(str(e.data.get("center") or "(unknown)"))
                else:
                    sender = group(holder(r, e.at))
                    receiver = sender if by == "all" else None
                sender.escalations_sent = (sender.escalations_sent or 0) + 1
                if receiver is not None:
                    receiver.escalations_received = (receiver.escalations_received or 0) + 1
            elif e.action in REFUSAL_ACTIONS and refusals_recorded:
                who = str(e.data.get("department") or "") if by == "department" else ""
                rg = group(who or holder(r, e.at))
                rg.refusals = (rg.refusals or 0) + 1
    for name, g in groups.items():
        g.dispatch_median_h, g.dispatch_p90_h = _quantiles_h(dispatch.get(name, []))
        g.resolve_median_h, g.resolve_p90_h = _quantiles_h(resolve.get(name, []))
    return sorted(groups.values(), key=lambda g: (-g.cases, g.group))

