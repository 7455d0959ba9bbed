"""``gridsentinel bench intake``: Boston 311 replayed through the citizen intake's pure logic.

Every located request (shared/datasets/civic) is a report at its ``OPEN_DT`` and point, of its ``TYPE``:

- **Duplicates** as the case stage would find them: a report is a duplicate when an earlier report of the
  same type lies within ``radius`` metres and ``window`` before it (the case it opened is still the open
  case of that spot). Compared with the dataset's own markers: a ``CLOSURE_REASON`` that mentions
  "duplicate" (precision and recall), and cases per distinct problem (cases opened / (reports - marked
  duplicates); 1.0 = one case per problem).
- **Quality** (:func:`gridsentinel.cases.quality.assess`) on the citizen channels (``Citizens Connect App``,
  ``Self Service``, ``Twitter``): the open data has neither photos (only a link to one, ``SubmittedPhoto``)
  nor account or device ids, so the location, near-duplicate-photo and per-account checks have nothing to
  read; the decisions and reasons are counted as they come out.
- **Inspector load** of a verification queue: reports per day to verify, the busiest hour, and inspectors
  needed at ``--minutes`` each per ``--shift-hours`` shift, for the queue the checks make and for the
  queue of the old way (every citizen report checked by an inspector), with the share the city itself
  closed as invalid (what a check can hope to catch).

Thresholds (radius, window) are tuned on January–April only (best F1 against the markers); May–September is
the headline, January–April is reported as in-sample.
"""

from __future__ import annotations

import argparse
import bisect
import csv
import gzip
import math
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gridsentinel.analytics.civic import UNLOCATED_POINT
from gridsentinel.analytics.sources import BOSTON_TZ, CIVIC_FILE
from gridsentinel.bench.common import emit
from gridsentinel.cases.quality import NewReport, QualityConfig, assess, haversine_m
from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings

CITIZEN_SOURCES = frozenset({"Citizens Connect App", "Self Service", "Twitter"})
RADII_M = (5.0, 10.0, 25.0, 50.0, 100.0, 200.0, 400.0)
WINDOWS_H = (1.0, 6.0, 24.0, 72.0, 168.0, 336.0, 720.0)
TUNE_MONTHS = (1, 2, 3, 4)
TEST_MONTHS = (5, 6, 7, 8, 9)


@dataclass(frozen=True, slots=True)
class Report:
    """One located Boston request as the intake sees it."""

    rid: str
    at: float  # Unix seconds
    lat: float
    lon: float
    category: str
    source: str
    month: int
    hour: int  # local hour of day
    day: str  # local date, ISO
    marked_duplicate: bool  # the city closed it as a duplicate
    marked_invalid: bool  # the city closed it as invalid
    has_photo: bool  # the request links a photo (the bytes are not in the data)


@dataclass(frozen=True, slots=True)
class Candidate:
    """An earlier report of the same category near a report: how long before, how far."""

    dt_s: float
    dist_m: float


