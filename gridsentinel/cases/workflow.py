"""Workflow actions with their due times, escalation of overdue cases, and reminders.

Pure functions take ``now``; the two ``async`` helpers run them against a case store.

Due times (docs/cases.md): while a case is open its due time is the category's dispatch limit counted
from opening; dispatch (and rework) sets the handling limit for the case's severity counted from that
moment; reopening starts the dispatch limit again. An active case past its due time escalates one
level up the grid hierarchy (to the center named by the cell code's prefix) and gets the category's
escalation limit at the new level; at ``max_level`` it stays overdue and is not escalated again.

Hand-over (issue 16): ``request_coordination`` moves the case to the parent center the same way (asked
for, with a reason, by the center holding it), ``hand_back`` moves it one level down toward its home
center with instructions; both give the category's escalation limit from now. A department's
``refuse`` returns the case to its center's queue with the dispatch limit from now; a second refusal of
the case, or any refusal of a case dispatched to several departments, escalates it at once (a chained
``escalate`` entry saying why). Every hand-over entry carries ``from_center`` and ``to_center``
(:mod:`gridsentinel.cases.handovers` counts them per center).

>>> from pathlib import Path
>>> from gridsentinel.cases.categories import load_catalog
>>> catalog = load_catalog(Path(__file__).resolve().parents[2] / "config")
>>> case = new_case_for_test(center="street:320582110", home_center="street:320582110", due_at=1e9)
>>> up = transition(case, "request_coordination", actor="user:li", at=0.0, catalog=catalog,
...                 note="needs the district's excavator")
>>> up.case.center, up.case.escalation_level, up.entries[0].data["from_center"]
('district:320582', 1, 'street:320582110')
>>> back = transition(up.case, "hand_back", actor="user:zhou", at=60.0, catalog=catalog,
...                   note="excavator booked for 14:00; you coordinate on site")
>>> back.case.center, back.case.escalation_level, back.entries[0].data["to_center"]
('street:320582110', 0, 'street:320582110')
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from gridsentinel.cases.authority import Actor, check, visible
from gridsentinel.cases.calendar import deadline
from gridsentinel.cases.case import (  # noqa: F401 (new_case_for_test: the doctest)
    Case,
    CaseChange,
    CaseNotFound,
    InvalidTransition,
    apply_action,
    available_actions,
    chain,
    log,
    new_case_for_test,
)
from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.events import CaseEvent, events_for
from gridsentinel.cases.gridcode import LEVELS, Level, center_for
from gridsentinel.cases.store_protocol import CaseStore, StoreConflict

ESCALATION_ACTOR = "system:escalation"
# Statuses whose due time is watched: after "resolved" the department has done its part.
WATCHED_STATUSES = ("open", "dispatched", "in_progress")


def center_at(case: Case, steps: int, catalog: Catalog) -> tuple[str, Level] | None:
    """The center ``steps`` levels above the case's start level (routing ``start_level``), and its level;
    None below the start level or above ``max_level``.

    >>> from pathlib import Path
    >>> from gridsentinel.cases.categories import load_catalog
    >>> catalog = load_catalog(Path(__file__).resolve().parents[2] / "config")
    >>> [center_at(new_case_for_test(), n, catalog) for n in (0, 2, 3)]
    [('street:320582110', 'street'), ('city:3205', 'city'), None]
    """
    start, top = LEVELS.index(catalog.routing.start_level), LEVELS.index(catalog.routing.max_level)
    index = start + steps
    if index < start or index > top:
        return None
    level = LEVELS[index]
    return center_for(case.grid_code, level).id, level


def transition(case: Case, action: str, *, actor: str, at: float, catalog: Catalog, note: str = "",
               department: str | None = None, duplicate_of: str | None = None,
               assisting_departments: Sequence[str] = ()) -> CaseChange:
    """A workflow action with the due time (and, for hand-overs, the center) it implies.

    Raises InvalidTransition when not allowed; a refusal that calls for it is followed by an ``escalate``.
    """
    policy = catalog.policy(case.category_key)
    due_at: float | None = None
    extra: dict[str, object] = {}
    if action == "dispatch":
        known = catalog.routing.departments
        unknown = [d for d in [department, *assisting_departments] if d is not None and d not in known]
        if unknown:
            raise InvalidTransition(case.case_id, case.status, action,
                                    f"unknown department {', '.join(unknown)}; known: {', '.join(known)}",
                                    allowed=available_actions(case))
    if action in ("dispatch", "rework"):
        due_at = deadline(at, policy.handle_limits.for_severity(case.severity), catalog.calendar)
        department = department or case.department
    elif action == "reopen":
        due_at = deadline(at, policy.dispatch_limit, catalog.calendar)
        home = center_for(case.grid_code, catalog.routing.start_level).id
        extra = {"escalation_level": 0, "center": home, "home_center": home}
    elif action == "refuse":
        due_at = deadline(at, policy.dispatch_limit, catalog.calendar)
    elif action in ("request_coordination", "hand_back") and case.status in ("open", "dispatched",
                                                                            "in_progress"):
        steps = case.escalation_level + (1 if action == "request_coordination" else -1)
        target = center_at(case, steps, catalog)
        if target is None and action == "request_coordination":
            raise InvalidTransition(case.case_id, case.status, action,
                                    f"{case.center} is the top level ({catalog.routing.max_level}): "
                                    "there is no center above to ask", allowed=available_actions(case))
        if target is not None:
            due_at = deadline(at, policy.escalation_limit, catalog.calendar)
            extra = {"center": target[0], "escalation_level": steps}
    change = apply_action(case, action, actor=actor, at=at, note=note, department=department,
                          duplicate_of=duplicate_of, due_at=due_at, extra=extra,
                          assisting_departments=assisting_departments)
    if action == "refuse":
        up = _escalate_after_refusal(case, change, catalog=catalog, at=at)
        if up is not None:
            change = chain(change, up)
    return change


def _escalate_after_refusal(before: Case, refusal: CaseChange, *, catalog: Catalog,
                            at: float) -> CaseChange | None:
    """The automatic escalation after a refusal: of a case handled by several departments, or the second
    (or later) refusal of the same case. None when neither applies, or at ``max_level``."""
    refused = refusal.entries[0].data["department"]
    if before.assisting_departments:
        jointly = ", ".join([str(before.department), *before.assisting_departments])
        why, reason = f"{refused} refused a case handled jointly by {jointly}", "multi_department_refusal"
    elif refusal.case.refusal_count >= 2:
        why, reason = f"refused {refusal.case.refusal_count} times, last by {refused}", "repeated_refusal"
    else:
        return None
    return escalate(refusal.case, now=at, catalog=catalog, why=why, data={"reason": reason})


def escalate(case: Case, *, now: float, catalog: Catalog, why: str,
             data: dict[str, object] | None = None) -> CaseChange | None:
    """Move ``case`` one level up, with the category's escalation limit at the new level; None at
    ``max_level``. ``why`` starts the log note."""
    target = center_at(case, case.escalation_level + 1, catalog)
    if target is None:
        return None
    center, level = target
    limit = catalog.policy(case.category_key).escalation_limit
    return log(case, at=now, actor=ESCALATION_ACTOR, action="escalate", note=f"{why}; escalated to {center}",
               data={"level": case.escalation_level + 1, "center": center, "center_level": level,
                     "from_center": case.center, "to_center": center, **(data or {})},
               escalation_level=case.escalation_level + 1, center=center,
               due_at=deadline(now, limit, catalog.calendar))


def escalate_if_overdue(case: Case, *, now: float, catalog: Catalog) -> CaseChange | None:
    """Escalate an overdue case one level; None when it is not overdue or already at the top."""
    if case.status not in WATCHED_STATUSES or case.due_at is None or case.due_at > now:
        return None
    return escalate(case, now=now, catalog=catalog, why=f"overdue since {case.due_at:.0f}",
                    data={"overdue_since": case.due_at, "reason": "overdue"})


def remind_if_due(case: Case, *, now: float, catalog: Catalog) -> CaseChange | None:
    """Remind about an open, unacknowledged case of a reminded severity every reminder interval."""
    policy = catalog.alert_policy
    if case.status != "open" or case.acknowledged_at is not None or case.severity not in \
            policy.reminder_severities:
        return None
    since = case.last_reminded_at if case.last_reminded_at is not None else case.opened_at
    if now - since < policy.reminder_interval_minutes * 60:
        return None
    return log(case, at=now, actor=ESCALATION_ACTOR, action="remind",
               note="critical case still open and unacknowledged", last_reminded_at=now,
               data={"open_for_s": now - case.opened_at})


def tick(case: Case, *, now: float, catalog: Catalog) -> CaseChange | None:
    """Everything time does to one case at ``now``: escalation, then a reminder."""
    change = escalate_if_overdue(case, now=now, catalog=catalog)
    reminder = remind_if_due(change.case if change else case, now=now, catalog=catalog)
    if change and reminder:
        return chain(change, reminder)
    return change or reminder


async def sweep(store: CaseStore, catalog: Catalog, *, now: float) -> list[CaseEvent]:
    """Run :func:`tick` over the cases that need attention; one transaction per case.

    A case changed concurrently (StoreConflict) is skipped: the next sweep sees it again.
    """
    events: list[CaseEvent] = []
    async with store.transaction() as tx:
        candidates = await tx.attention_cases(now, catalog.alert_policy.reminder_severities)
    for candidate in candidates:
        try:
            async with store.transaction() as tx:
                case = await tx.get_case(candidate.case_id)
                change = tick(case, now=now, catalog=catalog) if case else None
                if case is None or change is None:
                    continue
                saved = await tx.save(change, case.version)
                changed = events_for(replace(change, case=saved), catalog.alert_policy)
                await tx.add_events(changed, now)
            events.extend(changed)
        except StoreConflict:
            continue
    return events


async def transition_case(store: CaseStore, catalog: Catalog, case_id: str, action: str, *, actor: str,
                          now: float, note: str = "", department: str | None = None,
                          duplicate_of: str | None = None, assisting_departments: Sequence[str] = (),
                          who: Actor | None = None) -> list[CaseEvent]:
    """Load, transition and save one case (what the API's transition route calls).

    With ``who`` (the signed-in user; ``actor`` is what the log records) the case must be visible to
    them and :func:`gridsentinel.cases.authority.check` must allow the action, on the case as read in
    this transaction. Raises CaseNotFound (404; also for a case ``who`` cannot see), NotAllowed (403),
    InvalidTransition (409) and StoreConflict (409: changed concurrently, or a reopen while the cell
    already has an active case of the category).
    """
    async with store.transaction() as tx:
        case = await tx.get_case(case_id)
        if case is None or (who is not None and not visible(who, case)):
            raise CaseNotFound(f"no case {case_id}")
        if who is not None:
            if action == "refuse" and department is None and who.role == "department":
                department = who.department  # department staff refuse for their own department
            check(who, case, action, department=department, top_level=catalog.routing.max_level)
        if action == "duplicate" and duplicate_of and await tx.get_case(duplicate_of) is None:
            raise CaseNotFound(f"duplicate_of: no case {duplicate_of}")
        change = transition(case, action, actor=actor, at=now, catalog=catalog, note=note,
                            department=department, duplicate_of=duplicate_of,
                            assisting_departments=assisting_departments)
        saved = await tx.save(change, case.version)
        events = events_for(replace(change, case=saved), catalog.alert_policy)
        await tx.add_events(events, now)
    return events
