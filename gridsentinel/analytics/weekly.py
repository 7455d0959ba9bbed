"""The weekly coordination report: one week's figures as HTML (one Jinja2 template), and PDF from that HTML.

:func:`build` turns a :class:`~gridsentinel.analytics.sources.Dataset` and an ISO week into a plain
:class:`Report` (every figure computed here, none in the template); :func:`render_html` fills
``templates/weekly.html.j2``. Sections: headline figures; new and closed per day (the week and the three
before it); a hotspot map of the week's problems by cell; forecast against actual for the week (the
hotspot forecaster trained only on the days before the week) and next week's forecast top cells; cases
stuck between departments with their history; escalations and refusals; the selective-reporting flags
with their reasoning; performance per department and per center.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holiday_lib
import numpy as np
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup

from gridsentinel.analytics import charts
from gridsentinel.analytics.civic import Request
from gridsentinel.analytics.forecast import HORIZON, MIN_TRAIN_HISTORY, BoostedPoisson, LastWeek, build_history
from gridsentinel.analytics.grid import Grid
from gridsentinel.analytics.performance import (
    CLOSING_ACTIONS,
    REFUSAL_ACTIONS,
    CaseRecord,
    GroupFigures,
    figures,
    was_overdue,
)
from gridsentinel.analytics.reporting_index import DEFAULT_FDR, UnitResult, assess_units, flags, tally
from gridsentinel.analytics.rolling import hit_rate
from gridsentinel.analytics.sources import Dataset
from gridsentinel.errors import GridSentinelError

TEMPLATES = Path(__file__).with_name("templates")
TREND_WEEKS = 4  # the trend chart shows the week and the three before it
INDEX_WEEKS = 4  # the selective-reporting index counts the four weeks ending with the report's week
HISTORY_WEEKS = 16  # how far back a report loads cases (trend, forecast training, stuck cases)
TOP_CELLS = 10
STUCK_ROWS = 25


# (GroupFigures attribute, heading); a column whose every value is None (not recorded) is left out.
PERF_COLUMNS = (("cases", "cases"), ("resolved", "resolved"), ("dispatch_median_h", "dispatch median h"),
                ("dispatch_p90_h", "dispatch p90 h"),
                ("resolve_median_h", "resolve median h"), ("resolve_p90_h", "resolve p90 h"),
                ("overdue_share", "overdue"), ("rework", "rework"), ("escalations_sent", "escalations sent"),
                ("escalations_received", "escalations received"), ("refusals", "refusals"))


class ReportError(GridSentinelError):
    """A report cannot be made as asked (bad week, empty data, no Chromium for the PDF)."""


def parse_week(text: str) -> date:
    """The Monday of an ISO week ``YYYY-Www``.

    >>> parse_week("2015-W36")
    datetime.date(2015, 8, 31)
    """
    try:
        year, week = text.split("-W")
        monday = date.fromisocalendar(int(year), int(week), 1)
    except ValueError as exc:
        raise ReportError(f"--week {text!r}: expected an ISO week like 2015-W36") from exc
    if not 1971 <= monday.year <= 9998:  # the report reads months before the week and one after
        raise ReportError(f"--week {text!r}: expected a year between 1971 and 9998")
    return monday


def iso_week(day: date) -> str:
    y, w, _ = day.isocalendar()
    return f"{y}-W{w:02d}"


def week_bounds(monday: date, tz: str) -> tuple[float, float]:
    zone = ZoneInfo(tz)
    start = datetime(monday.year, monday.month, monday.day, tzinfo=zone)
    nxt = monday + timedelta(days=7)
    return start.timestamp(), datetime(nxt.year, nxt.month, nxt.day, tzinfo=zone).timestamp()


@dataclass
class Figure:
    label: str
    value: str
    note: str = ""


@dataclass
class StuckCase:
    case_id: str
    title: str
    where: str
    departments: list[str]
    opened: str
    overdue_days: float | None
    why: str
    history: list[str]


@dataclass
class IndexLevel:
    level: str
    tested: int
    not_tested: int
    flagged: list[UnitResult]


@dataclass
class Report:
    title: str
    week: str
    period: str
    source: str
    as_of: str
    complete: bool
    center: str | None
    headline: list[Figure]
    trend_svg: Markup
    hotspot_svg: Markup
    hotspot_top: list[dict[str, Any]]
    forecast_svg: Markup | None
    forecast_note: str
    forecast_scores: list[Figure]
    next_week: list[dict[str, Any]]
    next_week_note: str
    stuck: list[StuckCase]
    stuck_note: str
    escalations: list[dict[str, str]]
    escalations_recorded: bool
    refusals: list[dict[str, str]] | None
    refusals_note: str
    index_levels: list[IndexLevel]
    index_window: str
    fdr: float
    people_word: str
    machine_word: str
    departments: list[GroupFigures]
    centers: list[GroupFigures]
    total: GroupFigures
    perf_columns: list[tuple[str, str]]  # (GroupFigures attribute, heading), recorded ones only
    hidden_columns: list[str]
    notes: list[str] = field(default_factory=list)


def _fmt_time(ts: float, zone: ZoneInfo, with_day: bool = True) -> str:
    return datetime.fromtimestamp(ts, zone).strftime("%a %d %b %H:%M" if with_day else "%H:%M")


def _history_lines(record: CaseRecord, zone: ZoneInfo, as_of: float) -> list[str]:
    lines = [f"{_fmt_time(record.opened_at, zone)} opened"]
    for e in record.events_until(as_of):
        if e.action in ("open", "evidence", "remind", "acknowledge", "raise_severity"):  # "opened" is line 1
            continue
        text = f"{_fmt_time(e.at, zone)} {e.action}"
        if e.action == "dispatch" and e.data.get("department"):
            text += f" → {e.data['department']}"
        if e.action == "escalate":
            text += f" {e.data.get('from_center', '?')} → {e.data.get('center', '?')}"
        if e.action in REFUSAL_ACTIONS and e.data.get("department"):
            text += f" by {e.data['department']}"
        if e.data.get("due_at") is not None:
            text += f" (due {_fmt_time(float(e.data['due_at']), zone)})"
        lines.append(text)
    return lines


def _stuck(records: Sequence[CaseRecord], as_of: float, zone: ZoneInfo) -> tuple[list[StuckCase], int]:
    """Active cases past due that moved between departments or centers (escalated, refused, re-dispatched)."""
    out: list[tuple[float, StuckCase]] = []
    open_late = 0
    for r in records:
        if r.opened_at >= as_of or (r.closed_at is not None and r.closed_at < as_of):
            continue
        events = r.events_until(as_of)
        if any(e.action in CLOSING_ACTIONS for e in events) and not any(e.action == "reopen" for e in events):
            continue
        if not was_overdue(r, as_of):
            continue
        open_late += 1
        depts = list(dict.fromkeys(str(e.data["department"]) for e in events
                                   if e.action == "dispatch" and e.data.get("department")))
        escalations = sum(e.action == "escalate" for e in events)
        refusals = sum(e.action in REFUSAL_ACTIONS for e in events)
        why = []
        if len(depts) > 1:
            why.append(f"{len(depts)} departments")
        if escalations:
            why.append(f"escalated {escalations}x")
        if refusals:
            why.append(f"refused {refusals}x")
        if not why:
            continue
        dues = [float(e.data["due_at"]) for e in events if e.data.get("due_at") is not None]
        due = dues[-1] if dues else r.due_at
        overdue = (as_of - due) / 86400 if due is not None and due < as_of else None
        out.append((r.opened_at, StuckCase(r.case_id, r.title or r.category, r.grid_code or r.center,
                                           depts or [r.department or "-"], _fmt_time(r.opened_at, zone),
                                           None if overdue is None else round(overdue, 1), ", ".join(why),
                                           _history_lines(r, zone, as_of))))
    out.sort(key=lambda t: t[0])
    return [s for _, s in out], open_late


def _local_day(ts: float, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(ts, zone).date()


def _forecast(data: Dataset, monday: date, complete: bool, grid: Grid, holiday_country: tuple[str, str | None],
              zone: ZoneInfo) -> tuple[Markup | None, str, list[Figure], list[dict[str, Any]], str]:
    families = data.families or sorted({p.family for p in data.located})
    if not data.located or not families:
        return None, "no located problems: nothing to forecast", [], [], "no located problems"
    requests = [Request(_local_day(p.opened_at, zone), p.lat, p.lon, p.family) for p in data.located]
    first = min(r.day for r in requests)
    last = monday + timedelta(days=6)
    years = range(first.year, last.year + 2)
    hol = holiday_lib.country_holidays(holiday_country[0], subdiv=holiday_country[1], years=years)
    history = build_history(requests, grid, families, first, last, hol.keys())
    origin = (monday - first).days
    svg: Markup | None = None
    scores: list[Figure] = []
    if origin < MIN_TRAIN_HISTORY:
        note = (f"not available: {max(origin, 0)} days of history before the week (the forecaster needs "
                f"{MIN_TRAIN_HISTORY})")
    else:
        past = history.until(origin)
        cells = past.seen_cells()
        fc = BoostedPoisson().forecast(past, cells).sum(axis=(0, 2))
        naive = LastWeek().forecast(past, cells).sum(axis=(0, 2))
        actual_all = history.counts[:, :, origin:origin + HORIZON].sum(axis=(0, 2))
        actual = actual_all[cells]
        outside = float(actual_all.sum() - actual.sum())
        err = {history.cells[c]: float(actual[i] - fc[i]) for i, c in enumerate(cells) if actual[i] or fc[i] >= 0.5}
        svg = Markup(charts.cell_map(err, diverging=True, title="actual minus forecast per cell"))
        days_seen = min(HORIZON, history.days - origin)
        h10, n10 = hit_rate(fc, actual, 0.10, outside), hit_rate(naive, actual, 0.10, outside)
        scores = [
            Figure("forecast for the week", f"{fc.sum():.0f}", f"actual {actual_all.sum():.0f} located problems"
                   + ("" if complete else f" in the first {days_seen} days")),
            Figure("hit rate, top 10 % of cells", "n/a" if math.isnan(h10) else f"{h10:.0%}",
                   f"last-week baseline {'n/a' if math.isnan(n10) else f'{n10:.0%}'}"),
            Figure("mean absolute error per cell", f"{float(np.abs(actual - fc).mean()):.2f}",
                   f"{len(cells)} cells seen before the week"),
        ]
        note = (f"Trained only on the {origin} days before {monday.isoformat()}; red cells had more problems than "
                "forecast, blue fewer. The numbered cells are the largest errors.")
    next_rows: list[dict[str, Any]] = []
    if not complete:
        next_note = "available when the week is over (a forecast from a partial week would undercount)"
    elif history.days < MIN_TRAIN_HISTORY:
        next_note = f"not available: {history.days} days of history (the forecaster needs {MIN_TRAIN_HISTORY})"
    else:
        cells = history.seen_cells()
        nxt = BoostedPoisson().forecast(history, cells)  # [family, cell, 7]
        per_cell = nxt.sum(axis=(0, 2))
        order = np.argsort(-per_cell, kind="stable")[:TOP_CELLS]
        for rank, i in enumerate(order, 1):
            cell = history.cells[int(cells[i])]
            lat, lon = grid.centre(cell)
            fam_i = int(np.argmax(nxt[:, i, :].sum(axis=1)))
            next_rows.append({"rank": rank, "cell": f"{cell[0]},{cell[1]}", "lat": f"{lat:.4f}",
                              "lon": f"{lon:.4f}", "expected": f"{per_cell[i]:.1f}", "family": families[fam_i],
                              "family_expected": f"{nxt[fam_i, i, :].sum():.1f}"})
        next_note = (f"Expected located problems in {iso_week(monday + timedelta(days=7))} per cell "
                     f"({grid.cell_m:.0f} m), from all {history.days} days up to the end of this week.")
    return svg, note, scores, next_rows, next_note


def build(data: Dataset, monday: date, *, as_of: float, center: str | None = None, cell_m: float = 500.0,
          fdr: float = DEFAULT_FDR, forecast: bool = True) -> Report:
    """Every figure of the report for the ISO week starting ``monday`` (judged at ``as_of``)."""
    zone = ZoneInfo(data.tz)
    start, end = week_bounds(monday, data.tz)
    as_of = min(as_of, end)
    if as_of <= start:
        raise ReportError(f"week {iso_week(monday)} has not started yet (as of "
                          f"{datetime.fromtimestamp(as_of, zone):%Y-%m-%d %H:%M})")
    complete = as_of >= end
    records = data.records
    in_week = [r for r in records if start <= r.opened_at < as_of]
    closed_in_week = [r for r in records if r.closed_at is not None and start <= r.closed_at < as_of]

    # Trend: new and closed per local day over the week and the three before it.
    first_day = monday - timedelta(days=7 * (TREND_WEEKS - 1))
    days = [first_day + timedelta(days=i) for i in range(7 * TREND_WEEKS)]
    new_per_day = Counter(_local_day(r.opened_at, zone) for r in records if r.opened_at < as_of)
    closed_per_day = Counter(_local_day(r.closed_at, zone) for r in records
                             if r.closed_at is not None and r.closed_at < as_of)
    last_day = _local_day(as_of - 1, zone)
    shown = [d for d in days if d <= last_day]
    trend = charts.line_chart([d.strftime("%d %b") for d in shown],
                              {"new": [new_per_day[d] for d in shown], "closed": [closed_per_day[d] for d in shown]},
                              shade_from=7 * (TREND_WEEKS - 1), title="new and closed cases per day")

    # Hotspots of the week.
    ref = data.grid_ref or ((data.located[0].lat, data.located[0].lon) if data.located else (0.0, 0.0))
    grid = Grid(ref[0], ref[1], cell_m)
    week_cells: Counter[tuple[int, int]] = Counter(grid.cell(p.lat, p.lon) for p in data.located
                                                   if start <= p.opened_at < as_of)
    fam_by_cell: dict[tuple[int, int], Counter[str]] = defaultdict(Counter)
    for p in data.located:
        if start <= p.opened_at < as_of:
            fam_by_cell[grid.cell(p.lat, p.lon)][p.family] += 1
    hotspot_top = []
    for rank, (cell, n) in enumerate(week_cells.most_common(5), 1):
        lat, lon = grid.centre(cell)
        fam, fam_n = fam_by_cell[cell].most_common(1)[0]
        hotspot_top.append({"rank": rank, "cell": f"{cell[0]},{cell[1]}", "count": n, "lat": f"{lat:.4f}",
                            "lon": f"{lon:.4f}", "family": f"{fam} ({fam_n})"})
    hotspot = charts.cell_map(dict(week_cells), title="problems per cell this week", unit=" problems")

    if forecast:  # two model fits: the slow part of a report (tens of seconds on a city's year)
        fc_svg, fc_note, fc_scores, next_rows, next_note = _forecast(data, monday, complete, grid, data.holidays,
                                                                     zone)
    else:
        fc_svg, fc_scores, next_rows = None, [], []
        fc_note = next_note = "not computed (the report was asked for without the forecast)"

    stuck, open_late = _stuck(records, as_of, zone)
    stuck_note = (f"{open_late} active cases were past a deadline at the end of the period; "
                  f"{len(stuck)} of them had moved between departments or centers (listed, oldest first).")
    if not data.escalations_recorded:
        stuck_note += (" This source records one department per case and no escalation, so no case can be seen "
                       "moving between departments.")

    escalations = []
    refusals: list[dict[str, str]] | None = [] if data.refusals_recorded else None
    for r in records:
        for e in r.events:
            if not start <= e.at < as_of:
                continue
            if e.action == "escalate":
                escalations.append({"case": r.case_id, "at": _fmt_time(e.at, zone), "title": r.title or r.category,
                                    "from": str(e.data.get("from_center", "")), "to": str(e.data.get("center", "")),
                                    "note": f"overdue since {_fmt_time(float(e.data['overdue_since']), zone)}"
                                    if e.data.get("overdue_since") is not None else ""})
            elif e.action in REFUSAL_ACTIONS and refusals is not None:
                refusals.append({"case": r.case_id, "at": _fmt_time(e.at, zone),
                                 "department": str(e.data.get("department", r.department or "")),
                                 "reason": str(e.data.get("reason", ""))})
    escalations.sort(key=lambda x: x["at"])
    refusals_note = ("" if data.refusals_recorded else
                     "not recorded: the case workflow has no refusal action yet, so departmental refusals cannot "
                     "be counted (they will be once a case's history records a `refused` event)")

    # Selective-reporting index over the last INDEX_WEEKS weeks.
    index_start = start - 7 * 86400 * (INDEX_WEEKS - 1)
    levels = []
    for level, observations in data.observations.items():
        window = [o for at, o in observations if index_start <= at < as_of]
        results = assess_units(tally(window), fdr=fdr, people_word=data.people_word, machine_word=data.machine_word)
        tested = sum(r.tested for r in results)
        levels.append(IndexLevel(level, tested, len(results) - tested, flags(results)))
    index_window = (f"{_local_day(index_start, zone).isoformat()} to {last_day.isoformat()} "
                    f"({INDEX_WEEKS} weeks ending with this one)")

    recorded = {"refusals_recorded": data.refusals_recorded, "rework_recorded": data.rework_recorded,
                "escalations_recorded": data.escalations_recorded}
    departments = figures(records, "department", start=start, end=end, as_of=as_of, **recorded)
    centers = figures(records, "center", start=start, end=end, as_of=as_of, **recorded)
    overall = figures(records, "all", start=start, end=end, as_of=as_of, **recorded)
    total = overall[0] if overall else GroupFigures("all")

    rows = [*departments, *centers, total]
    columns = [(k, label) for k, label in PERF_COLUMNS if any(getattr(g, k) is not None for g in rows)]
    hidden = [label for k, label in PERF_COLUMNS if (k, label) not in columns]
    flagged = sum(len(lv.flagged) for lv in levels)
    headline = [
        Figure("new cases", str(len(in_week))),
        Figure("closed", str(len(closed_in_week))),
        Figure("overdue share", "-" if total.overdue_share is None else f"{total.overdue_share:.0%}",
               f"{total.overdue} of {total.with_deadline} with a deadline"),
        Figure("median time to resolve", "-" if total.resolve_median_h is None else f"{total.resolve_median_h:.1f} h"),
        Figure("stuck between departments", str(len(stuck)), f"of {open_late} active and overdue"),
        Figure("escalations", str(len(escalations)) if data.escalations_recorded else "not recorded"),
        Figure("refusals", "not recorded" if refusals is None else str(len(refusals))),
        Figure("selective-reporting flags", str(flagged), f"FDR q = {fdr:g}"),
    ]
    period = (f"{monday.strftime('%a %d %b %Y')} to {(monday + timedelta(days=6)).strftime('%a %d %b %Y')} "
              f"({data.tz})")
    return Report(
        title=f"Weekly coordination report {iso_week(monday)}", week=iso_week(monday), period=period,
        source=data.name, as_of=datetime.fromtimestamp(as_of, zone).strftime("%Y-%m-%d %H:%M"),
        complete=complete, center=center, headline=headline, trend_svg=Markup(trend),
        hotspot_svg=Markup(hotspot), hotspot_top=hotspot_top, forecast_svg=fc_svg, forecast_note=fc_note,
        forecast_scores=fc_scores, next_week=next_rows, next_week_note=next_note, stuck=stuck[:STUCK_ROWS],
        stuck_note=stuck_note, escalations=escalations, escalations_recorded=data.escalations_recorded,
        refusals=refusals, refusals_note=refusals_note,
        index_levels=levels, index_window=index_window, fdr=fdr, people_word=data.people_word,
        machine_word=data.machine_word, departments=departments, centers=centers, total=total,
        perf_columns=columns, hidden_columns=hidden,
        notes=list(data.notes))


def _cell(group: GroupFigures, key: str) -> str:
    """One performance figure as shown: hours with one decimal, shares in %, "-" when there is none."""
    value = getattr(group, key)
    if value is None:
        return "-"
    if key.endswith("_h"):
        return f"{value:.1f}"
    if key == "overdue_share":
        return f"{value:.0%}"
    return str(value)


def render_html(report: Report) -> str:
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html", "j2"]),
                      undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["cell"] = _cell
    return env.get_template("weekly.html.j2").render(r=report)
