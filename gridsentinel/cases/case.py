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

Issue 16 adds hand-over and refusal (docs/cases.md): ``refuse`` (the lead department returns the case
to its center's queue: dispatched/in_progress → open; an assisting department only leaves the joint
handling), ``request_coordination`` and ``hand_back`` (the case moves one center up or down; the
center changes, the status does not: :mod:`gridsentinel.cases.workflow` computes where), and four eyes
on closing machine-found cases: ``false_alarm`` on a case with sensor or camera detections first records
a request (``request_false_alarm``, :attr:`Case.pending_action`); a second, different user confirms it
with ``false_alarm`` or clears it with ``reject_false_alarm``. Who may do what is
:mod:`gridsentinel.cases.authority`; the rule that the second user is a different one is kept here.

>>> machine = new_case_for_test(sources={"sensor": 2})
>>> asked = apply_action(machine, "false_alarm", actor="user:li", at=10.0, note="rain gauge test")
>>> asked.case.status, asked.entries[0].action, asked.case.pending_action["by"]
('open', 'request_false_alarm', 'user:li')
>>> apply_action(asked.case, "false_alarm", actor="user:li", at=11.0)  # doctest: +ELLIPSIS
Traceback (most recent call last):
...
gridsentinel.cases.case.NotAllowed: case c1: user:li requested this false alarm; a second user must confirm it
>>> done = apply_action(asked.case, "false_alarm", actor="user:wang", at=12.0)
>>> done.case.status, done.case.pending_action, done.entries[0].data["requested_by"]
('closed', None, 'user:li')

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

import copy
import operator
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from gridsentinel.core.records import plain_fields
from gridsentinel.errors import GridSentinelError

Status = Literal["open", "dispatched", "in_progress", "resolved", "verified", "closed"]
STATUSES: tuple[Status, ...] = ("open", "dispatched", "in_progress", "resolved", "verified", "closed")
# Not closed: the store keeps at most one of these per (grid cell, category).
ACTIVE_STATUSES: tuple[Status, ...] = STATUSES[:-1]

ClosingReason = Literal["resolved", "false_alarm", "duplicate"]
CLOSING_REASONS: tuple[ClosingReason, ...] = ("resolved", "false_alarm", "duplicate")

Action = Literal["dispatch", "acknowledge", "start", "resolve", "verify", "rework", "close",
                 "false_alarm", "duplicate", "reopen", "refuse", "request_coordination", "hand_back",
                 "reject_false_alarm"]
_HANDLING: frozenset[str] = frozenset({"open", "dispatched", "in_progress"})

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
    # On a machine-found case the first false_alarm only records a request (status unchanged).
    "false_alarm": (_HANDLING, "closed"),
    "duplicate": (_HANDLING, "closed"),
    "reopen": (frozenset({"closed"}), "open"),
    # The lead department returns the case to its center (an assisting one only leaves: status unchanged).
    "refuse": (frozenset({"dispatched", "in_progress"}), "open"),
    # Hand-over between centers: the responsible center changes, the status does not.
    "request_coordination": (_HANDLING, None),
    "hand_back": (_HANDLING, None),
    "reject_false_alarm": (_HANDLING, None),
}
ACTIONS: tuple[str, ...] = tuple(TRANSITIONS)
# Actions whose note is required: the reason, or the instructions of a hand-back.
NOTE_REQUIRED: frozenset[str] = frozenset({"refuse", "request_coordination", "hand_back"})
# Sources whose detections are machine-found: closing such a case as a false alarm takes two users.
MACHINE_SOURCES: frozenset[str] = frozenset({"sensor", "camera"})


def allowed_actions(status: str) -> list[str]:
    """The actions allowed from ``status``, in workflow order.

    >>> allowed_actions("resolved")
    ['verify', 'rework']
    """
    return [a for a, (sources, _) in TRANSITIONS.items() if status in sources]


def needs_four_eyes(case: Case) -> bool:
    """Whether closing ``case`` as a false alarm takes a second user: any detection from a sensor or camera.

    >>> needs_four_eyes(new_case_for_test(sources={"citizen": 3})), needs_four_eyes(
    ...     new_case_for_test(sources={"citizen": 1, "camera": 1}))
    (False, True)
    """
    return any(n > 0 and source in MACHINE_SOURCES for source, n in case.sources.items())


