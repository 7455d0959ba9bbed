"""The Boston intake replay's metrics on tiny hand-built data: duplicates found vs the city's markers,
cases per distinct problem, tuning on the early months only, and the inspector load of a queue."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from gridsentinel.bench.intake import Report, candidates, load, queue_load, score, tune

pytestmark = pytest.mark.unit
H = 3600.0
M_LAT = 1 / 111_195  # one metre of latitude, in degrees


def rep(rid: str, hours: float, metres_north: float, *, cat: str = "Pothole", month: int = 1,
        marked: bool = False, hour: int = 9, day: str = "2015-01-05") -> Report:
    return Report(rid, hours * H, 42.35 + metres_north * M_LAT, -71.06, cat, "Citizens Connect App", month, hour,
                  day, marked, False, False)


def test_a_near_simultaneous_same_type_report_nearby_is_found_and_scored_against_the_markers() -> None:
    reports = [
        rep("a", 0, 0),
        rep("b", 1, 8, marked=True),  # 8 m, 1 h later, marked: a true positive
        rep("c", 2, 9),  # found, but the city did not mark it: a false positive against the markers
        rep("d", 3, 300, marked=True),  # 300 m away: missed at a 50 m radius
        rep("e", 4, 0, cat="Graffiti"),  # another type at the same spot: not a duplicate
        rep("f", 100, 0),  # 100 h later: outside a 24 h window
    ]
    found = candidates(reports, 400, 200 * H)
    s = score(reports, found, 50, 24 * H, [1])
    assert (s.reports, s.marked, s.found, s.true_positives) == (6, 2, 2, 1)
    assert (s.precision, s.recall) == (0.5, 0.5) and s.f1 == pytest.approx(0.5)
    # 6 reports, 2 marked: 4 distinct problems; 4 cases opened (6 - 2 found) -> 1.0; without dedup 6/4
    assert (s.cases_per_problem, s.cases_per_problem_without_dedup) == (1.0, 1.5)
    wide = score(reports, found, 400, 200 * H, [1])
    assert (wide.found, wide.true_positives) == (4, 2)  # c, d, f as well: recall 1, precision 0.5


def test_tuning_looks_only_at_the_tuning_months() -> None:
    # January: duplicates are 8 m apart; May: 150 m apart. Tuning on January must not pick 200 m.
    jan = [rep("j1", 0, 0), rep("j2", 1, 8, marked=True), rep("j3", 2, 150)]
    may = [rep("m1", 3000, 0, month=5), rep("m2", 3001, 150, month=5, marked=True)]
    reports = jan + may
    radius, window, in_sample = tune(reports, candidates(reports, 400, 720 * H), months=[1])
    assert radius < 150 and in_sample.f1 == 1.0
    assert score(reports, candidates(reports, 400, 720 * H), radius, window, [5]).recall == 0.0


def test_queue_load_counts_per_day_peak_hour_and_inspectors() -> None:
    queued = [rep(str(i), i * 0.25, 0, hour=10 if i < 6 else 15, day="2015-05-01" if i < 8 else "2015-05-02")
              for i in range(10)]
    q = queue_load(queued, days=2, minutes=24, shift_hours=8)
    assert (q.reports, q.per_day, q.peak_hour, q.peak_hour_per_day) == (10, 5.0, 10, 3.0)
    assert q.busiest_hour_seen == 4  # four reports a quarter of an hour apart in one clock hour
    assert q.inspectors == pytest.approx(5 * 24 / 480)
    assert queue_load([], days=3, minutes=20, shift_hours=8).per_day == 0


def test_load_keeps_located_rows_and_reads_the_markers(tmp_path: Path) -> None:
    header = "CASE_ENQUIRY_ID,OPEN_DT,CLOSURE_REASON,TYPE,SubmittedPhoto,LATITUDE,LONGITUDE,Source\n"
    rows = [
        "1,05/04/2015 09:15:00 AM,Case Closed Case Resolved,Pothole,,42.3500,-71.0600,Citizens Connect App",
        "2,05/04/2015 10:15:00 AM,Case Closed Duplicate of Existing Case,Pothole,http://x/p.jpg,42.3500,-71.0600,"
        "Constituent Call",
        "3,05/04/2015 11:00:00 AM,Case Closed Case Invalid,Pothole,,42.3594,-71.0587,Self Service",  # City Hall
    ]
    path = tmp_path / "b.csv.gz"
    with gzip.open(path, "wt") as f:
        f.write(header + "\n".join(rows) + "\n")
    reports, unlocated = load(path)
    assert unlocated == 1 and [r.rid for r in reports] == ["1", "2"]
    assert [r.marked_duplicate for r in reports] == [False, True] and reports[1].has_photo
    assert (reports[0].month, reports[0].hour, reports[0].day) == (5, 9, "2015-05-04")
