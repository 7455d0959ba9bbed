"""Every time-dependent path of a case, with the clock pinned at every hour of a week (day and night,
working days and the weekend): due times, escalation, reminders, and the detectors' dropout timer.

Nothing here reads the wall clock: a case's times come from the ``now`` its caller passes, so the same
inputs give the same case whatever the hour the suite runs at.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from gridsentinel.cases.calendar import TimeLimit, WorkCalendar, deadline, working_seconds_between
from gridsentinel.cases.case import new_case_for_test
from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.cases.workflow import escalate_if_overdue, remind_if_due, sweep, transition
from gridsentinel.core.devices import Registry
from gridsentinel.core.records import Reading
from gridsentinel.detectors.config import load_file
from gridsentinel.detectors.engine import DetectionEngine
from gridsentinel.settings import REPO_ROOT

from .conftest import detection

pytestmark = pytest.mark.unit
TZ = ZoneInfo("Asia/Shanghai")
HOUR = 3600.0
MONDAY = datetime(2025, 6, 9, tzinfo=TZ)  # a week without public holidays
WEEK = [(MONDAY + timedelta(hours=h)).timestamp() for h in range(7 * 24)]
FRIDAY_23H20 = datetime(2025, 6, 13, 23, 20, tzinfo=TZ).timestamp()
NEXT_MONDAY = datetime(2025, 6, 16, tzinfo=TZ)


def local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, TZ)


def in_working_time(ts: float, cal: WorkCalendar) -> bool:
    return any(a < ts <= b for a, b in cal.periods(local(ts).date()))


@pytest.mark.parametrize("limit", [TimeLimit(amount=1, unit="working_hours"),
                                   TimeLimit(amount=4, unit="working_hours"),
                                   TimeLimit(amount=2, unit="working_days")])
def test_working_time_due_times_from_every_hour_of_a_week(limit: TimeLimit) -> None:
    cal = WorkCalendar(holidays=(), extra_working_days=())
    need = limit.amount * (HOUR if limit.unit == "working_hours" else cal.working_seconds_per_day)
    for start in WEEK:
        due = deadline(start, limit, cal)
        # exactly the working time asked for, ending in working time, and not a second later than needed
        assert working_seconds_between(start, due, cal) == pytest.approx(need), local(start)
        assert in_working_time(due, cal), (local(start), local(due))
        assert working_seconds_between(start, due - 1, cal) < need


@pytest.mark.parametrize("limit", [TimeLimit(amount=30, unit="minutes"), TimeLimit(amount=6, unit="hours")])
def test_clock_due_times_are_the_same_at_night(limit: TimeLimit) -> None:
    span = limit.amount * (60 if limit.unit == "minutes" else HOUR)
    assert {deadline(start, limit, WorkCalendar()) - start for start in WEEK} == {span}


def test_a_case_opened_on_friday_night_is_due_in_mondays_working_hours(catalog: Catalog) -> None:
    async def opened(kind: str) -> float | None:
        store = MemoryCaseStore()
        await apply_detection(detection("d1", kind=kind, severity="warning", observed_at=FRIDAY_23H20 - 600),
                              store, catalog, {}, now=FRIDAY_23H20)
        return store.all_cases()[0].due_at

    noise = catalog.policy("event:L003").dispatch_limit  # counted in working hours
    ponding = catalog.policy("event:L001").dispatch_limit  # urgent: counted on the clock
    assert noise.unit == "working_hours" and ponding.unit == "minutes"
    first_period = catalog.calendar.periods(NEXT_MONDAY.date())[0]
    assert asyncio.run(opened("noise_exceedance")) == first_period[0] + noise.amount * HOUR
    assert asyncio.run(opened("ponding")) == FRIDAY_23H20 + ponding.amount * 60


def test_escalation_follows_the_due_time_not_the_hour(catalog: Catalog) -> None:
    for opened in WEEK[::5]:  # every fifth hour: all hours of the day, several days
        case = new_case_for_test(category_code="L001", category_standard="GridSentinel local 2025.1",
                                 opened_at=opened, updated_at=opened, center="street:320582110",
                                 due_at=deadline(opened, catalog.policy("event:L001").dispatch_limit,
                                                 catalog.calendar))
        assert case.due_at is not None
        assert escalate_if_overdue(case, now=case.due_at - 1, catalog=catalog) is None
        change = escalate_if_overdue(case, now=case.due_at, catalog=catalog)
        assert change is not None and change.case.escalation_level == 1, local(opened)
        limit = catalog.policy("event:L001").escalation_limit
        assert change.case.due_at == deadline(case.due_at, limit, catalog.calendar)


def test_a_dispatched_case_on_working_hours_does_not_escalate_overnight(catalog: Catalog) -> None:
    case = new_case_for_test(category_code="0103", severity="warning", opened_at=FRIDAY_23H20 - HOUR,
                             center="street:320582110", department="sanitation")
    dispatched = transition(case, "dispatch", actor="u", at=FRIDAY_23H20, catalog=catalog).case
    assert dispatched.due_at is not None and local(dispatched.due_at).date() == NEXT_MONDAY.date()
    for now in (FRIDAY_23H20 + h * HOUR for h in range(0, 56)):  # the whole weekend
        assert escalate_if_overdue(dispatched, now=now, catalog=catalog) is None, local(now)


def test_reminders_keep_their_interval_through_the_night(catalog: Catalog) -> None:
    every = catalog.alert_policy.reminder_interval_minutes * 60
    case = new_case_for_test(severity="critical", opened_at=FRIDAY_23H20, updated_at=FRIDAY_23H20)
    reminded = []
    now = FRIDAY_23H20
    while now < FRIDAY_23H20 + 8 * HOUR:  # 23:20 to 07:20
        change = remind_if_due(case, now=now, catalog=catalog)
        if change is not None:
            case = change.case
            reminded.append(now)
        now += 60
    assert reminded == [FRIDAY_23H20 + every * (i + 1) for i in range(len(reminded))]
    assert len(reminded) == int(8 * HOUR // every) - (8 * HOUR % every == 0)


def test_a_night_sweep_escalates_an_urgent_case_and_leaves_the_others(catalog: Catalog) -> None:
    async def night() -> list[tuple[str, str]]:
        store = MemoryCaseStore()
        await apply_detection(detection("d1", kind="ponding", severity="warning",
                                        observed_at=FRIDAY_23H20 - 60), store, catalog, {}, now=FRIDAY_23H20)
        await apply_detection(detection("d2", kind="noise_exceedance", severity="warning",
                                        observed_at=FRIDAY_23H20 - 60), store, catalog, {}, now=FRIDAY_23H20)
        events = await sweep(store, catalog, now=FRIDAY_23H20 + 3 * HOUR)  # 02:20 on Saturday
        return [(e.type, str(e.data.get("center"))) for e in events]

    assert asyncio.run(night()) == [("escalate", "district:320582")]


def test_the_dropout_timer_counts_event_time_whatever_the_hour(catalog: Catalog) -> None:
    config = load_file(REPO_ROOT / "config" / "detectors.yaml")
    registry = Registry.load(REPO_ROOT / "config")
    waited = set()
    for start in WEEK[::7]:  # 00:00 Monday, 07:00, 14:00, 21:00, 04:00 Tuesday ...
        engine = DetectionEngine(config, registry, category_of=catalog.category_of)
        last = start + 3600
        for t in range(int(start), int(last) + 1, 60):
            engine.process(Reading("aq-001", "pm2_5", "ug/m3", 20.0, float(t)), now=float(t))
            engine.process(Reading("aq-001", "pm10", "ug/m3", 34.0, float(t)), now=float(t))
        silent = 0
        while "device_offline" not in [d.kind for d in engine.check(last + silent)]:
            silent += 30
            assert silent < 6 * HOUR, local(start)
        waited.add(silent)
    assert len(waited) == 1  # the same silence, night or day