def available_actions(case: Case) -> list[str]:
    """The actions that make sense for ``case`` now: those its status allows, less ``reject_false_alarm``
    without a pending request and ``hand_back`` at its home center.

    >>> available_actions(new_case_for_test())
    ['dispatch', 'acknowledge', 'false_alarm', 'duplicate', 'request_coordination']
    """
    hidden = set()
    if case.pending_action is None:
        hidden.add("reject_false_alarm")
    if case.escalation_level <= 0:
        hidden.add("hand_back")
    return [a for a in allowed_actions(case.status) if a not in hidden]


class CaseError(GridSentinelError):
    """Root of case errors."""


class InvalidTransition(CaseError):
    """An action is not allowed from the case's current state (the API answers 409)."""

    def __init__(self, case_id: str, status: str, action: str, detail: str = "",
                 allowed: list[str] | None = None) -> None:
        self.case_id = case_id
        self.status = status
        self.action = action
        self.allowed = allowed if allowed is not None else allowed_actions(status)
        listed = ", ".join(self.allowed) or "none"
        msg = f"case {case_id} is {status}: cannot {action}; allowed: {listed}"
        super().__init__(f"{msg} ({detail})" if detail else msg)


class CaseNotFound(CaseError):
    """No case with that id (the API answers 404)."""


class NotAllowed(CaseError):
    """This user may not take this action on this case (the API answers 403 with code ``not_allowed``)."""

    def __init__(self, case_id: str, action: str, reason: str) -> None:
        self.case_id = case_id
        self.action = action
        self.reason = reason
        super().__init__(f"case {case_id}: {reason}")


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
        return plain_fields(self)


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
    headlines: dict[str, str] = field(default_factory=dict)  # the headline in other languages: {"zh-CN": ...}
    version: int = 0  # bumped by the store on every write; an optimistic lock
    log_count: int = 0  # number of log entries written so far

    @property
    def category_key(self) -> str:
        """The category's unique key, e.g. ``component:0103`` (component and event codes overlap)."""
        return f"{self.category_type}:{self.category_code}"

    @property
    def is_active(self) -> bool:
        return self.status != "closed"

    def row(self) -> dict[str, Any]:
        """The case's fields as a new dict, as ``asdict`` gives it but without its deep copy of every value
        (the cases stage's hot path: a snapshot per event, a row per write): only the containers are
        copied, and the tuples are lists.

        >>> from dataclasses import asdict
        >>> c = Case("c1", "320582110152101", "component", "0103", "GB/T", "open", "alarm", 1.0, 1.0, 1.0, 1.0,
        ...          sources={"sensor": 1}, kinds=("drain_overflow",), pending_action={"by": {"u": 1}})
        >>> r = c.row(); r == {**asdict(c), "kinds": ["drain_overflow"], "assisting_departments": []}
        True
        >>> r["sources"] is c.sources, r["pending_action"]["by"] is c.pending_action["by"]
        (False, False)
        """
        data = {name: getattr(self, name) for name in _CASE_FIELDS}
        data["sources"] = dict(self.sources)
        data["kinds"] = list(self.kinds)
        data["assisting_departments"] = list(self.assisting_departments)
        data["headlines"] = dict(self.headlines)
        if self.pending_action is not None:
            data["pending_action"] = copy.deepcopy(self.pending_action)
        return data

    def to_dict(self) -> dict[str, Any]:
        data = self.row()
        data["category_key"] = self.category_key
        return data


_CASE_FIELDS = tuple(f.name for f in fields(Case))
_CASE_VALUES = operator.attrgetter(*_CASE_FIELDS)  # all field values in one call, in field order
_CASE_INDEX = {name: i for i, name in enumerate(_CASE_FIELDS)}
_CASE_SETTERS = tuple(Case.__dict__[name].__set__ for name in _CASE_FIELDS)  # the slots' own setters


