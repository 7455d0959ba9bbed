"""Working-hours calendar and deadlines. Pure: every function takes the start time; nothing reads a clock.

Time limits in grid management are counted in working hours or working days (a case registered on
Friday evening is due on Monday), except urgent ones (a missing manhole cover) counted on the clock.

Public holidays and make-up working days (调休) come from the State Council's yearly notice, as packaged
by the ``chinesecalendar`` library (module ``chinese_calendar``); ``config/calendar.yaml`` adds local ones.
A year the library does not know yet has no holidays at all, so start-up warns (``coverage_warning``).

>>> cal = WorkCalendar()  # Mon–Fri 09:00–12:00 and 13:00–18:00, Asia/Shanghai, official holidays
>>> from datetime import datetime
>>> from zoneinfo import ZoneInfo
>>> tz = ZoneInfo("Asia/Shanghai")
>>> friday_17h = datetime(2025, 6, 6, 17, 0, tzinfo=tz).timestamp()
>>> datetime.fromtimestamp(deadline(friday_17h, TimeLimit(amount=4, unit="working_hours"), cal), tz)
datetime.datetime(2025, 6, 9, 12, 0, tzinfo=zoneinfo.ZoneInfo(key='Asia/Shanghai'))
>>> datetime.fromtimestamp(deadline(friday_17h, TimeLimit(amount=30, unit="minutes"), cal), tz)
datetime.datetime(2025, 6, 6, 17, 30, tzinfo=zoneinfo.ZoneInfo(key='Asia/Shanghai'))
>>> cal.is_working_day(date(2026, 10, 1)), cal.is_working_day(date(2026, 10, 10))  # National Day; a make-up Saturday
(False, True)
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from functools import cache, cached_property
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import chinese_calendar
from pydantic import ConfigDict, Field, field_validator, model_validator

from gridsentinel.core.config import StrictModel
from gridsentinel.errors import ConfigError

# A calendar with no working time inside this many days is a config error, not an endless loop.
_MAX_DAYS = 3 * 366


class WorkPeriod(StrictModel):
    """One working period of a working day, local time, e.g. 09:00–12:00."""

    start: time = Field(description="Start of the period, local time (HH:MM).")
    end: time = Field(description="End of the period, local time (HH:MM); after start, same day.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class WorkCalendar(StrictModel):
    """The working-hours calendar that deadlines are counted on (``config/calendar.yaml``)."""

    model_config = ConfigDict(ignored_types=(cached_property,))

    timezone: str = Field("Asia/Shanghai", description="IANA time zone of the working hours.")
    working_days: tuple[int, ...] = Field(
        (1, 2, 3, 4, 5), min_length=1, max_length=7,
        description="ISO weekdays that are working days (1 = Monday … 7 = Sunday).")
    hours: tuple[WorkPeriod, ...] = Field(
        (WorkPeriod(start=time(9), end=time(12)), WorkPeriod(start=time(13), end=time(18))),
        min_length=1, max_length=6,
        description="Working periods of a working day, in order, not overlapping.")
    official: Literal["cn", "none"] = Field(
        "cn", description="Official public holidays and make-up working days: 'cn' = mainland China's (State "
                          "Council notices, from the chinesecalendar library); 'none' = only this file's dates.")
    holidays: tuple[date, ...] = Field(
        (), max_length=2000,
        description="Local holidays on top of the official ones: not working days even on a working weekday or "
                    "an official make-up day.")
    extra_working_days: tuple[date, ...] = Field(
        (), max_length=2000,
        description="Local working days: working even on a weekend or a holiday. Win over all holidays.")
    covered_years: tuple[int, ...] = Field(
        (), max_length=100,
        description="Years whose holidays and make-up days this file lists in full (a year the official "
                    "source does not have yet); they silence the start-up warning for that year.")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("working_days")
    @classmethod
    def _weekdays(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        bad = [d for d in value if not 1 <= d <= 7]
        if bad:
            raise ValueError(f"ISO weekdays are 1..7, got {bad}")
        return tuple(sorted(set(value)))

    @field_validator("hours")
    @classmethod
    def _not_overlapping(cls, value: tuple[WorkPeriod, ...]) -> tuple[WorkPeriod, ...]:
        for before, after in itertools.pairwise(value):
            if after.start < before.end:
                raise ValueError(f"periods must be in order and not overlap: {before.end} > {after.start}")
        return value

    @cached_property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @cached_property
    def _holidays(self) -> frozenset[date]:
        return frozenset(self.holidays)

    @cached_property
    def _extra(self) -> frozenset[date]:
        return frozenset(self.extra_working_days)

    @cached_property
    def _official(self) -> OfficialDays:
        return official_days(self.official)

    def is_working_day(self, day: date) -> bool:
        # Local days win over official ones; a working day wins over a holiday at each level.
        if day in self._extra:
            return True
        if day in self._holidays:
            return False
        if day in self._official.workdays:
            return True
        return day.isoweekday() in self.working_days and day not in self._official.holidays

    def covers(self, year: int) -> bool:
        """Whether ``year``'s public holidays are known (officially or listed in full in this file)."""
        return year in self._official.years or year in self.covered_years

    @property
    def working_seconds_per_day(self) -> float:
        return sum(_seconds(p.end) - _seconds(p.start) for p in self.hours)

    def periods(self, day: date) -> list[tuple[float, float]]:
        """The working periods of ``day`` as (start, end) Unix seconds; empty on a day off."""
        if not self.is_working_day(day):
            return []
        return [(datetime.combine(day, p.start, self.zone).timestamp(),
                 datetime.combine(day, p.end, self.zone).timestamp()) for p in self.hours]


