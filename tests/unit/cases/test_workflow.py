from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from gridsentinel.cases.case import CaseNotFound, InvalidTransition, new_case_for_test
from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.cases.store_protocol import StoreConflict
from gridsentinel.cases.workflow import (
    escalate_if_overdue,
    remind_if_due,
    sweep,
    tick,
    transition,
    transition_case,
)

from .conftest import MONDAY_10H, detection

pytestmark = pytest.mark.unit
HOUR = 3600.0


def ponding_case(**kw):
    base = {"category_code": "L001", "category_standard": "GridSentinel local 2025.1", "severity": "warning",
            "opened_at": MONDAY_10H, "updated_at": MONDAY_10H, "center": "street:320582110",
            "due_at": MONDAY_10H + 900}
    base.update(kw)
    return new_case_for_test(**base)


def test_dispatch_sets_the_handling_due_time_from_severity(catalog: Catalog) -> None:
    case = transition(ponding_case(department="drainage"), "dispatch", actor="u", at=MONDAY_10H,
                      catalog=catalog)
    assert case.case.due_at == MONDAY_10H + 4 * HOUR and case.case.department == "drainage"
    garbage = new_case_for_test(category_code="0103", severity="warning", department="sanitation")
    # Friday 17:00 + 4 working hours = Monday 12:00
    friday_17h = MONDAY_10H - 3 * 24 * HOUR + 7 * HOUR
    due = transition(garbage, "dispatch", actor="u", at=friday_17h, catalog=catalog).case.due_at
    assert due == MONDAY_10H + 2 * HOUR


def test_overdue_case_escalates_to_the_parent_center_then_stops_at_the_top(catalog: Catalog) -> None:
    case = ponding_case()
    assert escalate_if_overdue(case, now=MONDAY_10H + 899, catalog=catalog) is None
    centers = []
    now = MONDAY_10H + 900
    for _ in range(4):
        change = escalate_if_overdue(case, now=now, catalog=catalog)
        if change is None:
            break
        case = change.case
        centers.append((case.escalation_level, case.center, change.entries[0].action))
        assert case.due_at == now + 30 * 60  # ponding: 30 minutes per escalation level
        now = case.due_at
    assert centers == [(1, "district:320582", "escalate"), (2, "city:3205", "escalate")]


def test_resolved_cases_do_not_escalate(catalog: Catalog) -> None:
    resolved = ponding_case(status="resolved")
    assert escalate_if_overdue(resolved, now=MONDAY_10H + 10 * HOUR, catalog=catalog) is None


def test_reminders_for_unacknowledged_critical_cases(catalog: Catalog) -> None:
    case = ponding_case(severity="critical", due_at=None)
    assert remind_if_due(case, now=MONDAY_10H + 14 * 60, catalog=catalog) is None
    first = remind_if_due(case, now=MONDAY_10H + 15 * 60, catalog=catalog)
    assert first is not None and first.entries[0].action == "remind"
    assert remind_if_due(first.case, now=MONDAY_10H + 20 * 60, catalog=catalog) is None
    assert remind_if_due(first.case, now=MONDAY_10H + 30 * 60, catalog=catalog) is not None
    acked = transition(case, "acknowledge", actor="u", at=MONDAY_10H + 60, catalog=catalog).case
    assert remind_if_due(acked, now=MONDAY_10H + HOUR, catalog=catalog) is None
    assert remind_if_due(replace(case, severity="alarm"), now=MONDAY_10H + HOUR, catalog=catalog) is None


def test_tick_combines_escalation_and_reminder(catalog: Catalog) -> None:
    change = tick(ponding_case(severity="critical"), now=MONDAY_10H + HOUR, catalog=catalog)
    assert change is not None and [e.action for e in change.entries] == ["escalate", "remind"]
    assert [e.seq for e in change.entries] == [1, 2]


def test_sweep_escalates_through_the_store_and_notifies(catalog: Catalog) -> None:
    async def scenario():
        store = MemoryCaseStore()
        await apply_detection(detection("d1", kind="ponding", severity="warning"), store, catalog, {},
                              now=MONDAY_10H)
        quiet = await sweep(store, catalog, now=MONDAY_10H + 60)
        loud = await sweep(store, catalog, now=MONDAY_10H + 16 * 60)
        again = await sweep(store, catalog, now=MONDAY_10H + 17 * 60)
        return store, quiet, loud, again

    store, quiet, loud, again = asyncio.run(scenario())
    assert quiet == [] and again == []
    assert [(e.type, e.notify, e.data["center"]) for e in loud] == [("escalate", True, "district:320582")]
    assert store.all_cases()[0].escalation_level == 1


def test_transition_case_errors(catalog: Catalog) -> None:
    async def scenario():
        store = MemoryCaseStore()
        await apply_detection(detection("d1"), store, catalog, {}, now=MONDAY_10H)
        case = store.all_cases()[0]
        with pytest.raises(CaseNotFound):
            await transition_case(store, catalog, "nope", "dispatch", actor="u", now=MONDAY_10H)
        with pytest.raises(InvalidTransition, match="allowed: dispatch, acknowledge, false_alarm, duplicate"):
            await transition_case(store, catalog, case.case_id, "verify", actor="u", now=MONDAY_10H)
        with pytest.raises(CaseNotFound, match="duplicate_of"):
            await transition_case(store, catalog, case.case_id, "duplicate", actor="u", now=MONDAY_10H,
                                  duplicate_of="missing")
        for who in ("u", "v"):  # a sensor case: the false alarm takes two users
            await transition_case(store, catalog, case.case_id, "false_alarm", actor=who, now=MONDAY_10H + 1)
        # A new case opened in the cell meanwhile: reopening the old one would make two active cases.
        await apply_detection(detection("d2", observed_at=MONDAY_10H + 100 * HOUR), store, catalog, {},
                              now=MONDAY_10H + 100 * HOUR)
        with pytest.raises(StoreConflict):
            await transition_case(store, catalog, case.case_id, "reopen", actor="u",
                                  now=MONDAY_10H + 101 * HOUR)
        return store, case.case_id

    store, case_id = asyncio.run(scenario())
    log = asyncio.run(store.case_log(case_id))
    assert [e.action for e in log] == ["open", "request_false_alarm", "false_alarm"]
