"""The working calendar knows each year's official holidays and make-up working days (chinesecalendar),
with config/calendar.yaml as local overrides. Every date is pinned: nothing here reads the clock."""

from __future__ import annotations

from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest

from gridsentinel.cases.calendar import TimeLimit, WorkCalendar, deadline

pytestmark = pytest.mark.unit
TZ = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 0) -> float:
    return datetime(year, month, day, hour, tzinfo=TZ).timestamp()


def local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, TZ).replace(tzinfo=None)


@pytest.fixture(params=["default", "repository"])
def cal(request: pytest.FixtureRequest, catalog) -> WorkCalendar:
    """The built-in default and the repository's config/calendar.yaml behave alike."""
    return WorkCalendar() if request.param == "default" else catalog.calendar


def test_2026_national_day_is_a_holiday(cal: WorkCalendar) -> None:
    # Thursday 1 to Wednesday 7 October 2026 (State Council notice for 2026).
    for day in range(1, 8):
        assert not cal.is_working_day(date(2026, 10, day)), f"2026-10-{day:02d}"
    assert cal.is_working_day(date(2026, 10, 9))


@pytest.mark.parametrize("make_up", [date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9),
                                     date(2026, 9, 20), date(2026, 10, 10)])
def test_2026_make_up_weekend_days_are_working_days(cal: WorkCalendar, make_up: date) -> None:
    assert make_up.isoweekday() in (6, 7)
    assert cal.is_working_day(make_up)


def test_due_times_across_the_2026_spring_festival(cal: WorkCalendar) -> None:
    wh2 = TimeLimit(amount=2, unit="working_hours")
    # Saturday 14 Feb is worked; 15-23 Feb are the Spring Festival holiday: 1 h on Saturday, 1 h on Tuesday 24.
    assert local(deadline(at(2026, 2, 14, 17), wh2, cal)) == datetime(2026, 2, 24, 10)
    # Friday 13 Feb 10:00 + 3 working days: Friday, Saturday 14 (make-up), Tuesday 24, and 1 h of Wednesday 25.
    assert local(deadline(at(2026, 2, 13, 10), TimeLimit(amount=3, unit="working_days"), cal)) == \
        datetime(2026, 2, 25, 10)


def test_local_overrides_win_over_the_official_calendar() -> None:
    cal = WorkCalendar(holidays=(date(2026, 10, 10),), extra_working_days=(date(2026, 10, 7),))
    assert not cal.is_working_day(date(2026, 10, 10))  # a city's day off on an official make-up Saturday
    assert cal.is_working_day(date(2026, 10, 7))  # worked although it is National Day week
    assert not cal.is_working_day(date(2026, 10, 6))


def test_official_none_uses_only_the_files_dates() -> None:
    cal = WorkCalendar(official="none", holidays=(date(2026, 10, 2),))
    assert cal.is_working_day(date(2026, 10, 1))
    assert not cal.is_working_day(date(2026, 10, 2))
    assert not cal.is_working_day(date(2026, 10, 10))  # a plain Saturday