def evolve(case: Case, **changes: Any) -> Case:
    """``dataclasses.replace(case, **changes)`` in ~40 % of its time (3.4 against 8.3 µs: it walks every field's
    metadata and calls ``__init__``, which sets 38 fields through the frozen class's checks). A case changes
    two or three times per detection on the cases stage's hot path (issue 15). Both give the same object
    as long as ``Case`` has no ``__post_init__`` (``evolve`` does not run ``__init__``):

    >>> hasattr(Case, "__post_init__")
    False
    >>> from dataclasses import replace
    >>> c = new_case_for_test()
    >>> evolve(c, version=3, severity="critical") == replace(c, version=3, severity="critical")
    True
    >>> evolve(c, colour="red")
    Traceback (most recent call last):
    ...
    TypeError: Case has no field colour
    """
    values = list(_CASE_VALUES(case))
    for name, value in changes.items():
        i = _CASE_INDEX.get(name)
        if i is None:
            raise TypeError(f"Case has no field {name}")
        values[i] = value
    new = object.__new__(Case)
    for setter, value in zip(_CASE_SETTERS, values, strict=True):
        setter(new, value)
    return new


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
    updated = evolve(case, updated_at=max(case.updated_at, at), log_count=case.log_count + 1, **updates)
    return CaseChange(updated, (entry,))


def chain(first: CaseChange, second: CaseChange) -> CaseChange:
    """Combine two successive changes of one case (``second`` was made from ``first.case``)."""
    return CaseChange(second.case, first.entries + second.entries, first.created or second.created)