def load(path: Path) -> tuple[list[Report], int]:
    """Located requests, oldest first, and the count of unlocated ones (City Hall's default point)."""
    file = path / CIVIC_FILE if path.is_dir() else path
    if not file.is_file():
        raise GridSentinelError(f"{file}: not found (expected the civic dataset folder holding {CIVIC_FILE})")
    tz = ZoneInfo(BOSTON_TZ)
    out: list[Report] = []
    unlocated = 0
    with gzip.open(file, "rt", newline="") if file.suffix == ".gz" else open(file, newline="") as fh:
        for row in csv.DictReader(fh):
            try:
                lat, lon = float(row["LATITUDE"]), float(row["LONGITUDE"])
            except ValueError:
                unlocated += 1
                continue
            if (round(lat, 4), round(lon, 4)) == UNLOCATED_POINT or (lat == 0 and lon == 0):
                unlocated += 1
                continue
            local = datetime.strptime(row["OPEN_DT"], "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=tz)
            closure = row["CLOSURE_REASON"].lower()
            out.append(Report(row["CASE_ENQUIRY_ID"], local.timestamp(), lat, lon, row["TYPE"], row["Source"],
                              local.month, local.hour, local.date().isoformat(), "duplicate" in closure,
                              "invalid" in closure, bool(row["SubmittedPhoto"].strip())))
    out.sort(key=lambda r: (r.at, r.rid))
    return out, unlocated


def candidates(reports: Sequence[Report], max_radius_m: float, max_window_s: float) -> list[list[Candidate]]:
    """For each report (in time order), the earlier reports of its category within the largest radius and
    window: computed once, then every (radius, window) pair is a filter over them.

    >>> a = Report("a", 0.0, 42.35, -71.06, "Pothole", "x", 1, 0, "d", False, False, False)
    >>> b = Report("b", 600.0, 42.3501, -71.06, "Pothole", "x", 1, 0, "d", True, False, False)
    >>> c = Report("c", 700.0, 42.3501, -71.06, "Graffiti", "x", 1, 0, "d", False, False, False)
    >>> [[(round(x.dt_s), round(x.dist_m)) for x in found] for found in candidates([a, b, c], 100, 3600)]
    [[], [(600, 11)], []]
    """
    cell_deg = max_radius_m / 111_000  # a latitude degree is ~111 km; longitude cells are narrower: safe
    by_cell: dict[tuple[str, int, int], list[tuple[float, float, float]]] = defaultdict(list)
    out: list[list[Candidate]] = []
    for r in reports:
        i, j = int(math.floor(r.lat / cell_deg)), int(math.floor(r.lon / cell_deg))
        found: list[Candidate] = []
        for di in (-1, 0, 1):
            for dj in range(-2, 3):  # a longitude degree is shorter: look one more cell each way
                bucket = by_cell.get((r.category, i + di, j + dj))
                if not bucket:
                    continue
                start = bisect.bisect_left(bucket, (r.at - max_window_s, -math.inf, -math.inf))
                for at, lat, lon in bucket[start:]:
                    dist = haversine_m(lat, lon, r.lat, r.lon)
                    if dist <= max_radius_m and at <= r.at:
                        found.append(Candidate(r.at - at, dist))
        out.append(found)
        by_cell[(r.category, i, j)].append((r.at, r.lat, r.lon))
    return out


@dataclass(frozen=True, slots=True)
class DedupScore:
    """Found duplicates against the dataset's markers, and cases per distinct problem."""

    reports: int
    marked: int
    found: int
    true_positives: int
    precision: float
    recall: float
    f1: float
    cases_per_problem: float  # cases opened / distinct problems (reports - marked duplicates)
    cases_per_problem_without_dedup: float

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in
                ((f, getattr(self, f)) for f in self.__slots__)}


def score(reports: Sequence[Report], found: Sequence[Sequence[Candidate]], radius_m: float, window_s: float,
          months: Iterable[int]) -> DedupScore:
    """Precision/recall of "has an earlier report within radius and window" against the markers, on the
    reports of ``months`` (earlier months still count as the earlier report).

    >>> a = Report("a", 0.0, 42.35, -71.06, "P", "x", 1, 0, "d", False, False, False)
    >>> b = Report("b", 600.0, 42.35, -71.06, "P", "x", 1, 0, "d", True, False, False)
    >>> c = Report("c", 9000.0, 42.35, -71.06, "P", "x", 1, 0, "d", True, False, False)
    >>> s = score([a, b, c], candidates([a, b, c], 50, 86400), 50, 3600, [1])
    >>> s.found, s.true_positives, s.precision, s.recall, s.cases_per_problem
    (1, 1, 1.0, 0.5, 2.0)
    """
    wanted = set(months)
    n = marked = hit = tp = 0
    for r, cands in zip(reports, found, strict=True):
        if r.month not in wanted:
            continue
        n += 1
        dup = any(c.dt_s <= window_s and c.dist_m <= radius_m for c in cands)
        marked += r.marked_duplicate
        hit += dup
        tp += dup and r.marked_duplicate
    precision = tp / hit if hit else 0.0
    recall = tp / marked if marked else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    problems = max(n - marked, 1)
    return DedupScore(n, marked, hit, tp, precision, recall, f1, (n - hit) / problems, n / problems)


def tune(reports: Sequence[Report], found: Sequence[Sequence[Candidate]],
         months: Iterable[int] = TUNE_MONTHS) -> tuple[float, float, DedupScore]:
    """The (radius m, window s) of :data:`RADII_M` x :data:`WINDOWS_H` with the best F1 on ``months``."""
    tune_months = tuple(months)
    best: tuple[float, float, DedupScore] | None = None
    for radius in RADII_M:
        for hours in WINDOWS_H:
            s = score(reports, found, radius, hours * 3600, tune_months)
            if best is None or s.f1 > best[2].f1:
                best = (radius, hours * 3600, s)
    assert best is not None
    return best


