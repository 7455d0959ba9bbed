"""``gridsentinel bench patrol``: how many of the next day's problems the patrol plan visits, on Boston 311 (2015).

For each evaluated day (``--days`` days, ``--step`` days apart, counted back from the extract's last day; set
before any result was seen, never tuned) the forecast is trained only on the days before it, and four plans
with the same inspectors, depot, shift, speed and visit time, routed by the same heuristic, are scored by the
share of the day's located problems that fall in their planned cells:

- ``forecast``: the hotspot forecast's expected problems for the day (what the API plans with);
- ``last_week``: the naive plan: the cells ranked by last week's problems;
- ``mean28``: the simple estimate the plan falls back to on a short history (last 28 days' mean);
- ``hindsight``: the day's actual problems (a ceiling no plan can beat with this routing; not a forecaster).

Progress goes to stderr (one model fit per day).
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import holidays
import numpy as np

from gridsentinel.analytics.civic import DEFAULT_FAMILIES, load_families, read_requests
from gridsentinel.analytics.forecast import History, build_history
from gridsentinel.analytics.grid import Grid
from gridsentinel.analytics.patrol import (
    FALLBACK_DAYS,
    MIN_FORECAST_HISTORY,
    PatrolError,
    Site,
    covered_actual,
    expected_for_day,
    last_week_total,
    plan_routes,
)
from gridsentinel.analytics.patrol_plan import add_plan_arguments, params_of, parse_point
from gridsentinel.analytics.sources import BOSTON_REF, civic_file
from gridsentinel.bench.common import emit
from gridsentinel.settings import Settings

BOSTON_CITY_HALL = (42.3603, -71.0580)  # the default depot
PLANS = ("forecast", "last_week", "mean28", "hindsight")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path,
                        help="the civic dataset folder (holding boston311-2015-jan-sep.csv.gz) or the CSV itself")
    add_plan_arguments(parser)
    parser.add_argument("--depot", default=f"{BOSTON_CITY_HALL[0]},{BOSTON_CITY_HALL[1]}", metavar="LAT,LON",
                        help="where every inspector starts and ends (default Boston City Hall)")
    parser.add_argument("--cell-m", type=float, default=500.0, help="grid cell side in metres (default 500)")
    parser.add_argument("--days", type=int, default=10, help="evaluated days (default 10)")
    parser.add_argument("--step", type=int, default=5,
                        help="days between evaluated days, back from the extract's last day (default 5: every "
                             "weekday comes up)")
    parser.add_argument("--families", type=Path, default=DEFAULT_FAMILIES, help=argparse.SUPPRESS)
    parser.add_argument("--json", action="store_true", help="print one JSON object (with every day)")


def sites_of(history: History, grid: Grid, values: np.ndarray) -> list[Site]:
    out = []
    for i, cell in enumerate(history.cells):
        lat, lon = grid.centre(cell)
        out.append(Site(f"{cell[0]},{cell[1]}", (cell[0] + 0.5) * grid.cell_m, (cell[1] + 0.5) * grid.cell_m,
                        float(values[i]), lat, lon))
    return out


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """The benchmark over a local file; ``settings`` is unused (every benchmark takes them)."""
    params = params_of(args)
    if args.cell_m <= 0 or args.days < 1 or args.step < 1:
        raise PatrolError("--cell-m must be > 0, --days >= 1 and --step >= 1")
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[patrol {time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    families = load_families(args.families)
    requests, stats = read_requests(civic_file(args.data), families)
    if not requests:
        raise PatrolError(f"{args.data}: no located requests")
    start, end = min(r.day for r in requests), max(r.day for r in requests)
    hol = holidays.country_holidays("US", subdiv="MA", years=range(start.year, end.year + 1))
    grid = Grid(BOSTON_REF[0], BOSTON_REF[1], args.cell_m)
    history = build_history(requests, grid, families.names, start, end, hol.keys())
    dx, dy = grid.xy(*parse_point(args.depot))
    days = sorted(history.days - 1 - args.step * k for k in range(args.days))
    if days[0] < MIN_FORECAST_HISTORY:
        raise PatrolError(f"--days {args.days} x --step {args.step} reaches back before day {MIN_FORECAST_HISTORY} "
                          "(the forecast needs that much history)")
    progress(f"{stats.kept} located requests in {len(history.cells)} cells of {args.cell_m:.0f} m; "
             f"{len(days)} days from {history.day(days[0])} to {history.day(days[-1])}")
    rows: list[dict[str, object]] = []
    for d in days:
        actual = history.counts[:, :, d].sum(axis=0)
        values = {
            "forecast": expected_for_day(history, d)[0],
            "last_week": last_week_total(history, d),
            "mean28": history.counts[:, :, d - FALLBACK_DAYS:d].sum(axis=0).mean(axis=1),
            "hindsight": actual,
        }
        keys = [f"{c[0]},{c[1]}" for c in history.cells]
        row: dict[str, object] = {"day": history.day(d).isoformat(), "weekday": history.day(d).strftime("%a"),
                                  "problems": int(actual.sum())}
        for name in PLANS:
            plan = plan_routes(sites_of(history, grid, values[name]), [(dx, dy)], params)
            row[name] = round(covered_actual(plan, keys, actual), 4)
            if name == "forecast":
                row["cells_planned"] = len(plan.cells)
                row["expected_share"] = round(plan.covered_share, 4)
                row["km_walked"] = round(sum(r.distance_m for r in plan.routes) / 1000, 1)
        rows.append(row)
        progress(f"{row['day']} ({row['weekday']}): {row['problems']} problems, forecast plan {row['forecast']:.1%}"
                 f" vs last week {row['last_week']:.1%}")
    mean = {name: round(float(np.nanmean([float(r[name]) for r in rows])), 4) for name in PLANS}  # type: ignore[arg-type]
    wins = sum(float(r["forecast"]) > float(r["last_week"]) for r in rows)  # type: ignore[arg-type]
    result: dict[str, object] = {
        "benchmark": "patrol", "data": str(civic_file(args.data)), "cell_m": args.cell_m, "depot": args.depot,
        "inspectors": params.inspectors, "shift_h": params.shift_min / 60, "speed_kmh": params.speed_kmh,
        "visit_min": params.visit_min, "detour": params.detour, "cells": len(history.cells),
        "mean_share": mean, "days_forecast_beats_last_week": [wins, len(rows)], "days": rows,
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    emit(result, args.json, _render(result, rows))
    return 0


def _render(result: dict[str, object], rows: list[dict[str, object]]) -> str:
    lines = [f"Patrol plan, Boston 311: {result['inspectors']} inspectors from {result['depot']}, "
             f"{result['shift_h']:g} h shift, {result['speed_kmh']:g} km/h, {result['visit_min']:g} min per cell, "
             f"{result['cell_m']:.0f} m cells", "",
             "Share of the day's located problems in the planned cells:",
             f"  {'day':<10} {'':<3} {'problems':>8} {'cells':>5} {'km':>5} {'forecast':>8} {'last_wk':>8} "
             f"{'mean28':>8} {'hindsight':>9}"]
    for r in rows:
        lines.append(f"  {r['day']:<10} {r['weekday']:<3} {r['problems']:>8} {r['cells_planned']:>5} "
                     f"{r['km_walked']:>5} {_pct(r['forecast']):>8} {_pct(r['last_week']):>8} {_pct(r['mean28']):>8} "
                     f"{_pct(r['hindsight']):>9}")
    mean = result["mean_share"]
    assert isinstance(mean, dict)
    lines.append(f"  {'mean':<10} {'':<3} {'':>8} {'':>5} {'':>5} {_pct(mean['forecast']):>8} "
                 f"{_pct(mean['last_week']):>8} {_pct(mean['mean28']):>8} {_pct(mean['hindsight']):>9}")
    wins = result["days_forecast_beats_last_week"]
    assert isinstance(wins, list)
    lines += ["", f"The forecast's plan covers more than last week's on {wins[0]} of {wins[1]} days."]
    return "\n".join(lines)


def _pct(v: object) -> str:
    f = float(v)  # type: ignore[arg-type]
    return "n/a" if math.isnan(f) else f"{f:.1%}"
