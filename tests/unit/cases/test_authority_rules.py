"""Who may do what on a case (cases/authority.check and choices), role by role."""

from __future__ import annotations

from dataclasses import replace

import pytest

from gridsentinel.api.auth import LADDER as API_LADDER
from gridsentinel.cases.authority import LADDER, Actor, check, choices
from gridsentinel.cases.case import Case, NotAllowed, available_actions, new_case_for_test

pytestmark = pytest.mark.unit
STREET, DISTRICT, CITY = "street:320582110", "district:320582", "city:3205"


def case(**kw: object) -> Case:
    base: dict[str, object] = {"center": STREET, "home_center": STREET, "sources": {"citizen": 1}}
    base.update(kw)
    return new_case_for_test(**base)


def allowed(actor: Actor, c: Case) -> list[str]:
    return [x.action for x in choices(actor, c) if x.allowed]


def reason(actor: Actor, c: Case, action: str, **kw: object) -> str:
    with pytest.raises(NotAllowed) as info:
        check(actor, c, action, **kw)  # type: ignore[arg-type]
    return info.value.reason


def test_the_ladder_is_the_api_s() -> None:
    assert LADDER == API_LADDER


def test_viewers_act_on_nothing() -> None:
    viewer = Actor("an", "viewer", STREET)
    assert allowed(viewer, case()) == []
    assert reason(viewer, case(), "acknowledge") == "role viewer may look at cases but not change them"


def test_dispatchers_of_the_center_in_charge_do_the_workflow() -> None:
    li = Actor("li", "dispatcher", STREET)
    assert allowed(li, case()) == available_actions(case())
    check(Actor("zhou", "dispatcher", DISTRICT), case(), "dispatch")  # a center above may act too
    check(Actor("root", "admin"), case(), "dispatch")  # no center: the whole city


def test_the_lower_center_keeps_an_escalated_case_read_only() -> None:
    up = case(center=DISTRICT, escalation_level=1)
    li = Actor("li", "dispatcher", STREET)
    assert allowed(li, up) == []
    assert reason(li, up, "dispatch") == f"{DISTRICT} holds the case now; {STREET} sees it read-only"
    assert "hand_back" in allowed(Actor("zhou", "dispatcher", DISTRICT), up)
    assert "hand_back" in allowed(Actor("chen", "dispatcher", CITY), up)


def test_only_the_center_holding_the_case_requests_coordination_and_not_at_the_top() -> None:
    district = Actor("zhou", "dispatcher", DISTRICT)
    assert "only the center holding the case" in reason(district, case(), "request_coordination")
    top = case(center=CITY, escalation_level=2)
    city = Actor("chen", "dispatcher", CITY)
    found = {c.action: c for c in choices(city, top)}
    assert not found["request_coordination"].allowed and "top level" in found["request_coordination"].reason


def test_department_staff_start_resolve_and_refuse_their_own_cases_only() -> None:
    joint = case(status="dispatched", department="drainage", assisting_departments=("road_maintenance",))
    lead = Actor("wang", "department", department="drainage")
    helper = Actor("he", "department", department="road_maintenance")
    assert allowed(lead, joint) == ["start", "resolve", "refuse"]
    assert allowed(helper, joint) == ["refuse"]
    assert "only the lead department (drainage) may start" in reason(helper, joint, "start")
    assert "only start, resolve or refuse" in reason(lead, joint, "false_alarm")
    assert "cannot refuse for drainage" in reason(helper, joint, "refuse", department="drainage")
    outsider = Actor("gu", "department", department="gas_supply")
    assert "cannot see" in reason(outsider, joint, "refuse")


def test_four_eyes_needs_a_different_supervisor_or_a_user_of_a_center_above() -> None:
    machine = case(sources={"sensor": 1})
    li = Actor("li", "dispatcher", STREET)
    first = {c.action: c for c in choices(li, machine)}["false_alarm"]
    assert first.allowed and "second user" in first.reason
    asked = replace(machine, pending_action={"action": "false_alarm", "by": "user:li", "at": 0.0, "note": ""})
    assert reason(li, asked, "false_alarm") == "you requested this false alarm; a second user must confirm it"
    assert "supervisor" in reason(Actor("ma", "dispatcher", STREET), asked, "false_alarm")
    check(Actor("zhao", "supervisor", STREET), asked, "false_alarm")
    check(Actor("zhou", "dispatcher", DISTRICT), asked, "false_alarm")  # a center above
    check(Actor("root", "admin"), asked, "false_alarm")
    assert "supervisor" in reason(Actor("ops", "dispatcher"), asked, "false_alarm")  # no center: not "above"
    # Rejecting: the same second users, or the requester withdrawing the request.
    check(li, asked, "reject_false_alarm")
    check(Actor("zhao", "supervisor", STREET), asked, "reject_false_alarm")
    assert "supervisor" in reason(Actor("ma", "dispatcher", STREET), asked, "reject_false_alarm")
    # An admin's own request needs a second user like anyone's.
    by_admin = replace(machine, pending_action={"action": "false_alarm", "by": "user:root", "at": 0.0})
    assert "second user" in reason(Actor("root", "admin"), by_admin, "false_alarm")


def test_a_state_problem_is_left_to_the_workflow() -> None:
    # hand_back at the home center is a 409 (InvalidTransition) from the workflow, not a 403 here.
    check(Actor("li", "dispatcher", STREET), case(), "hand_back")
