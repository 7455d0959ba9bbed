from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import replace
from typing import TypeVar

import pytest

from gridsentinel.cases.case import Case, evolve, log
from gridsentinel.cases.categories import Catalog, UnknownCategory
from gridsentinel.cases.dedup import DEDUP_ACTOR, apply_detection, case_id_for, open_case
from gridsentinel.cases.gridcode import GridCodeError
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.cases.workflow import transition_case
from gridsentinel.core.records import Detection

from .conftest import CELL, MONDAY_10H, detection

pytestmark = pytest.mark.unit
T = TypeVar("T")

# A row of cells inside one community: A - B - C - D
A, B, C, D = (f"320582110152{n:03d}" for n in (101, 102, 103, 104))
ROW = {A: {B}, B: {A, C}, C: {B, D}, D: {C}}


def run(coro: Awaitable[T]) -> T:
    return asyncio.run(coro)  # type: ignore[arg-type]


async def feed(store: MemoryCaseStore, catalog: Catalog, *detections: Detection, now: float = MONDAY_10H):
    events = []
    for d in detections:
        events.extend(await apply_detection(d, store, catalog, ROW, now=now))
    return events


def only_case(store: MemoryCaseStore) -> Case:
    cases = store.all_cases()
    assert len(cases) == 1, cases
    return cases[0]


