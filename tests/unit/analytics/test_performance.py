"""Department and center performance on hand-built case histories where the figures are known."""

from __future__ import annotations

import pytest

from gridsentinel.analytics.performance import CaseRecord, Event, figures, resolved_at, was_overdue

pytestmark = pytest.mark.unit

H = 3600.0
WEEK = 7 * 24 * H
A, B = "community:320582110152", "street:320582110"


def _records() -> list[CaseRecord]:
    return [
        # on time: dispatched after 1 h, resolved after 4 h
        CaseRecord("c1", 0, "water", A, closed_at=5 * H, resolved=True, events=(
            Event(1 * H, "dispatch", {"department": "water", "due_at": 5 * H}),
            Event(4 * H, "resolve"), Event(4.5 * H, "verify"), Event(5 * H, "close"))),
        # late, reworked, then resolved within the new limit: overdue once; resolution is the last resolve
        CaseRecord("c2", 10 * H, "water", A, closed_at=26 * H, resolved=True, events=(
            Event(13 * H, "dispatch", {"department": "water", "due_at": 17 * H}),
            Event(20 * H, "resolve"), Event(21 * H, "rework", {"due_at": 25 * H}),
            Event(24 * H, "resolve"), Event(25 * H, "verify"), Event(26 * H, "close"))),
        # escalated from the community to the street center, still open at the end of the week
        CaseRecord("c3", 0, "roads", A, events=(
            Event(2 * H, "dispatch", {"department": "roads", "due_at": 6 * H}),
            Event(6 * H, "escalate", {"from_center": A, "center": B, "level": 1}))),
        # a false alarm closed before dispatch: no deadline, never resolved
        CaseRecord("c4", 5 * H, "roads", A, closed_at=6 * H, resolved=False, events=(
            Event(6 * H, "false_alarm"),)),
        # opened the week before, reworked in this week: counts for rework, not in the cohort
        CaseRecord("c5", -10 * H, "water", A, events=(
            Event(-9 * H, "dispatch", {"department": "water", "due_at": -5 * H}),
            Event(-6 * H, "resolve"), Event(30 * H, "rework", {"due_at": 40 * H}))),
        # opened after the week: ignored
        CaseRecord("c6", WEEK + H, "water", A),
    ]


def test_per_department_figures() -> None:
    by = {g.group: g for g in figures(_records(), "department", start=0, end=WEEK)}
    water, roads = by["water"], by["roads"]
    assert (water.cases, water.dispatched, water.resolved) == (2, 2, 2)
    assert water.dispatch_median_h == pytest.approx(2.0)      # 1 h and 3 h
    assert water.dispatch_p90_h == pytest.approx(2.8)         # linear between them
    assert water.resolve_median_h == pytest.approx(9.0)       # 4 h and 14 h (24 h - 10 h, after the rework)
    assert water.resolve_p90_h == pytest.approx(13.0)
    assert (water.with_deadline, water.overdue, water.overdue_share) == (2, 1, 0.5)
    assert water.rework == 2                                  # c2's and c5's
    assert (water.escalations_sent, water.escalations_received) == (0, None)
    assert water.refusals is None                             # not recorded, not zero
    assert (roads.cases, roads.dispatched, roads.resolved) == (2, 1, 0)
    assert roads.dispatch_median_h == pytest.approx(2.0) and roads.resolve_median_h is None
    assert (roads.with_deadline, roads.overdue) == (1, 1)     # the false alarm had no deadline
    assert roads.escalations_sent == 1


def test_per_center_escalations_sent_and_received() -> None:
    by = {g.group: g for g in figures(_records(), "center", start=0, end=WEEK)}
    assert by[A].cases == 4
    assert (by[A].escalations_sent, by[A].escalations_received) == (1, 0)
    assert (by[B].cases, by[B].escalations_sent, by[B].escalations_received) == (0, 0, 1)
    everyone = figures(_records(), "all", start=0, end=WEEK)[0]
    assert (everyone.cases, everyone.overdue, everyone.rework, everyone.escalations_sent) == (4, 2, 2, 1)


