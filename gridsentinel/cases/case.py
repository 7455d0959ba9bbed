"""The case model and its state machine.

States follow the grid-management workflow::

    open ─dispatch─▶ dispatched ─start─▶ in_progress ─resolve─▶ resolved ─verify─▶ verified ─close─▶ closed
                         ▲                                          │
                         └──────────────── rework ◀─────────────────┘   (verification failed)

plus ``false_alarm`` and ``duplicate`` (→ closed with that reason, allowed until the department reports
the case resolved: once it has been handled the problem was real) and ``reopen`` (closed → open).
``acknowledge`` records that a person has seen an open case (it stops critical reminders) without
changing its state. Every action is checked against :data:`TRANSITIONS`; an illegal one raises
:class:`InvalidTransition` listing what is allowed. Nothing here does I/O or reads a clock.

>>> case = new_case_for_test()
>>> change = apply_action(case, "dispatch", actor="user:li", at=100.0, department="water_affairs")
>>> change.case.status, change.case.department, change.entries[0].action
('dispatched', 'water_affairs', 'dispatch')
>>> apply_action(change.case, "close", actor="user:li", at=101.0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
gridsentinel.cases.case.InvalidTransition: case c1 is dispatched: cannot close; allowed: start, ...
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from gridsentinel.errors import GridSentinelError

Status = Literal["open", "dispatched", "in_progress", "resolved", "verified", "closed"]
STATUSES: tuple[Status, ...] = ("open", "dispatched", "in_progress", "resolved", "verified", "closed")
# Not closed: the store keeps at most one of these per (grid cell, category).
ACTIVE_STATUSES: tuple[Status, ...] = STATUSES[:-1]

ClosingReason = Literal["resolved", "false_alarm", "duplicate"]
CLOSING_REASONS: tuple[ClosingReason, ...] = ("resolved", "false_alarm", "duplicate")

Action = Literal["dispatch", "acknowledge", "start", "resolve", "verify", "rework", "close",
                 "false_alarm", "duplicate", "reopen"]

# action -> (statuses it is allowed from, status it leads to; None = unchanged)
TRANSITIONS: dict[str, tuple[frozenset[str], Status | None]] = {
    "dispatch": (frozenset({"open"}), "dispatched"),
    "acknowledge": (frozenset({"open"}), None),
    "start": (frozenset({"dispatched"}), "in_progress"),
    # A crew that fixes the problem on arrival may report it resolved without a separate start.
    "resolve": (frozenset({"dispatched", "in_progress"}), "resolved"),
    "verify": (frozenset({"resolved"}), "verified"),
    "rework": (frozenset({"resolved"}), "dispatched"),
    "close": (frozenset({"verified"}), "closed"),
    "false_alarm": (frozenset({"open", "dispatched", "in_progress"}), "closed"),
    "duplicate": (frozenset({"open", "dispatched", "in_progress"}), "closed"),
    "reopen": (frozenset({"closed"}), "open"),
}
ACTIONS: tuple[str, ...] = tuple(TRANSITIONS)


def allowed_actions(status: str) -> list[str]:
    """The actions allowed from ``status``, in workflow order.

    >>> allowed_actions("resolved")
    ['verify', 'rework']
    """
    return [a for a, (sources, _) in TRANSITIONS.items() if status in sources]


class CaseError(GridSentinelError):
    """Root of case errors."""


class InvalidTransition(CaseError):
    """An action is not allowed from the case's current status (the API answers 409)."""

    def __init__(self, case_id: str, status: str, action: str, detail: str = "") -> None:
        self.case_id = case_id
        self.status = status
        self.action = action
        self.allowed = allowed_actions(status)
        allowed = ", ".join(self.allowed) or "none"
        msg = f"case {case_id} is {status}: cannot {action}; allowed: {allowed}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


class CaseNotFound(CaseError):
    """No case with that id (the API answers 404)."""


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One line of a case's append-only audit log: who did what, when."""

    case_id: str
    seq: int  # 1, 2, 3 … per case; (case_id, seq) is unique
    at: float  # Unix seconds
    actor: str  # "system:dedup", "system:escalation", "user:<name>"
    action: str  # a workflow action, or a system one: open, evidence, raise_severity, escalate, remind
    from_status: str | None
    to_status: str | None
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class Case:
    """A grid-management case. Times are Unix seconds (UTC)."""

    case_id: str
    grid_code: str
    category_type: str  # "component" | "event"
    category_code: str
    category_standard: str  # the standard version the code belongs to
    status: Status
    severity: str  # one of core.records.SEVERITIES; the highest seen
    opened_at: float
    updated_at: float
    first_seen_at: float  # earliest observed_at of its detections
    last_seen_at: float  # latest observed_at of its detections
    detection_count: int = 0
    sources: dict[str, int] = field(default_factory=dict)  # source -> detections from it
    kinds: tuple[str, ...] = ()  # detection kinds seen, sorted
    title: str = ""
    lat: float | None = None
    lon: float | None = None
    department: str | None = None
    center: str = ""  # id of the responsible center, e.g. "street:320582110"
    escalation_level: int = 0  # steps above the center the case started at
    due_at: float | None = None  # deadline of the current stage (dispatch while open, then handling)
    dispatched_at: float | None = None
    acknowledged_at: float | None = None
    last_reminded_at: float | None = None
    closed_at: float | None = None
    closing_reason: ClosingReason | None = None
    duplicate_of: str | None = None
    reopen_count: int = 0
    rework_count: int = 0
    home_center: str = ""  # the center the case started at (a hand-back returns it there)
    assisting_departments: tuple[str, ...] = ()  # joint handling: departments helping the lead one
    refusal_count: int = 0  # times a department refused the case
    refused_at: float | None = None  # the last refusal (the case is back in its center's queue)
    pending_action: dict[str, Any] | None = None  # a request waiting for a second user (four eyes)
    headline: str = ""  # the case's current state in words: the latest detection at its severity
    version: int = 0  # bumped by the store on every write; an optimistic lock
    log_count: int = 0  # number of log entries written so far

    @property
    def category_key(self) -> str:
        """The category's unique key, e.g. ``component:0103`` (component and event codes overlap)."""
        return f"{self.category_type}:{self.category_code}"

    @property
    def is_active(self) -> bool:
        return self.status != "closed"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["kinds"] = list(self.kinds)
        data["assisting_departments"] = list(self.assisting_departments)
        data["category_key"] = self.category_key
        return data