def apply_action(case: Case, action: str, *, actor: str, at: float, note: str = "",
                 department: str | None = None, duplicate_of: str | None = None,
                 due_at: float | None = None, extra: dict[str, Any] | None = None,
                 assisting_departments: Sequence[str] = ()) -> CaseChange:
    """Apply a workflow action; raise :class:`InvalidTransition` when it is not allowed.

    ``department`` is required by ``dispatch`` (the lead department; ``assisting_departments`` join it)
    and names the refusing department for ``refuse`` (default: the lead); ``duplicate_of`` is required by
    ``duplicate``; ``due_at`` is the new deadline set by ``dispatch``, ``rework``, ``reopen`` and
    ``refuse`` (computed by the caller from the category's time limits, see
    :mod:`gridsentinel.cases.workflow`); ``extra`` are further field updates (the hand-over actions get
    their new center there). :data:`NOTE_REQUIRED` actions need a ``note``. A second ``false_alarm``
    by the user who requested it raises :class:`NotAllowed`.
    """
    if action not in TRANSITIONS:
        raise InvalidTransition(case.case_id, case.status, action,
                                f"unknown action; known: {', '.join(ACTIONS)}", allowed=available_actions(case))
    sources, target = TRANSITIONS[action]
    if case.status not in sources:
        raise InvalidTransition(case.case_id, case.status, action, allowed=available_actions(case))

    def refuse_it(detail: str) -> InvalidTransition:
        return InvalidTransition(case.case_id, case.status, action, detail, allowed=available_actions(case))

    if action in NOTE_REQUIRED and not note.strip():
        raise refuse_it("a note is required: " + ("the instructions" if action == "hand_back" else "the reason"))
    to_status: Status = target or case.status
    updates: dict[str, Any] = {"status": to_status}
    data: dict[str, Any] = {}
    entry_action = action
    if action == "dispatch":
        if not department:
            raise refuse_it("a department is required")
        assisting = tuple(dict.fromkeys(d for d in assisting_departments if d != department))
        updates.update(department=department, assisting_departments=assisting, dispatched_at=at, due_at=due_at)
        data["department"] = department
        if assisting:
            data["assisting_departments"] = list(assisting)
    elif action == "acknowledge":
        updates["acknowledged_at"] = at
    elif action == "rework":
        updates.update(rework_count=case.rework_count + 1, dispatched_at=at, due_at=due_at)
    elif action == "refuse":
        refusing = department or case.department
        if refusing is None or (refusing != case.department and refusing not in case.assisting_departments):
            raise refuse_it(f"{refusing} is neither the lead department ({case.department}) nor assisting")
        data.update(department=refusing, center=case.center, to_center=case.center,
                    refusal=case.refusal_count + 1)
        if refusing == case.department:  # the lead returns the case to its center's queue
            data.update(role="lead", assisting_departments=list(case.assisting_departments), due_at=due_at)
            updates.update(department=None, assisting_departments=(), dispatched_at=None, due_at=due_at,
                           refusal_count=case.refusal_count + 1, refused_at=at)
        else:  # an assisting department leaves the joint handling; the lead keeps the case
            to_status = case.status
            data["role"] = "assisting"
            updates.update(status=case.status, refusal_count=case.refusal_count + 1, refused_at=at,
                           assisting_departments=tuple(d for d in case.assisting_departments if d != refusing))
    elif action == "false_alarm" and needs_four_eyes(case):
        pending = case.pending_action
        if pending is None:  # the first of four eyes: a request, nothing closes
            to_status = case.status
            entry_action = "request_false_alarm"
            updates = {"pending_action": {"action": "false_alarm", "by": actor, "at": at, "note": note}}
            data["waiting_for"] = "a second user to confirm (false_alarm) or reject (reject_false_alarm)"
        elif pending.get("by") == actor:
            raise NotAllowed(case.case_id, action, f"{actor} requested this false alarm; "
                                                   "a second user must confirm it")
        else:
            updates["pending_action"] = None
            data.update(requested_by=pending.get("by"), requested_at=pending.get("at"),
                        request_note=pending.get("note", ""), confirmed_by=actor)
    elif action == "reject_false_alarm":
        pending = case.pending_action
        if pending is None:
            raise refuse_it("no false alarm request is pending")
        updates["pending_action"] = None
        data.update(requested_by=pending.get("by"), requested_at=pending.get("at"),
                    request_note=pending.get("note", ""), rejected_by=actor)
    elif action == "hand_back" and case.escalation_level <= 0:
        raise refuse_it(f"the case is at its home center {case.home_center or case.center}")
    elif action == "reopen":
        updates.update(reopen_count=case.reopen_count + 1, closed_at=None, closing_reason=None,
                       duplicate_of=None, dispatched_at=None, acknowledged_at=None, last_reminded_at=None,
                       refused_at=None, pending_action=None, due_at=due_at)
    if to_status == "closed" and entry_action != "request_false_alarm":
        reason: ClosingReason = "resolved" if action == "close" else action  # type: ignore[assignment]
        if action == "duplicate":
            if not duplicate_of or duplicate_of == case.case_id:
                raise refuse_it("duplicate_of must name another case")
            updates["duplicate_of"] = duplicate_of
            data["duplicate_of"] = duplicate_of
        updates.update(closed_at=at, closing_reason=reason, due_at=None)
        data["reason"] = reason
    if (to_status not in _HANDLING and case.pending_action is not None
            and "pending_action" not in updates):
        # Resolved or closed: a false-alarm request no longer applies (a handled problem was real).
        updates["pending_action"] = None
        data["dropped_request"] = dict(case.pending_action)
    if action in ("request_coordination", "hand_back") and due_at is not None:
        updates["due_at"] = due_at  # the escalation limit at the new center, from now
    updates.update(extra or {})
    if action in ("request_coordination", "hand_back"):
        data.update(from_center=case.center, to_center=updates.get("center", case.center),
                    center=updates.get("center", case.center), level=updates.get("escalation_level"))
    if due_at is not None and action in ("dispatch", "rework", "reopen", "request_coordination", "hand_back"):
        data["due_at"] = due_at
    return log(case, at=at, actor=actor, action=entry_action, to_status=to_status, note=note, data=data,
               **updates)


def new_case_for_test(**overrides: Any) -> Case:
    """A minimal open case, for doctests and tests."""
    base: dict[str, Any] = {
        "case_id": "c1", "grid_code": "320582110152102", "category_type": "event", "category_code": "0103",
        "category_standard": "CJ/T 214-2007", "status": "open", "severity": "warning", "opened_at": 0.0,
        "updated_at": 0.0, "first_seen_at": 0.0, "last_seen_at": 0.0}
    base.update(overrides)
    return Case(**base)
