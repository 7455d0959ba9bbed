"""Issue 16's workflow: hand-over between centers, department refusals, four eyes on false alarms."""

from __future__ import annotations

import asyncio

import pytest

from gridsentinel.cases.case import Case, InvalidTransition, NotAllowed, new_case_for_test
from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.events import events_for
from gridsentinel.cases.handovers import count_handovers
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.cases.workflow import escalate_if_overdue, transition, transition_case

from .conftest import MONDAY_10H, detection

pytestmark = pytest.mark.unit
HOUR = 3600.0
STREET, DISTRICT, CITY = "street:320582110", "district:320582", "city:3205"


def ponding(**kw: object) -> Case:
    base: dict[str, object] = {
        "category_code": "L001", "category_standard": "GridSentinel local 2025.1", "severity": "warning",
        "opened_at": MONDAY_10H, "updated_at": MONDAY_10H, "center": STREET, "home_center": STREET,
        "due_at": MONDAY_10H + 900, "sources": {"citizen": 1}}
    base.update(kw)
    return new_case_for_test(**base)


def dispatched(catalog: Catalog, *assisting: str, **kw: object) -> Case:
    return transition(ponding(**kw), "dispatch", actor="user:li", at=MONDAY_10H, catalog=catalog,
                      department="drainage", assisting_departments=assisting).case


def test_request_coordination_moves_the_case_up_with_the_escalation_limit(catalog: Catalog) -> None:
    change = transition(ponding(), "request_coordination", actor="user:li", at=MONDAY_10H + 60,
                        catalog=catalog, note="needs the district's pump truck")
    case, entry = change.case, change.entries[0]
    assert (case.center, case.escalation_level, case.status) == (DISTRICT, 1, "open")
    assert case.due_at == MONDAY_10H + 60 + 30 * 60  # ponding: 30 minutes per escalation level
    assert entry.action == "request_coordination" and entry.note == "needs the district's pump truck"
    assert (entry.data["from_center"], entry.data["to_center"]) == (STREET, DISTRICT)
    assert case.home_center == STREET


def test_request_coordination_needs_a_reason_and_a_center_above(catalog: Catalog) -> None:
    with pytest.raises(InvalidTransition, match="a note is required: the reason"):
        transition(ponding(), "request_coordination", actor="user:li", at=MONDAY_10H, catalog=catalog)
    top = ponding(center=CITY, escalation_level=2)
    with pytest.raises(InvalidTransition, match="top level"):
        transition(top, "request_coordination", actor="user:li", at=MONDAY_10H, catalog=catalog, note="help")


def test_hand_back_returns_one_level_toward_home_and_does_not_re_escalate_at_once(catalog: Catalog) -> None:
    case = ponding(due_at=MONDAY_10H)
    now = MONDAY_10H
    for _ in range(2):  # overdue twice: street -> district -> city
        change = escalate_if_overdue(case, now=now, catalog=catalog)
        assert change is not None
        case, now = change.case, change.case.due_at or now
    assert (case.center, case.escalation_level) == (CITY, 2)
    back = transition(case, "hand_back", actor="user:chen", at=now, catalog=catalog,
                      note="district: send the pump truck")
    assert (back.case.center, back.case.escalation_level) == (DISTRICT, 1)
    assert back.entries[0].data["from_center"] == CITY and back.entries[0].data["to_center"] == DISTRICT
    assert back.case.due_at == now + 30 * 60
    assert escalate_if_overdue(back.case, now=now + 60, catalog=catalog) is None
    home = transition(back.case, "hand_back", actor="user:zhou", at=now + 60, catalog=catalog,
                      note="street: coordinate on site").case
    assert (home.center, home.escalation_level) == (STREET, 0)
    with pytest.raises(InvalidTransition, match="home center"):
        transition(home, "hand_back", actor="user:zhou", at=now + 90, catalog=catalog, note="again")
    with pytest.raises(InvalidTransition, match="instructions"):
        transition(back.case, "hand_back", actor="user:zhou", at=now + 60, catalog=catalog)


def test_dispatch_takes_assisting_departments_which_must_be_known(catalog: Catalog) -> None:
    case = dispatched(catalog, "road_maintenance", "drainage", "road_maintenance")
    assert case.department == "drainage" and case.assisting_departments == ("road_maintenance",)
    with pytest.raises(InvalidTransition, match="unknown department nope"):
        transition(ponding(), "dispatch", actor="u", at=MONDAY_10H, catalog=catalog, department="drainage",
                   assisting_departments=["nope"])


def test_a_first_refusal_returns_the_case_to_its_center(catalog: Catalog) -> None:
    case = dispatched(catalog)
    change = transition(case, "refuse", actor="user:drainage-wang", at=MONDAY_10H + HOUR, catalog=catalog,
                        note="not ours: a gas company pipe")
    refused = change.case
    assert [e.action for e in change.entries] == ["refuse"]
    assert (refused.status, refused.department, refused.center) == ("open", None, STREET)
    assert (refused.refusal_count, refused.refused_at) == (1, MONDAY_10H + HOUR)
    assert refused.due_at == MONDAY_10H + HOUR + 15 * 60  # ponding's dispatch limit, from now
    assert change.entries[0].data["department"] == "drainage"
    with pytest.raises(InvalidTransition, match="reason"):
        transition(case, "refuse", actor="u", at=MONDAY_10H, catalog=catalog)