@dataclass(frozen=True)
class OfficialDays:
    """Official holidays and make-up working days, and the years they cover."""

    source: str
    holidays: frozenset[date]
    workdays: frozenset[date]
    years: frozenset[int]


@cache
def official_days(name: Literal["cn", "none"]) -> OfficialDays:
    """The official calendar ``name``: ``cn`` from the ``chinese_calendar`` module, ``none`` empty."""
    if name == "none":
        return OfficialDays("none", frozenset(), frozenset(), frozenset())
    holidays: dict[date, object] = chinese_calendar.holidays
    workdays: dict[date, object] = chinese_calendar.workdays
    # The library answers for every year between its first and last listed ones and raises outside.
    first, last = min(holidays).year, max(holidays).year
    return OfficialDays(f"chinesecalendar {chinese_calendar.__version__}", frozenset(holidays),
                        frozenset(workdays), frozenset(range(first, last + 1)))


def years_to_cover(now: float, cal: WorkCalendar) -> list[int]:
    """The years a service started at ``now`` needs: this year in the calendar's zone, and the next one
    from December on (a limit counted late in December runs into January)."""
    today = datetime.fromtimestamp(now, cal.zone).date()
    return [today.year, today.year + 1] if today.month == 12 else [today.year]


def coverage_warning(now: float, cal: WorkCalendar) -> str | None:
    """A start-up warning when a year the service needs has no public holidays (None when all are known).

    >>> print(coverage_warning(datetime(2030, 3, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp(),
    ...                        WorkCalendar(official="none")))  # doctest: +ELLIPSIS
    working calendar: no public holidays or make-up working days for 2030 (...)...
    """
    missing = [y for y in years_to_cover(now, cal) if not cal.covers(y)]
    if not missing:
        return None
    official = official_days(cal.official)
    known = f"{official.source} covers {min(official.years)}-{max(official.years)}" if official.years \
        else "no official calendar"
    years = " and ".join(map(str, missing))
    return (f"working calendar: no public holidays or make-up working days for {years} ({known}); due times "
            f"in {years} count every weekday as a working day. Upgrade chinesecalendar once it has {years} "
            f"(pinned in pyproject.toml and constraints.txt), or list the days from the State Council's notice "
            f"in config/calendar.yaml (holidays, extra_working_days) and add the year to covered_years.")


def _seconds(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


class TimeLimit(StrictModel):
    """A time limit: an amount of clock time or of working time on the calendar."""

    amount: float = Field(gt=0, le=10_000, description="How much time.")
    unit: Literal["minutes", "hours", "working_hours", "working_days"] = Field(
        description="minutes/hours run on the clock (day and night); working_hours/working_days only "
                    "during the calendar's working periods.")


def add_working_seconds(start: float, seconds: float, cal: WorkCalendar) -> float:
    """The moment when ``seconds`` of working time have passed after ``start``.

    Outside working hours the clock waits for the next working period, so a zero amount gives the next
    working moment.
    """
    if seconds < 0:
        raise ValueError(f"seconds must be >= 0, got {seconds}")
    remaining = seconds
    day = datetime.fromtimestamp(start, cal.zone).date()
    for _ in range(_MAX_DAYS):
        for p_start, p_end in cal.periods(day):
            begin = max(p_start, start)
            if begin >= p_end:
                continue
            if remaining <= p_end - begin:
                return begin + remaining
            remaining -= p_end - begin
        day += timedelta(days=1)
    raise ConfigError(f"calendar has no working time within {_MAX_DAYS} days of {start}")


def working_seconds_between(start: float, end: float, cal: WorkCalendar) -> float:
    """Working time between two moments (0 when ``end`` is not after ``start``)."""
    if end <= start:
        return 0.0
    total = 0.0
    day = datetime.fromtimestamp(start, cal.zone).date()
    last = datetime.fromtimestamp(end, cal.zone).date()
    while day <= last:
        for p_start, p_end in cal.periods(day):
            total += max(0.0, min(p_end, end) - max(p_start, start))
        day += timedelta(days=1)
    return total


def deadline(start: float, limit: TimeLimit, cal: WorkCalendar) -> float:
    """When a time limit counted from ``start`` runs out."""
    if limit.unit == "minutes":
        return start + limit.amount * 60
    if limit.unit == "hours":
        return start + limit.amount * 3600
    if limit.unit == "working_hours":
        return add_working_seconds(start, limit.amount * 3600, cal)
    return add_working_seconds(start, limit.amount * cal.working_seconds_per_day, cal)