@dataclass(frozen=True, slots=True)
class QueueLoad:
    """How a verification queue of ``per_day`` reports a day loads an inspector team."""

    days: int
    reports: int
    per_day: float
    peak_hour: int  # local hour of day with the most reports to verify (on average)
    peak_hour_per_day: float  # reports in that hour on an average day
    busiest_hour_seen: int  # the most reports that arrived in one clock hour
    inspectors: float  # inspectors busy a full shift: per_day * minutes / (shift hours * 60)

    def as_dict(self) -> dict[str, Any]:
        return {k: round(v, 2) if isinstance(v, float) else v for k, v in
                ((f, getattr(self, f)) for f in self.__slots__)}


def queue_load(queued: Sequence[Report], days: int, minutes: float, shift_hours: float) -> QueueLoad:
    """The load of verifying ``queued`` (reports over ``days`` days) at ``minutes`` each.

    >>> rs = [Report(str(i), 3600.0 * i, 0, 0, "P", "x", 5, h, "2015-05-01", False, False, False)
    ...       for i, h in enumerate([9, 9, 9, 14])]
    >>> q = queue_load(rs, days=2, minutes=30, shift_hours=8)
    >>> q.per_day, q.peak_hour, q.peak_hour_per_day, q.busiest_hour_seen, q.inspectors
    (2.0, 9, 1.5, 1, 0.125)
    """
    by_hour = Counter(r.hour for r in queued)
    by_clock_hour = Counter((r.day, int(r.at // 3600)) for r in queued)
    peak_hour, peak = by_hour.most_common(1)[0] if by_hour else (0, 0)
    per_day = len(queued) / max(days, 1)
    return QueueLoad(days, len(queued), per_day, peak_hour, peak / max(days, 1),
                     max(by_clock_hour.values(), default=0), per_day * minutes / (shift_hours * 60))


def assess_citizen(reports: Sequence[Report], cfg: QualityConfig) -> tuple[list[Report], Counter[str]]:
    """The quality decision on each citizen-channel report (no photo bytes, no accounts in the data):
    the reports sent to verification, and how often each reason came up."""
    queued: list[Report] = []
    reasons: Counter[str] = Counter()
    for r in reports:
        a = assess(NewReport(r.rid, r.at, r.lat, r.lon, r.category), None, [], cfg)
        reasons.update(x.code for x in a.reasons)
        if a.decision == "verify":
            queued.append(r)
    return queued, reasons


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help=f"the civic dataset folder (holding {CIVIC_FILE}) or the file itself")
    parser.add_argument("--minutes", type=float, default=20.0,
                        help="inspector minutes to verify one report on site (default 20)")
    parser.add_argument("--shift-hours", type=float, default=8.0, help="an inspector's shift (default 8)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _days(reports: Sequence[Report]) -> int:
    return len({r.day for r in reports})


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    t0 = time.perf_counter()
    _progress(f"loading {args.data} ...")
    reports, unlocated = load(args.data)
    _progress(f"  {len(reports)} located requests ({unlocated} unlocated, left out) in "
              f"{time.perf_counter() - t0:.1f} s; finding nearby earlier reports ...")
    found = candidates(reports, max(RADII_M), max(WINDOWS_H) * 3600)
    _progress(f"  done in {time.perf_counter() - t0:.1f} s; tuning radius and window on Jan-Apr ...")
    radius, window, in_sample = tune(reports, found)
    headline = score(reports, found, radius, window, TEST_MONTHS)
    # not used to choose: how flat the landscape is on the held-out months, and the recall any
    # (radius, window) in the grid could reach (a marked duplicate with no same-type report near it before)
    sensitivity = [{"radius_m": rad, "window_h": hours,
                    **{k: v for k, v in score(reports, found, rad, hours * 3600, TEST_MONTHS).as_dict().items()
                       if k in ("found", "precision", "recall", "f1")}}
                   for rad in RADII_M for hours in WINDOWS_H]
    ceiling = score(reports, found, max(RADII_M), max(WINDOWS_H) * 3600, TEST_MONTHS).recall
    _progress(f"  radius {radius:.0f} m, window {window / 3600:g} h; quality checks on the citizen channels ...")
    cfg = QualityConfig()
    test = [r for r in reports if r.month in TEST_MONTHS]
    test_dups = {id(r) for r, c in zip(reports, found, strict=True) if r.month in TEST_MONTHS
                 and any(x.dt_s <= window and x.dist_m <= radius for x in c)}
    citizen = [r for r in test if r.source in CITIZEN_SOURCES]
    queued, reasons = assess_citizen(citizen, cfg)
    days = _days(test)
    checked_all = [r for r in citizen if id(r) not in test_dups]  # the old way: an inspector checks each one
    by_source = Counter(r.source for r in test)
    result: dict[str, Any] = {
        "benchmark": "intake",
        "data": str(args.data),
        "located": len(reports), "unlocated": unlocated,
        "photos_in_data": False,
        "dedup": {
            "tuned_on": "2015-01..04", "radius_m": radius, "window_h": window / 3600,
            "grid": {"radii_m": list(RADII_M), "windows_h": list(WINDOWS_H)},
            "headline_2015_05_09": headline.as_dict(), "in_sample_2015_01_04": in_sample.as_dict(),
            "recall_ceiling_2015_05_09": round(ceiling, 4), "sensitivity_2015_05_09": sensitivity,
        },
        "quality_2015_05_09": {
            "citizen_reports": len(citizen), "by_source": dict(by_source),
            "to_verification": len(queued),
            "share_to_verification": round(len(queued) / max(len(citizen), 1), 4),
            "reasons": dict(reasons),
            "citizen_with_photo_link": sum(r.has_photo for r in citizen),
            "citizen_closed_invalid": sum(r.marked_invalid for r in citizen),
        },
        "inspector_load_2015_05_09": {
            "minutes_per_report": args.minutes, "shift_hours": args.shift_hours,
            "quality_queue": queue_load(queued, days, args.minutes, args.shift_hours).as_dict(),
            "every_citizen_report_checked": queue_load(checked_all, days, args.minutes, args.shift_hours).as_dict(),
        },
        "seconds": round(time.perf_counter() - t0, 1),
    }
    emit(result, args.json, _text(result))
    return 0


def _text(r: dict[str, Any]) -> str:
    d, q, load_ = r["dedup"], r["quality_2015_05_09"], r["inspector_load_2015_05_09"]
    h, i = d["headline_2015_05_09"], d["in_sample_2015_01_04"]
    old, new = load_["every_citizen_report_checked"], load_["quality_queue"]
    lines = [
        f"Boston 311 replayed through the intake: {r['located']} located requests ({r['unlocated']} unlocated "
        "left out); no photo bytes in the data (only links), no account or device ids",
        f"Duplicates (same TYPE within {d['radius_m']:.0f} m and {d['window_h']:g} h, tuned on Jan-Apr by F1 "
        "against CLOSURE_REASON mentioning 'duplicate'):",
    ]
    for name, s in (("May-Sep (headline)", h), ("Jan-Apr (in-sample)", i)):
        lines.append(f"  {name:<20} {s['reports']} reports, marked {s['marked']}, found {s['found']}, "
                     f"precision {s['precision']:.1%}, recall {s['recall']:.1%}, F1 {s['f1']:.3f}; cases per "
                     f"distinct problem {s['cases_per_problem']:.3f} (without dedup "
                     f"{s['cases_per_problem_without_dedup']:.3f})")
    lines.append(f"  recall ceiling of the grid (any same-TYPE report within {max(RADII_M):.0f} m and "
                 f"{max(WINDOWS_H):g} h before): {d['recall_ceiling_2015_05_09']:.1%}")
    lines += [
        f"Quality checks, May-Sep citizen channels ({q['citizen_reports']} reports: app, self service, Twitter): "
        f"{q['to_verification']} to verification ({q['share_to_verification']:.1%}); reasons "
        + ", ".join(f"{k} {v}" for k, v in sorted(q["reasons"].items())),
        f"  {q['citizen_with_photo_link']} link a photo the data does not hold; {q['citizen_closed_invalid']} "
        f"({q['citizen_closed_invalid'] / max(q['citizen_reports'], 1):.1%}) were closed by the city as invalid",
        f"Inspector load at {load_['minutes_per_report']:g} min a report, {load_['shift_hours']:g} h shifts:",
        f"  every citizen report checked (not duplicates): {old['per_day']:.1f}/day, peak hour {old['peak_hour']}:00 "
        f"({old['peak_hour_per_day']:.1f}/day in it, busiest single hour {old['busiest_hour_seen']}), "
        f"{old['inspectors']:.1f} inspectors",
        f"  the quality queue: {new['per_day']:.1f}/day, {new['inspectors']:.1f} inspectors",
        f"({r['seconds']} s)",
    ]
    return "\n".join(lines)