def test_the_second_refusal_escalates_the_case(catalog: Catalog) -> None:
    first = transition(dispatched(catalog), "refuse", actor="u", at=MONDAY_10H + 60, catalog=catalog,
                       note="not ours").case
    again = transition(first, "dispatch", actor="user:li", at=MONDAY_10H + 120, catalog=catalog,
                       department="sanitation").case
    change = transition(again, "refuse", actor="u", at=MONDAY_10H + 180, catalog=catalog, note="not ours either")
    assert [e.action for e in change.entries] == ["refuse", "escalate"]
    up = change.entries[1]
    assert up.actor == "system:escalation" and up.data["reason"] == "repeated_refusal"
    assert "refused 2 times, last by sanitation" in up.note
    assert (up.data["from_center"], up.data["to_center"]) == (STREET, DISTRICT)
    assert (change.case.status, change.case.center, change.case.escalation_level) == ("open", DISTRICT, 1)
    assert change.case.due_at == MONDAY_10H + 180 + 30 * 60


def test_any_refusal_of_a_joint_case_escalates_it(catalog: Catalog) -> None:
    joint = dispatched(catalog, "road_maintenance")
    lead = transition(joint, "refuse", actor="u", at=MONDAY_10H + 60, catalog=catalog, note="road first")
    assert [e.action for e in lead.entries] == ["refuse", "escalate"]
    assert lead.entries[1].data["reason"] == "multi_department_refusal"
    assert (lead.case.status, lead.case.department, lead.case.assisting_departments) == ("open", None, ())
    # An assisting department leaves the joint handling: the lead keeps the case, it still escalates.
    helper = transition(joint, "refuse", actor="user:road-he", at=MONDAY_10H + 60, catalog=catalog,
                        department="road_maintenance", note="no crew this week")
    assert [e.action for e in helper.entries] == ["refuse", "escalate"]
    assert helper.entries[0].data["role"] == "assisting"
    assert (helper.case.status, helper.case.department, helper.case.assisting_departments) == \
        ("dispatched", "drainage", ())
    assert helper.case.center == DISTRICT and helper.case.refusal_count == 1
    with pytest.raises(InvalidTransition, match="neither the lead"):
        transition(joint, "refuse", actor="u", at=MONDAY_10H, catalog=catalog, department="sanitation",
                   note="?")


def test_a_refusal_at_the_top_level_returns_the_case_without_escalating(catalog: Catalog) -> None:
    top = dispatched(catalog, "road_maintenance", center=CITY, escalation_level=2)
    change = transition(top, "refuse", actor="u", at=MONDAY_10H + 60, catalog=catalog, note="no")
    assert [e.action for e in change.entries] == ["refuse"] and change.case.center == CITY


def test_four_eyes_on_a_machine_found_case(catalog: Catalog) -> None:
    case = ponding(sources={"sensor": 3, "citizen": 1})
    asked = transition(case, "false_alarm", actor="user:li", at=MONDAY_10H + 60, catalog=catalog,
                       note="gauge under maintenance")
    assert asked.case.status == "open" and asked.entries[0].action == "request_false_alarm"
    assert asked.case.pending_action == {"action": "false_alarm", "by": "user:li", "at": MONDAY_10H + 60,
                                         "note": "gauge under maintenance"}
    with pytest.raises(NotAllowed, match="a second user must confirm"):
        transition(asked.case, "false_alarm", actor="user:li", at=MONDAY_10H + 61, catalog=catalog)
    done = transition(asked.case, "false_alarm", actor="user:sup-zhao", at=MONDAY_10H + 120, catalog=catalog)
    entry = done.entries[0]
    assert (done.case.status, done.case.closing_reason, done.case.pending_action) == \
        ("closed", "false_alarm", None)
    assert (entry.data["requested_by"], entry.data["confirmed_by"]) == ("user:li", "user:sup-zhao")
    rejected = transition(asked.case, "reject_false_alarm", actor="user:sup-zhao", at=MONDAY_10H + 120,
                          catalog=catalog, note="the camera shows water")
    assert (rejected.case.status, rejected.case.pending_action) == ("open", None)
    assert rejected.entries[0].data["requested_by"] == "user:li"
    with pytest.raises(InvalidTransition, match="no false alarm request is pending"):
        transition(case, "reject_false_alarm", actor="user:sup-zhao", at=MONDAY_10H, catalog=catalog)


def test_human_reported_cases_keep_the_one_step_false_alarm(catalog: Catalog) -> None:
    change = transition(ponding(sources={"citizen": 2, "hotline": 1}), "false_alarm", actor="user:li",
                        at=MONDAY_10H, catalog=catalog)
    assert change.case.status == "closed" and [e.action for e in change.entries] == ["false_alarm"]


