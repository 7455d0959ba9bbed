"""The start-up warning for a year whose public holidays are unknown. Times are pinned, never the clock."""

from __future__ import annotations

import logging
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from gridsentinel.cases.calendar import WorkCalendar, coverage_warning, official_days, years_to_cover
from gridsentinel.cli import warn_if_calendar_uncovered
from gridsentinel.settings import Settings

from .conftest import CONFIG_DIR

pytestmark = pytest.mark.unit
TZ = ZoneInfo("Asia/Shanghai")


def at(year: int, month: int, day: int, hour: int = 12, tz: ZoneInfo = TZ) -> float:
    return datetime(year, month, day, hour, tzinfo=tz).timestamp()


def test_the_pinned_library_covers_2026() -> None:
    years = official_days("cn").years
    assert 2026 in years and 2025 in years
    assert coverage_warning(at(2026, 6, 1), WorkCalendar()) is None


def test_warns_for_an_uncovered_year() -> None:
    message = coverage_warning(at(2030, 3, 1), WorkCalendar())
    assert message is not None and "2030" in message and "covered_years" in message


def test_in_december_next_year_must_be_covered_too() -> None:
    assert years_to_cover(at(2026, 12, 4), WorkCalendar()) == [2026, 2027]
    assert years_to_cover(at(2026, 11, 30), WorkCalendar()) == [2026]
    only_2026 = WorkCalendar(official="none", covered_years=(2026,))
    assert coverage_warning(at(2026, 11, 30), only_2026) is None
    message = coverage_warning(at(2026, 12, 4), only_2026)
    assert message is not None and "2027" in message and "2026" not in message


def test_the_year_is_taken_in_the_calendars_time_zone() -> None:
    # 30 Nov 2026 16:30 UTC is already 1 Dec 00:30 in Shanghai.
    utc_evening = datetime(2026, 11, 30, 16, 30, tzinfo=ZoneInfo("UTC")).timestamp()
    assert years_to_cover(utc_evening, WorkCalendar()) == [2026, 2027]
    assert years_to_cover(utc_evening, WorkCalendar(timezone="UTC")) == [2026]


def test_covered_years_in_the_file_silence_the_warning() -> None:
    listed = WorkCalendar(holidays=(date(2030, 1, 1),), covered_years=(2030,))
    assert coverage_warning(at(2030, 3, 1), listed) is None
    assert coverage_warning(at(2026, 6, 1), WorkCalendar(official="none")) is not None


def test_start_up_logs_the_warning_from_the_config_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    settings = Settings(config_dir=CONFIG_DIR)
    with caplog.at_level(logging.WARNING, logger="gridsentinel.calendar"):
        assert warn_if_calendar_uncovered(settings, now=at(2026, 6, 1)) is None
        assert not caplog.records
        message = warn_if_calendar_uncovered(settings, now=at(2031, 6, 1))
    assert message is not None and "2031" in message
    assert [r.getMessage() for r in caplog.records] == [message]
    # A local file that lists 2031 in full is covered.
    config = tmp_path / "config"
    config.mkdir()
    text = (CONFIG_DIR / "calendar.yaml").read_text()
    assert "covered_years: []" in text
    (config / "calendar.yaml").write_text(text.replace("covered_years: []", "covered_years: [2031]"))
    assert warn_if_calendar_uncovered(Settings(config_dir=config), now=at(2031, 6, 1)) is None