def test_nothing_after_as_of_is_read() -> None:
    by = {g.group: g for g in figures(_records(), "department", start=0, end=WEEK, as_of=12 * H)}
    assert (by["water"].cases, by["water"].dispatched, by["water"].resolved) == (2, 1, 1)
    assert by["water"].rework == 0
    assert by["roads"].overdue == 1                            # escalated at 6 h


def test_refusals_counted_when_the_source_records_them() -> None:
    records = _records()
    records[0] = CaseRecord("c1", 0, "water", A, events=(
        Event(0.5 * H, "dispatch", {"department": "roads", "due_at": 5 * H}),
        Event(0.7 * H, "refused", {"department": "roads"}),
        Event(1 * H, "dispatch", {"department": "water", "due_at": 5 * H})))
    by = {g.group: g for g in figures(records, "department", start=0, end=WEEK, refusals_recorded=True)}
    assert (by["roads"].refusals, by["water"].refusals) == (1, 0)
    assert by["water"].dispatch_median_h == pytest.approx(1.75)  # first dispatch (0.5 h) and c2's 3 h


def test_single_due_time_source_like_boston() -> None:
    on_time = CaseRecord("b1", 0, "PWDx", closed_at=10 * H, resolved=True, due_at=24 * H)
    late = CaseRecord("b2", 0, "PWDx", closed_at=30 * H, resolved=True, due_at=24 * H)
    open_late = CaseRecord("b3", 0, "PWDx", due_at=24 * H)
    open_in_time = CaseRecord("b4", 0, "PWDx", due_at=WEEK + H)
    no_due = CaseRecord("b5", 0, "PWDx", closed_at=2 * H, resolved=True)
    assert [was_overdue(r, WEEK) for r in (on_time, late, open_late, open_in_time, no_due)] == [
        False, True, True, False, None]
    assert resolved_at(late, WEEK) == 30 * H and resolved_at(open_late, WEEK) is None
    g = figures([on_time, late, open_late, open_in_time, no_due], "department", start=0, end=WEEK,
                rework_recorded=False, escalations_recorded=False)[0]
    assert (g.cases, g.dispatched, g.dispatch_median_h) == (5, 0, None)
    assert g.resolve_median_h == pytest.approx(10.0)          # 2 h, 10 h, 30 h
    assert (g.with_deadline, g.overdue) == (4, 2)
    assert (g.rework, g.escalations_sent, g.refusals) == (None, None, None)


def test_late_closing_is_judged_open_at_as_of() -> None:
    late = CaseRecord("b2", 0, "PWDx", closed_at=30 * H, resolved=True, due_at=24 * H)
    assert was_overdue(late, 20 * H) is False                # at 20 h it was open and not yet due
    assert resolved_at(late, 20 * H) is None


def test_unknown_grouping_is_refused() -> None:
    with pytest.raises(ValueError, match="department"):
        figures([], "queue", start=0, end=1)


def test_an_escalation_after_a_refusal_is_not_overdue() -> None:
    """A second refusal escalates at once (issue 16): the case is not late for it; an overdue escalation is."""
    refused_twice = CaseRecord("r1", 0, "water", A, due_at=WEEK, events=(
        Event(0.5 * H, "dispatch", {"department": "water", "due_at": 48 * H}),
        Event(1 * H, "refuse", {"department": "water"}),
        Event(1.5 * H, "dispatch", {"department": "water", "due_at": 48 * H}),
        Event(2 * H, "refuse", {"department": "water"}),
        Event(2 * H, "escalate", {"reason": "repeated_refusal", "from_center": A, "center": B})))
    overdue = CaseRecord("r2", 0, "water", A, due_at=WEEK, events=(
        Event(0.5 * H, "escalate", {"reason": "overdue", "from_center": A, "center": B}),))
    assert was_overdue(refused_twice, 3 * H) is False
    assert was_overdue(overdue, 3 * H) is True
