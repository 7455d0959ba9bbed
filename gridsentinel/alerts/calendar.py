"""Working-hours calendar and deadlines. Pure: every function takes the start time; nothing reads a clock.

Time limits in grid management are counted in working hours or working days (a case registered on
Friday evening is due on Monday), except urgent ones (a missing manhole cover) counted on the clock.

>>> cal = WorkCalendar()  # Mon–Fri 09:00–12:00 and 13:00–18:00, Asia/Shanghai
>>> from datetime import datetime
>>> from zoneinfo import ZoneInfo
>>> tz = ZoneInfo("Asia/Shanghai")
>>> friday_17h = datetime(2025, 6, 6, 17, 0, tzinfo=tz).timestamp()
>>> datetime.fromtimestamp(deadline(friday_17h, TimeLimit(amount=4, unit="working_hours"), cal), tz)
datetime.datetime(2025, 6, 9, 12, 0, tzinfo=zoneinfo.ZoneInfo(key='Asia/Shanghai'))
>>> datetime.fromtimestamp(deadline(friday_17h, TimeLimit(amount=30, unit="minutes"), cal), tz)
datetime.datetime(2025, 6, 6, 17, 30, tzinfo=zoneinfo.ZoneInfo(key='Asia/Shanghai'))
"""

from __future__ import annotations

import itertools
from datetime import date, datetime, time, timedelta
from functools import cached_property
from typing import Literal, Self
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from gridsentinel.errors import ConfigError

# A calendar with no working time inside this many days is a config error, not an endless loop.
_MAX_DAYS = 3 * 366


class WorkPeriod(BaseModel):
    """One working period of a working day, local time, e.g. 09:00–12:00."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    start: time = Field(description="Start of the period, local time (HH:MM).")
    end: time = Field(description="End of the period, local time (HH:MM); after start, same day.")

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.end <= self.start:
            raise ValueError(f"end {self.end} must be after start {self.start}")
        return self


class WorkCalendar(BaseModel):
    """The working-hours calendar that deadlines are counted on (``config/calendar.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, ignored_types=(cached_property,))

    timezone: str = Field("Asia/Shanghai", description="IANA time zone of the working hours.")
    working_days: tuple[int, ...] = Field(
        (1, 2, 3, 4, 5), min_length=1, max_length=7,
        description="ISO weekdays that are working days (1 = Monday … 7 = Sunday).")
    hours: tuple[WorkPeriod, ...] = Field(
        (WorkPeriod(start=time(9), end=time(12)), WorkPeriod(start=time(13), end=time(18))),
        min_length=1, max_length=6,
        description="Working periods of a working day, in order, not overlapping.")
    holidays: tuple[date, ...] = Field(
        (), max_length=2000, description="Public holidays: not working days even on a working weekday.")
    extra_working_days: tuple[date, ...] = Field(
        (), max_length=2000,
        description="Make-up working days (调休): working days even on a weekend. Wins over holidays.")

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

    def is_working_day(self, day: date) -> bool:
        if day in self._extra:
            return True
        return day.isoweekday() in self.working_days and day not in self._holidays

    @property
    def working_seconds_per_day(self) -> float:
        return sum(_seconds(p.end) - _seconds(p.start) for p in self.hours)

    def periods(self, day: date) -> list[tuple[float, float]]:
        """The working periods of ``day`` as (start, end) Unix seconds; empty on a day off."""
        if not self.is_working_day(day):
            return []
        return [(datetime.combine(day, p.start, self.zone).timestamp(),
                 datetime.combine(day, p.end, self.zone).timestamp()) for p in self.hours]


def _seconds(t: time) -> float:
    return t.hour * 3600 + t.minute * 60 + t.second + t.microsecond / 1e6


class TimeLimit(BaseModel):
    """A time limit: an amount of clock time or of working time on the calendar."""

    model_config = ConfigDict(extra="forbid", frozen=True)

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
