from __future__ import annotations

from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from gridsentinel.cases.calendar import (
    TimeLimit,
    WorkCalendar,
    add_working_seconds,
    deadline,
    working_seconds_between,
)

pytestmark = pytest.mark.unit
TZ = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> float:
    return datetime(year, month, day, hour, minute, tzinfo=TZ).timestamp()


def local(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, TZ).replace(tzinfo=None)


def wh(n: float) -> TimeLimit:
    return TimeLimit(amount=n, unit="working_hours")


CAL = WorkCalendar()


def test_working_hours_skip_lunch() -> None:
    assert local(deadline(at(2025, 6, 9, 10), wh(4), CAL)) == datetime(2025, 6, 9, 15)


def test_working_hours_skip_the_weekend() -> None:
    assert local(deadline(at(2025, 6, 6, 17), wh(4), CAL)) == datetime(2025, 6, 9, 12)


def test_outside_hours_the_clock_waits_for_the_next_period() -> None:
    assert local(deadline(at(2025, 6, 7, 23), wh(1), CAL)) == datetime(2025, 6, 9, 10)
    assert local(add_working_seconds(at(2025, 6, 9, 12, 30), 0, CAL)) == datetime(2025, 6, 9, 13)


def test_clock_limits_ignore_the_calendar() -> None:
    start = at(2025, 6, 7, 23)
    assert deadline(start, TimeLimit(amount=30, unit="minutes"), CAL) == start + 1800
    assert deadline(start, TimeLimit(amount=6, unit="hours"), CAL) == start + 6 * 3600


def test_working_days_count_whole_working_days() -> None:
    assert local(deadline(at(2025, 6, 6, 10), TimeLimit(amount=2, unit="working_days"), CAL)) == \
        datetime(2025, 6, 10, 10)


def test_holidays_and_make_up_days() -> None:
    cal = WorkCalendar(official="none", holidays=(date(2025, 10, 1), date(2025, 10, 2)),
                       extra_working_days=(date(2025, 10, 11),))
    # Tue 30 Sep 17:00 + 2 wh: 1 h on Tuesday, holidays Wed/Thu, Friday 09:00 + 1 h.
    assert local(deadline(at(2025, 9, 30, 17), wh(2), cal)) == datetime(2025, 10, 3, 10)
    # Saturday 11 Oct is a make-up working day.
    assert local(deadline(at(2025, 10, 10, 17), wh(2), cal)) == datetime(2025, 10, 11, 10)


def test_working_seconds_between_is_the_inverse_of_adding() -> None:
    start = at(2025, 6, 6, 16, 15)
    end = add_working_seconds(start, 7.5 * 3600, CAL)
    assert working_seconds_between(start, end, CAL) == pytest.approx(7.5 * 3600)
    assert working_seconds_between(end, start, CAL) == 0.0


def test_repository_calendar_loads(catalog) -> None:
    assert catalog.calendar.timezone == "Asia/Shanghai"
    assert catalog.calendar.is_working_day(date(2025, 9, 28))  # Sunday make-up day
    assert not catalog.calendar.is_working_day(date(2025, 10, 1))


@pytest.mark.parametrize("bad", [
    {"timezone": "Mars/Olympus"},
    {"working_days": [0]},
    {"hours": [{"start": "12:00", "end": "09:00"}]},
    {"hours": [{"start": "09:00", "end": "12:00"}, {"start": "11:00", "end": "13:00"}]},
    {"holiday": ["2025-01-01"]},
])
def test_bad_calendars_are_rejected(bad: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        WorkCalendar.model_validate(bad)


def test_limits_are_bounded() -> None:
    with pytest.raises(ValidationError):
        TimeLimit(amount=0, unit="hours")
    with pytest.raises(ValidationError):
        TimeLimit.model_validate({"amount": 1, "unit": "fortnights"})
