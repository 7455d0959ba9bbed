"""Workflow actions with their due times, escalation of overdue cases, and reminders.

Pure functions take ``now``; the two ``async`` helpers run them against a case store.

Due times (docs/cases.md): while a case is open its due time is the category's dispatch limit counted
from opening; dispatch (and rework) sets the handling limit for the case's severity counted from that
moment; reopening starts the dispatch limit again. An active case past its due time escalates one
level up the grid hierarchy (to the center named by the cell code's prefix) and gets the category's
escalation limit at the new level; at ``max_level`` it stays overdue and is not escalated again.
"""

from __future__ import annotations

from dataclasses import replace

from gridsentinel.cases.calendar import deadline
from gridsentinel.cases.case import Case, CaseChange, CaseNotFound, apply_action, chain, log
from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.events import CaseEvent, events_for
from gridsentinel.cases.gridcode import LEVELS, center_for, level_above
from gridsentinel.cases.store_protocol import CaseStore, StoreConflict

ESCALATION_ACTOR = "system:escalation"
# Statuses whose due time is watched: after "resolved" the department has done its part.
WATCHED_STATUSES = ("open", "dispatched", "in_progress")


def transition(case: Case, action: str, *, actor: str, at: float, catalog: Catalog, note: str = "",
               department: str | None = None, duplicate_of: str | None = None) -> CaseChange:
    """A workflow action with the due time it implies. Raises InvalidTransition when not allowed."""
    policy = catalog.policy(case.category_key)
    due_at: float | None = None
    extra: dict[str, object] = {}
    if action in ("dispatch", "rework"):
        due_at = deadline(at, policy.handle_limits.for_severity(case.severity), catalog.calendar)
        department = department or case.department
    elif action == "reopen":
        due_at = deadline(at, policy.dispatch_limit, catalog.calendar)
        extra = {"escalation_level": 0, "center": center_for(case.grid_code, catalog.routing.start_level).id}
    return apply_action(case, action, actor=actor, at=at, note=note, department=department,
                        duplicate_of=duplicate_of, due_at=due_at, extra=extra)


def escalate_if_overdue(case: Case, *, now: float, catalog: Catalog) -> CaseChange | None:
    """Escalate an overdue case one level; None when it is not overdue or already at the top."""
    if case.status not in WATCHED_STATUSES or case.due_at is None or case.due_at > now:
        return None
    start, top = catalog.routing.start_level, catalog.routing.max_level
    level = level_above(start, case.escalation_level + 1)
    if LEVELS.index(level) > LEVELS.index(top) or level == level_above(start, case.escalation_level):
        return None
    center = center_for(case.grid_code, level).id
    limit = catalog.policy(case.category_key).escalation_limit
    return log(case, at=now, actor=ESCALATION_ACTOR, action="escalate",
               note=f"overdue since {case.due_at:.0f}; escalated to {center}",
               data={"level": case.escalation_level + 1, "center": center, "center_level": level,
                     "from_center": case.center, "overdue_since": case.due_at},
               escalation_level=case.escalation_level + 1, center=center,
               due_at=deadline(now, limit, catalog.calendar))


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
                          duplicate_of: str | None = None) -> list[CaseEvent]:
    """Load, transition and save one case (what the API's transition route calls).

    Raises CaseNotFound (404), InvalidTransition (409) and StoreConflict (409: changed concurrently, or
    a reopen while the cell already has an active case of the category).
    """
    async with store.transaction() as tx:
        case = await tx.get_case(case_id)
        if case is None:
            raise CaseNotFound(f"no case {case_id}")
        if action == "duplicate" and duplicate_of and await tx.get_case(duplicate_of) is None:
            raise CaseNotFound(f"duplicate_of: no case {duplicate_of}")
        change = transition(case, action, actor=actor, at=now, catalog=catalog, note=note,
                            department=department, duplicate_of=duplicate_of)
        saved = await tx.save(change, case.version)
        events = events_for(replace(change, case=saved), catalog.alert_policy)
        await tx.add_events(events, now)
    return events
