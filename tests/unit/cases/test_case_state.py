from __future__ import annotations

from typing import Any

import pytest

from gridsentinel.cases.case import (
    ACTIONS,
    STATUSES,
    TRANSITIONS,
    InvalidTransition,
    LogEntry,
    allowed_actions,
    apply_action,
    available_actions,
    new_case_for_test,
)

pytestmark = pytest.mark.unit


def run(case, *steps):
    for action, kwargs in steps:
        case = apply_action(case, action, actor="user:test", at=case.updated_at + 1, **kwargs).case
    return case


def test_happy_path_reaches_closed_resolved_with_a_full_log() -> None:
    case = new_case_for_test()
    entries: list[LogEntry] = []
    steps: list[tuple[str, dict[str, Any]]] = [("dispatch", {"department": "drainage", "due_at": 50.0}),
                                               ("start", {}), ("resolve", {}), ("verify", {}), ("close", {})]
    for action, kwargs in steps:
        change = apply_action(case, action, actor="user:li", at=case.updated_at + 1, **kwargs)
        entries.extend(change.entries)
        case = change.case
    assert case.status == "closed" and case.closing_reason == "resolved" and case.due_at is None
    assert [(e.seq, e.from_status, e.to_status) for e in entries] == [
        (1, "open", "dispatched"), (2, "dispatched", "in_progress"), (3, "in_progress", "resolved"),
        (4, "resolved", "verified"), (5, "verified", "closed")]
    assert all(e.actor == "user:li" for e in entries) and case.log_count == 5


def test_rework_sends_a_resolved_case_back_to_dispatched_and_counts_it() -> None:
    case = run(new_case_for_test(), ("dispatch", {"department": "d"}), ("resolve", {}))
    case = apply_action(case, "rework", actor="user:sup", at=99.0, due_at=500.0).case
    assert (case.status, case.rework_count, case.due_at, case.dispatched_at) == ("dispatched", 1, 500.0, 99.0)


@pytest.mark.parametrize("status", ["open", "dispatched", "in_progress"])
def test_false_alarm_closes_before_the_department_reports_back(status: str) -> None:
    case = new_case_for_test(status=status)
    closed = apply_action(case, "false_alarm", actor="user:sup", at=3.0).case
    assert (closed.status, closed.closing_reason, closed.closed_at) == ("closed", "false_alarm", 3.0)


def test_false_alarm_is_refused_once_the_case_was_handled() -> None:
    with pytest.raises(InvalidTransition) as info:
        apply_action(new_case_for_test(status="resolved"), "false_alarm", actor="u", at=1.0)
    assert info.value.allowed == ["verify", "rework"]
    assert "allowed: verify, rework" in str(info.value)


def test_duplicate_needs_another_case() -> None:
    case = new_case_for_test()
    with pytest.raises(InvalidTransition, match="duplicate_of"):
        apply_action(case, "duplicate", actor="u", at=1.0)
    with pytest.raises(InvalidTransition, match="duplicate_of"):
        apply_action(case, "duplicate", actor="u", at=1.0, duplicate_of=case.case_id)
    closed = apply_action(case, "duplicate", actor="u", at=1.0, duplicate_of="c0").case
    assert (closed.closing_reason, closed.duplicate_of) == ("duplicate", "c0")


def test_reopen_counts_and_clears_the_closing() -> None:
    case = run(new_case_for_test(), ("false_alarm", {}))
    reopened = apply_action(case, "reopen", actor="system:dedup", at=10.0, due_at=20.0).case
    assert (reopened.status, reopened.reopen_count, reopened.closed_at, reopened.closing_reason) == \
        ("open", 1, None, None)


def test_dispatch_requires_a_department() -> None:
    with pytest.raises(InvalidTransition, match="department"):
        apply_action(new_case_for_test(), "dispatch", actor="u", at=1.0)


def test_acknowledge_keeps_the_status() -> None:
    change = apply_action(new_case_for_test(), "acknowledge", actor="u", at=7.0)
    assert change.case.status == "open" and change.case.acknowledged_at == 7.0


def test_every_illegal_pair_raises_and_leaves_the_case_unchanged() -> None:
    for status in STATUSES:
        case = new_case_for_test(status=status)
        for action in ACTIONS:
            if status in TRANSITIONS[action][0]:
                continue
            with pytest.raises(InvalidTransition) as info:
                apply_action(case, action, actor="u", at=1.0, department="d", duplicate_of="x")
            assert info.value.allowed == available_actions(case)  # hand_back, reject_false_alarm: not here
            assert case.status == status and case.log_count == 0


def test_unknown_action_lists_the_known_ones() -> None:
    with pytest.raises(InvalidTransition, match="unknown action"):
        apply_action(new_case_for_test(), "teleport", actor="u", at=1.0)


def test_closed_allows_only_reopen() -> None:
    assert allowed_actions("closed") == ["reopen"]