def test_rule4_first_detection_opens_a_case_with_routing_and_due_time(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    events = run(feed(store, catalog, detection("d1", grid_code=B)))
    case = only_case(store)
    assert case.case_id == case_id_for("d1")
    assert (case.status, case.category_key, case.category_standard, case.department, case.center) == \
        ("open", "component:0103", "GB/T 30428.2-2013", "drainage", "street:320582110")
    assert case.due_at == MONDAY_10H + 30 * 60  # covers: dispatch within 30 minutes on the clock
    assert [(e.type, e.notify) for e in events] == [("open", True)]


@pytest.mark.parametrize("overrides", [{}, {"message": "drain overflowing", "messages": {"zh-CN": "溢流"}},
                                       {"severity": "critical", "source": "camera", "observed_at": MONDAY_10H - 60}])
def test_open_case_is_the_logged_change_it_replaces(catalog: Catalog, overrides: dict[str, object]) -> None:
    """``open_case`` builds the case after its first log entry directly: the same as ``log`` on the case before
    it (no entries yet), with no status to come from."""
    d = detection("d1", grid_code=B, **overrides)
    now = MONDAY_10H + 5
    made = open_case(d, catalog.resolve(d), now=now, catalog=catalog)
    severity = made.case.severity
    logged = log(evolve(made.case, log_count=0), at=now, actor=DEDUP_ACTOR, action="open", to_status="open",
                 data={"detection_id": "d1", "source": d.source, "kind": d.kind, "severity": severity, "rule": 4,
                       "observed_at": d.observed_at})
    assert made == replace(logged, entries=(replace(logged.entries[0], from_status=None),), created=True)
    assert made.case.log_count == 1 and made.case.updated_at == now and made.case.case_id == case_id_for("d1")


def test_rule1_same_cell_attaches_evidence_without_notifying(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    run(feed(store, catalog, detection("d1")))
    events = run(feed(store, catalog, detection("d2", observed_at=MONDAY_10H + 60)))
    case = only_case(store)
    assert (case.detection_count, case.last_seen_at) == (2, MONDAY_10H + 60)
    assert [(e.type, e.notify, e.data["rule"]) for e in events] == [("evidence", False, 1)]


def test_rule2_neighbouring_cell_merges_within_the_radius_only(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    rain = {"kind": "waterlogging", "source": "camera", "severity": "warning"}  # road ponding: 1 ring
    run(feed(store, catalog, detection("d1", grid_code=B, **rain)))
    events = run(feed(store, catalog, detection("d2", grid_code=C, **rain)))
    case = only_case(store)
    assert case.grid_code == B and case.detection_count == 2 and events[0].data["rule"] == 2
    run(feed(store, catalog, detection("d3", grid_code=D, **rain)))  # two rings from B: its own case
    assert sorted(c.grid_code for c in store.all_cases()) == [B, D]


def test_radius_zero_keeps_neighbouring_covers_apart(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    run(feed(store, catalog, detection("d1", grid_code=A), detection("d2", grid_code=B)))
    assert len(store.all_cases()) == 2


def test_cross_channel_detections_make_one_case_listing_every_source(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    run(feed(store, catalog,
             detection("s1", kind="ponding", severity="warning", observed_at=MONDAY_10H + 30),
             detection("c1", source="camera", kind="waterlogging", severity="warning",
                       observed_at=MONDAY_10H),
             detection("p1", source="citizen", kind="citizen_report", category_code="event:L001",
                       severity="advisory", observed_at=MONDAY_10H + 90),
             detection("s2", kind="ponding", severity="warning", observed_at=MONDAY_10H + 60)))
    case = only_case(store)
    assert case.sources == {"sensor": 2, "camera": 1, "citizen": 1} and case.detection_count == 4
    assert (case.first_seen_at, case.last_seen_at) == (MONDAY_10H, MONDAY_10H + 90)
    assert case.kinds == ("citizen_report", "ponding", "waterlogging")
    detections = run(store.case_detections(case.case_id))
    assert [d["detection_id"] for d in detections] == ["c1", "s1", "s2", "p1"]


def test_a_replayed_detection_is_applied_once(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    run(feed(store, catalog, detection("d1"), detection("d2")))
    assert run(feed(store, catalog, detection("d1"), detection("d2"))) == []
    assert only_case(store).detection_count == 2


def test_severity_increase_notifies_and_tightens_the_due_time(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    run(feed(store, catalog, detection("d1", kind="ponding", severity="warning")))
    case = only_case(store)
    run(transition_case(store, catalog, case.case_id, "dispatch", actor="user:li", now=MONDAY_10H + 60))
    dispatched = only_case(store)
    assert dispatched.due_at == MONDAY_10H + 60 + 4 * 3600  # ponding, warning: 4 h on the clock
    events = run(feed(store, catalog, detection("d2", kind="ponding", severity="critical"),
                      now=MONDAY_10H + 120))
    assert [(e.type, e.notify) for e in events] == [("evidence", False), ("raise_severity", True)]
    raised = only_case(store)
    assert raised.severity == "critical" and raised.due_at == MONDAY_10H + 60 + 3600
    # A lower severity later changes nothing.
    assert [e.type for e in run(feed(store, catalog, detection("d3", kind="ponding", severity="advisory")))] \
        == ["evidence"]


def close_as_resolved(store: MemoryCaseStore, catalog: Catalog, case_id: str, at: float) -> None:
    for action in ("dispatch", "resolve", "verify", "close"):
        run(transition_case(store, catalog, case_id, action, actor="user:li", now=at))


def test_rule3_recent_closure_is_reopened_and_counted(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    run(feed(store, catalog, detection("d1")))
    case_id = only_case(store).case_id
    close_as_resolved(store, catalog, case_id, MONDAY_10H + 3600)
    later = MONDAY_10H + 2 * 24 * 3600  # within the covers' 72 h window
    events = run(feed(store, catalog, detection("d2", observed_at=later), now=later))
    case = only_case(store)
    assert (case.case_id, case.status, case.reopen_count, case.detection_count) == (case_id, "open", 1, 2)
    assert case.due_at == later + 30 * 60 and case.closed_at is None
    assert [(e.type, e.notify) for e in events] == [("reopen", True), ("evidence", False)]


def test_after_the_reopen_window_a_new_case_opens(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    run(feed(store, catalog, detection("d1")))
    close_as_resolved(store, catalog, only_case(store).case_id, MONDAY_10H + 3600)
    later = MONDAY_10H + 3600 + 73 * 3600
    run(feed(store, catalog, detection("d2", observed_at=later), now=later))
    assert [c.status for c in store.all_cases()] == ["closed", "open"]


def test_a_detection_older_than_the_closure_is_late_evidence(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    run(feed(store, catalog, detection("d1")))
    case_id = only_case(store).case_id
    close_as_resolved(store, catalog, case_id, MONDAY_10H + 3600)
    events = run(feed(store, catalog, detection("late", observed_at=MONDAY_10H + 10, severity="critical"),
                      now=MONDAY_10H + 7200))
    case = only_case(store)
    assert case.status == "closed" and case.detection_count == 2 and case.severity == "alarm"
    assert [(e.type, e.notify) for e in events] == [("evidence", False)]


def test_a_case_closed_as_duplicate_is_never_reopened(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    run(feed(store, catalog, detection("d1", grid_code=A), detection("d2", grid_code=B)))
    first, second = sorted(store.all_cases(), key=lambda c: c.grid_code)
    run(transition_case(store, catalog, second.case_id, "duplicate", actor="u", now=MONDAY_10H + 10,
                        duplicate_of=first.case_id))
    run(feed(store, catalog, detection("d3", grid_code=B, observed_at=MONDAY_10H + 60)))
    assert sorted((c.grid_code, c.status) for c in store.all_cases()) == \
        [(A, "open"), (B, "closed"), (B, "open")]


def test_unroutable_detections_raise_for_the_dead_letter_topic(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    with pytest.raises(UnknownCategory):
        run(feed(store, catalog, detection("x", kind="ufo", category_code="9999")))
    with pytest.raises(GridCodeError):
        run(feed(store, catalog, detection("y", grid_code="12345")))
    assert store.all_cases() == []


def test_case_events_serialise(catalog: Catalog) -> None:
    store = MemoryCaseStore()
    events = run(feed(store, catalog, detection("d1")))
    from gridsentinel.cases.events import CaseEvent

    assert CaseEvent.from_json(events[0].to_json()) == events[0]
    assert events[0].case["case_id"] == case_id_for("d1") and events[0].event_id.endswith(":1")


def test_a_case_event_decodes_strictly_but_skips_unknown_keys(catalog: Catalog) -> None:
    import json

    from gridsentinel.cases.events import CaseEvent

    event = run(feed(MemoryCaseStore(), catalog, detection("d1")))[0]
    data = json.loads(event.to_json())
    assert CaseEvent.from_json(json.dumps({**data, "added_in_v2": {"x": 1}})) == event  # a newer producer
    with pytest.raises(TypeError, match="case_id"):
        CaseEvent.from_json(json.dumps({k: v for k, v in data.items() if k != "case_id"}))
    with pytest.raises(ValueError, match="notify"):
        CaseEvent.from_json(json.dumps({**data, "notify": "yes"}))
    with pytest.raises(ValueError, match="not JSON"):
        CaseEvent.from_json(b'{"event_id": ')


def test_concurrent_feeds_of_one_incident_open_one_case(catalog: Catalog) -> None:
    async def scenario() -> MemoryCaseStore:
        store = MemoryCaseStore()
        await asyncio.gather(*(apply_detection(detection(f"d{i % 5}"), store, catalog, ROW, now=MONDAY_10H)
                               for i in range(20)))
        return store

    store = run(scenario())
    assert only_case(store).detection_count == 5


def test_cell_constant_is_a_valid_code() -> None:
    assert len(CELL) == 15


def test_evidence_after_a_false_alarm_request_is_counted_on_the_request(catalog: Catalog) -> None:
    # Four eyes: the machines still finding the problem after "false alarm" was asked is shown to whoever
    # confirms; evidence observed before the request is not counted, and the request itself stays.
    store = MemoryCaseStore()
    run(feed(store, catalog, detection("d1")))
    case = only_case(store)
    run(transition_case(store, catalog, case.case_id, "false_alarm", actor="user:li", now=MONDAY_10H + 100,
                        note="test of the gauge"))
    assert only_case(store).pending_action is not None
    run(feed(store, catalog, detection("d2", observed_at=MONDAY_10H + 50), now=MONDAY_10H + 150))
    assert "evidence_since" not in (only_case(store).pending_action or {})
    run(feed(store, catalog, detection("d3", observed_at=MONDAY_10H + 200),
             detection("d4", observed_at=MONDAY_10H + 300), now=MONDAY_10H + 310))
    pending = only_case(store).pending_action or {}
    assert (pending["by"], pending["evidence_since"], pending["last_evidence_at"]) == ("user:li", 2, MONDAY_10H + 300)
    run(transition_case(store, catalog, case.case_id, "false_alarm", actor="user:wang", now=MONDAY_10H + 400))
    assert (only_case(store).status, only_case(store).pending_action) == ("closed", None)
