"""``gridsentinel bench forecast``: the hotspot forecast's rolling-origin evaluation on Boston 311 (2015).

Reads the civic dataset, builds the grid and daily counts per cell x family, then for each week from
``--first-week`` on forecasts the next 7 days with the Poisson gradient-boosting model and the two naive
baselines, and prints the mean hit rates (top 5 % / 10 % of cells) and Poisson deviance per family, the
ratio of the model's hit rate at 10 % to the better baseline's, and whether the issue's goal (>= 1.15) is met.
Progress goes to stderr (one model fit per week).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from pathlib import Path

import holidays

from gridsentinel.analytics.civic import DEFAULT_FAMILIES, load_families, read_requests
from gridsentinel.analytics.forecast import BoostedPoisson, Forecaster, LastWeek, SameWeekdayMean, build_history
from gridsentinel.analytics.grid import Grid
from gridsentinel.analytics.rolling import ALL, DEVIANCE_FLOOR, WeekScore, rolling_origin, summarise
from gridsentinel.bench.common import emit
from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings

DATA_FILE = "boston311-2015-jan-sep.csv.gz"
BOSTON = (42.3601, -71.0589)  # grid reference point (downtown Boston)
GOAL = 1.15
MODEL = "boosted_poisson"
BASELINES = ("last_week", "same_weekday_8w")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path,
                        help=f"the civic dataset folder (holding {DATA_FILE}) or the CSV itself")
    parser.add_argument("--cell-m", type=float, default=500.0, help="grid cell side in metres (default 500)")
    parser.add_argument("--first-week", type=int, default=8,
                        help="first evaluated week, 0-based from 1 Jan 2015 (default 8: the 9th week)")
    parser.add_argument("--weeks", type=int, default=None,
                        help="number of weeks evaluated from --first-week (default: all whole weeks)")
    parser.add_argument("--families", type=Path, default=DEFAULT_FAMILIES,
                        help="REASON -> family mapping (default config/forecast_families.yaml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (with every week)")


def _data_file(path: Path) -> Path:
    return path / DATA_FILE if path.is_dir() else path


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """The benchmark over a local file; ``settings`` is unused (every benchmark takes them)."""
    if args.cell_m <= 0 or args.first_week < 1 or (args.weeks is not None and args.weeks < 1):
        raise GridSentinelError("--cell-m must be > 0, --first-week >= 1 and --weeks >= 1")
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[forecast {time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    families = load_families(args.families)
    requests, stats = read_requests(_data_file(args.data), families)
    if not requests:
        raise GridSentinelError(f"{args.data}: no located requests")
    start = min(r.day for r in requests)
    end = max(r.day for r in requests)
    years = range(start.year, end.year + 1)
    # Massachusetts' public holidays (federal ones plus Patriots' Day and Evacuation Day in Suffolk county).
    hol = holidays.country_holidays("US", subdiv="MA", years=years)
    grid = Grid(BOSTON[0], BOSTON[1], args.cell_m)
    history = build_history(requests, grid, families.names, start, end, hol.keys())
    progress(f"{stats.kept} located requests ({stats.unlocated} unlocated, {stats.excluded} excluded) in "
             f"{len(history.cells)} cells of {args.cell_m:.0f} m, {history.days} days from {start}")
    last = None if args.weeks is None else args.first_week + args.weeks - 1
    forecasters: list[Forecaster] = [LastWeek(), SameWeekdayMean(), BoostedPoisson()]
    weeks = rolling_origin(history, forecasters, args.first_week, last, progress)
    if not weeks:
        raise GridSentinelError("no whole week to evaluate after --first-week")

    names = [*families.names, ALL]
    summary: dict[str, dict[str, dict[str, float]]] = {}
    verdict: dict[str, dict[str, object]] = {}
    for fam in names:
        summary[fam] = {fc.name: {m: round(summarise(weeks, fc.name, fam, m), 4)
                                  for m in ("hit5", "hit10", "deviance")} for fc in forecasters}
        best = max(summary[fam][b]["hit10"] for b in BASELINES)
        ratio = summary[fam][MODEL]["hit10"] / best if best > 0 else float("nan")
        verdict[fam] = {"ratio_hit10": round(ratio, 3), "goal_met": bool(ratio >= GOAL)}
    result: dict[str, object] = {
        "benchmark": "forecast", "data": str(_data_file(args.data)), "cell_m": args.cell_m,
        "period": [start.isoformat(), end.isoformat()],
        "weeks_evaluated": [weeks[0].origin, weeks[-1].origin, len(weeks)],
        "requests": asdict(stats), "cells": len(history.cells), "deviance_floor": DEVIANCE_FLOOR,
        "summary": summary, "goal": {"ratio": GOAL, "per_family": verdict,
                                      "met": all(bool(v["goal_met"]) for v in verdict.values())},
        "weeks": [asdict(w) for w in weeks], "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    emit(result, args.json, _render(result, weeks, names))
    return 0


def _render(result: dict[str, object], weeks: list[WeekScore], names: list[str]) -> str:
    lines = [f"Hotspot forecast, rolling origin: {len(weeks)} weeks from {weeks[0].origin} to {weeks[-1].origin}, "
             f"{result['cells']} cells of {result['cell_m']:.0f} m (mean over weeks)", "",
             "Per week, all families (hit rate at 10 % of cells):",
             f"  {'week':>4} {'origin':<10} {'cells':>5} {'problems':>8} {'last_wk':>8} {'wkday8':>8} {'model':>8}"]
    for w in weeks:
        s = w.scores
        lines.append(f"  {w.week:>4} {w.origin:<10} {w.cells:>5} {w.problems[ALL]:>8.0f} "
                     f"{s['last_week'][ALL]['hit10']:>8.3f} {s['same_weekday_8w'][ALL]['hit10']:>8.3f} "
                     f"{s[MODEL][ALL]['hit10']:>8.3f}")
    summary = result["summary"]
    goal = result["goal"]
    assert isinstance(summary, dict) and isinstance(goal, dict)
    lines += ["", f"  {'family':<15} {'forecaster':<16} {'hit@5%':>7} {'hit@10%':>8} {'deviance':>9}  "
                  f"{'ratio@10%':>9} goal>={GOAL}"]
    for fam in names:
        for fc in (*BASELINES, MODEL):
            row = summary[fam][fc]
            tail = ""
            if fc == MODEL:
                v = goal["per_family"][fam]
                tail = f"  {v['ratio_hit10']:>9.3f} {'met' if v['goal_met'] else 'NOT met'}"
            lines.append(f"  {fam:<15} {fc:<16} {row['hit5']:>7.3f} {row['hit10']:>8.3f} {row['deviance']:>9.3f}"
                         + tail)
    lines.append("")
    lines.append(f"Goal (hit rate at 10 % >= {GOAL} x the better baseline, every family): "
                 f"{'MET' if goal['met'] else 'NOT MET'}")
    return "\n".join(lines)