def test_resolving_drops_a_pending_false_alarm_request(catalog: Catalog) -> None:
    case = dispatched(catalog, sources={"camera": 1})
    asked = transition(case, "false_alarm", actor="user:li", at=MONDAY_10H + 60, catalog=catalog).case
    resolved = transition(asked, "resolve", actor="user:crew", at=MONDAY_10H + 120, catalog=catalog)
    assert resolved.case.pending_action is None
    assert resolved.entries[0].data["dropped_request"]["by"] == "user:li"


def test_new_log_actions_notify_and_name_the_receiving_center(catalog: Catalog) -> None:
    change = transition(dispatched(catalog, "road_maintenance"), "refuse", actor="u", at=MONDAY_10H + 60,
                        catalog=catalog, note="no")
    events = events_for(change, catalog.alert_policy)
    assert [(e.type, e.notify, e.data["to_center"]) for e in events] == [
        ("refuse", True, STREET), ("escalate", True, DISTRICT)]
    asked = transition(ponding(sources={"sensor": 1}), "false_alarm", actor="u", at=MONDAY_10H,
                       catalog=catalog)
    assert [(e.type, e.notify) for e in events_for(asked, catalog.alert_policy)] == [
        ("request_false_alarm", True)]


def test_hand_overs_are_counted_per_center(catalog: Catalog) -> None:
    entries = []
    asked = transition(ponding(), "request_coordination", actor="user:li", at=MONDAY_10H, catalog=catalog,
                       note="help")
    back = transition(asked.case, "hand_back", actor="user:zhou", at=MONDAY_10H + 60, catalog=catalog,
                      note="do this")
    entries += [*asked.entries, *back.entries]
    joint = dispatched(catalog, "road_maintenance")
    refused = transition(joint, "refuse", actor="u", at=MONDAY_10H + 60, catalog=catalog, note="no")
    entries += refused.entries
    late = escalate_if_overdue(ponding(due_at=MONDAY_10H), now=MONDAY_10H + 1, catalog=catalog)
    assert late is not None
    entries += late.entries
    counts = {c: n.to_dict() for c, n in count_handovers(entries).items()}
    assert counts[STREET] == {"escalated_in": 0, "escalated_out": 2, "coordination_requested": 1,
                              "coordination_received": 0, "handed_back": 0, "handed_back_in": 1,
                              "refusals": 1}
    assert counts[DISTRICT] == {"escalated_in": 2, "escalated_out": 0, "coordination_requested": 0,
                                "coordination_received": 1, "handed_back": 1, "handed_back_in": 0,
                                "refusals": 0}
    assert list(counts) == [DISTRICT, STREET]


def test_transition_case_checks_the_user_on_the_case_it_reads(catalog: Catalog) -> None:
    from gridsentinel.cases.authority import Actor
    from gridsentinel.cases.case import CaseNotFound

    async def scenario() -> None:
        store = MemoryCaseStore()
        await apply_detection(detection("d1"), store, catalog, {}, now=MONDAY_10H)
        case_id = store.all_cases()[0].case_id
        other_street = Actor("wu", "dispatcher", "street:320582004")
        with pytest.raises(CaseNotFound):
            await transition_case(store, catalog, case_id, "dispatch", actor="user:wu", now=MONDAY_10H,
                                  who=other_street)
        viewer = Actor("an", "viewer", STREET)
        with pytest.raises(NotAllowed, match="may look at cases but not change them"):
            await transition_case(store, catalog, case_id, "dispatch", actor="user:an", now=MONDAY_10H,
                                  who=viewer)
        li = Actor("li", "dispatcher", STREET)
        await transition_case(store, catalog, case_id, "false_alarm", actor="user:li", now=MONDAY_10H,
                              who=li)
        peer = Actor("ma", "dispatcher", STREET)
        with pytest.raises(NotAllowed, match="supervisor"):
            await transition_case(store, catalog, case_id, "false_alarm", actor="user:ma", now=MONDAY_10H,
                                  who=peer)
        boss = Actor("zhao", "supervisor", STREET)
        await transition_case(store, catalog, case_id, "false_alarm", actor="user:zhao", now=MONDAY_10H,
                              who=boss)
        assert store.all_cases()[0].status == "closed"

    asyncio.run(scenario())


def test_an_assisting_department_user_refuses_for_their_own_department(catalog: Catalog) -> None:
    from gridsentinel.cases.authority import Actor

    async def scenario() -> Case:
        store = MemoryCaseStore()
        await apply_detection(detection("d1"), store, catalog, {}, now=MONDAY_10H)
        case_id = store.all_cases()[0].case_id
        li = Actor("li", "dispatcher", STREET)
        await transition_case(store, catalog, case_id, "dispatch", actor="user:li", now=MONDAY_10H, who=li,
                              department="drainage", assisting_departments=["road_maintenance"])
        he = Actor("he", "department", department="road_maintenance")
        await transition_case(store, catalog, case_id, "refuse", actor="user:he", now=MONDAY_10H + 60, who=he,
                              note="no crew this week")
        return store.all_cases()[0]

    case = asyncio.run(scenario())
    # Not the lead's refusal: drainage keeps the case; the joint case still escalates.
    assert (case.status, case.department, case.assisting_departments) == ("dispatched", "drainage", ())
    assert case.center == DISTRICT