@dataclass(frozen=True, slots=True)
class CaseChange:
    """A case after a change, with the log entries the change appended (in order)."""

    case: Case
    entries: tuple[LogEntry, ...]
    created: bool = False  # True when the case did not exist before


def log(case: Case, *, at: float, actor: str, action: str, to_status: str | None = None,
        note: str = "", data: dict[str, Any] | None = None, **updates: Any) -> CaseChange:
    """Append one log entry to ``case`` and apply ``updates``: the one place a case changes."""
    entry = LogEntry(case_id=case.case_id, seq=case.log_count + 1, at=at, actor=actor, action=action,
                     from_status=case.status, to_status=to_status or case.status, note=note,
                     data=dict(data or {}))
    updated = replace(case, updated_at=max(case.updated_at, at), log_count=case.log_count + 1, **updates)
    return CaseChange(updated, (entry,))


def chain(first: CaseChange, second: CaseChange) -> CaseChange:
    """Combine two successive changes of one case (``second`` was made from ``first.case``)."""
    return CaseChange(second.case, first.entries + second.entries, first.created or second.created)


def apply_action(case: Case, action: str, *, actor: str, at: float, note: str = "",
                 department: str | None = None, duplicate_of: str | None = None,
                 due_at: float | None = None, extra: dict[str, Any] | None = None) -> CaseChange:
    """Apply a workflow action; raise :class:`InvalidTransition` when it is not allowed.

    ``department`` is required by ``dispatch``; ``duplicate_of`` by ``duplicate``; ``due_at`` is the new
    deadline set by ``dispatch``, ``rework`` and ``reopen`` (computed by the caller from the category's
    time limits, see :mod:`gridsentinel.cases.workflow`); ``extra`` are further field updates.
    """
    if action not in TRANSITIONS:
        raise InvalidTransition(case.case_id, case.status, action,
                                f"unknown action; known: {', '.join(ACTIONS)}")
    sources, target = TRANSITIONS[action]
    if case.status not in sources:
        raise InvalidTransition(case.case_id, case.status, action)
    to_status: Status = target or case.status
    updates: dict[str, Any] = {"status": to_status}
    data: dict[str, Any] = {}
    if action == "dispatch":
        if not department:
            raise InvalidTransition(case.case_id, case.status, action, "a department is required")
        updates.update(department=department, dispatched_at=at, due_at=due_at)
        data["department"] = department
    elif action == "acknowledge":
        updates["acknowledged_at"] = at
    elif action == "rework":
        updates.update(rework_count=case.rework_count + 1, dispatched_at=at, due_at=due_at)
    elif action in ("close", "false_alarm", "duplicate"):
        reason: ClosingReason = "resolved" if action == "close" else action  # type: ignore[assignment]
        if action == "duplicate":
            if not duplicate_of or duplicate_of == case.case_id:
                raise InvalidTransition(case.case_id, case.status, action,
                                        "duplicate_of must name another case")
            updates["duplicate_of"] = duplicate_of
            data["duplicate_of"] = duplicate_of
        updates.update(closed_at=at, closing_reason=reason, due_at=None)
        data["reason"] = reason
    elif action == "reopen":
        updates.update(reopen_count=case.reopen_count + 1, closed_at=None, closing_reason=None,
                       duplicate_of=None, dispatched_at=None, acknowledged_at=None, last_reminded_at=None,
                       due_at=due_at)
    updates.update(extra or {})
    if due_at is not None and action in ("dispatch", "rework", "reopen"):
        data["due_at"] = due_at
    return log(case, at=at, actor=actor, action=action, to_status=to_status, note=note, data=data, **updates)


def new_case_for_test(**overrides: Any) -> Case:
    """A minimal open case, for doctests and tests."""
    base: dict[str, Any] = {
        "case_id": "c1", "grid_code": "320582110152102", "category_type": "event", "category_code": "0103",
        "category_standard": "CJ/T 214-2007", "status": "open", "severity": "warning", "opened_at": 0.0,
        "updated_at": 0.0, "first_seen_at": 0.0, "last_seen_at": 0.0}
    base.update(overrides)
    return Case(**base)
