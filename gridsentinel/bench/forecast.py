"""``gridsentinel bench forecast``: the hotspot forecast's rolling-origin evaluation on Boston 311 (2015).

Reads the civic dataset, builds the grid and daily counts per cell x family, then for each week from
``--first-week`` on forecasts the next 7 days with the two naive baselines, the daily Poisson gradient
boosting (``boosted_poisson``) and the weekly-total one (``weekly_poisson``, the model the goal is judged
on), and scores two upper bounds that see the future (``oracle``, ``hindsight_rate``; not forecasters).

The evaluated weeks are split at ``--tune-until``: the weeks before it are the TUNING weeks (features and
hyperparameters were chosen looking at them only; their figures are in-sample), the weeks from it on are
the SCORING weeks, the headline. Per part it prints the mean hit rates (top 5 % / 10 % of cells) and Poisson
deviance per family, each model's ratio of hit rate at 10 % to the better baseline's, what the goal
(>= 1.15 x) requires beside the oracle's hit rate, and whether the goal is met on the scoring weeks.
Progress goes to stderr (two model fits per week).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import asdict
from datetime import date
from pathlib import Path

import holidays
from threadpoolctl import threadpool_limits

from gridsentinel.analytics.civic import DEFAULT_FAMILIES, load_families, read_requests
from gridsentinel.analytics.forecast import (
    HORIZON,
    BoostedPoisson,
    Forecaster,
    LastWeek,
    SameWeekdayMean,
    WeeklyBoostedPoisson,
    build_history,
)
from gridsentinel.analytics.grid import Grid
from gridsentinel.analytics.rolling import (
    ALL,
    DEVIANCE_FLOOR,
    HINDSIGHT,
    ORACLE,
    WeekScore,
    rolling_origin,
    split_weeks,
    summarise,
)
from gridsentinel.bench.common import emit
from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings

DATA_FILE = "boston311-2015-jan-sep.csv.gz"
BOSTON = (42.3601, -71.0589)  # grid reference point (downtown Boston)
GOAL = 1.15
MODEL = "weekly_poisson"  # the model the goal is judged on (chosen on the tuning weeks)
MODELS = ("boosted_poisson", MODEL)
BASELINES = ("last_week", "same_weekday_8w")
BOUNDS = (HINDSIGHT, ORACLE)  # upper bounds that see the future, not forecasters
TUNE_UNTIL = "2015-06-11"  # the first scoring week's origin: 15 tuning weeks, 16 scoring weeks
METRICS = ("hit5", "hit10", "deviance")


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
    parser.add_argument("--tune-until", default=TUNE_UNTIL,
                        help=f"first origin of the SCORING weeks (ISO date, default {TUNE_UNTIL}); the weeks before "
                             "it are the TUNING weeks, where features and hyperparameters were chosen")
    parser.add_argument("--threads", type=int, default=1,
                        help="OpenMP threads per model fit (default 1: on a shared machine more threads spin "
                             "and run several times slower)")
    parser.add_argument("--json", action="store_true", help="print one JSON object (with every week)")


def _data_file(path: Path) -> Path:
    return path / DATA_FILE if path.is_dir() else path


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """The benchmark over a local file; ``settings`` is unused (every benchmark takes them)."""
    if args.cell_m <= 0 or args.first_week < 1 or (args.weeks is not None and args.weeks < 1) or args.threads < 1:
        raise GridSentinelError("--cell-m must be > 0, --first-week >= 1, --weeks >= 1 and --threads >= 1")
    try:
        tune_until = date.fromisoformat(args.tune_until).isoformat()
    except ValueError as exc:
        raise GridSentinelError(f"--tune-until {args.tune_until!r}: expected an ISO date such as {TUNE_UNTIL}") from exc
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
    last_week = history.days // HORIZON - 1 if last is None else min(last, history.days // HORIZON - 1)
    last_origin = history.day(last_week * HORIZON).isoformat()
    if last_origin < tune_until:  # checked before the fits, not after minutes of them
        raise GridSentinelError(f"--tune-until {tune_until}: no evaluated week starts on or after it "
                                f"(the last origin is {last_origin}); pick an earlier date")
    forecasters: list[Forecaster] = [LastWeek(), SameWeekdayMean(), BoostedPoisson(), WeeklyBoostedPoisson()]
    with threadpool_limits(limits=args.threads):
        weeks = rolling_origin(history, forecasters, args.first_week, last, progress, bounds=True)
    if not weeks:
        raise GridSentinelError("no whole week to evaluate after --first-week")
    tuning, scoring = split_weeks(weeks, tune_until)

    names = [*families.names, ALL]
    rows = (*BASELINES, *MODELS, *BOUNDS)
    parts = {"scoring": scoring, "tuning": tuning}
    summary = {part: _summary(ws, names, rows) for part, ws in parts.items() if ws}
    ceiling = {part: _ceiling(s, names) for part, s in summary.items()}
    verdict: dict[str, dict[str, object]] = {}
    for fam in names:
        ratio = ceiling["scoring"][fam][f"ratio_{MODEL}"]
        verdict[fam] = {"ratio_hit10": ratio, "goal_met": bool(ratio >= GOAL)}
    result: dict[str, object] = {
        "benchmark": "forecast", "data": str(_data_file(args.data)), "cell_m": args.cell_m,
        "period": [start.isoformat(), end.isoformat()],
        "weeks_evaluated": [weeks[0].origin, weeks[-1].origin, len(weeks)],
        "tune_until": tune_until, "weeks_tuning": len(tuning), "weeks_scoring": len(scoring),
        "requests": asdict(stats), "cells": len(history.cells), "deviance_floor": DEVIANCE_FLOOR,
        "model": MODEL, "summary": summary, "ceiling": ceiling,
        "goal": {"ratio": GOAL, "judged_on": "scoring", "per_family": verdict,
                 "met": all(bool(v["goal_met"]) for v in verdict.values())},
        "weeks": [asdict(w) for w in weeks], "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    emit(result, args.json, _render(result, weeks, names, tune_until))
    return 0


def _summary(weeks: list[WeekScore], names: list[str], rows: tuple[str, ...]) -> dict[str, dict[str, dict[str, float]]]:
    return {fam: {fc: {m: round(summarise(weeks, fc, fam, m), 4) for m in METRICS} for fc in rows} for fam in names}


def _ceiling(summary: dict[str, dict[str, dict[str, float]]], names: list[str]) -> dict[str, dict[str, float]]:
    """Per family: each model's ratio to the better baseline, and what the goal needs beside the oracle."""
    out: dict[str, dict[str, float]] = {}
    for fam in names:
        best = max(summary[fam][b]["hit10"] for b in BASELINES)
        needed = GOAL * best
        oracle = summary[fam][ORACLE]["hit10"]
        row = {"best_baseline_hit10": best, "needed_hit10": round(needed, 4), "oracle_hit10": oracle,
               "needed_over_oracle": round(needed / oracle, 3) if oracle > 0 else float("nan"),
               "hindsight_hit10": summary[fam][HINDSIGHT]["hit10"]}
        for m in MODELS:
            row[f"ratio_{m}"] = round(summary[fam][m]["hit10"] / best, 3) if best > 0 else float("nan")
        out[fam] = row
    return out


def _render(result: dict[str, object], weeks: list[WeekScore], names: list[str], tune_until: str) -> str:
    lines = [f"Hotspot forecast, rolling origin: {len(weeks)} weeks from {weeks[0].origin} to {weeks[-1].origin}, "
             f"{result['cells']} cells of {result['cell_m']:.0f} m; TUNING weeks: origins before {tune_until} "
             f"({result['weeks_tuning']}), SCORING weeks: from {tune_until} ({result['weeks_scoring']})", "",
             "Per week, all families (hit rate at 10 % of cells; T = tuning week, S = scoring week; the oracle "
             "sees next week):",
             f"  {'week':>4} {'origin':<10}   {'cells':>5} {'problems':>8} {'last_wk':>8} {'wkday8':>8} "
             f"{'daily':>8} {'weekly':>8} {'oracle':>8}"]
    for w in weeks:
        s = w.scores
        part = "T" if w.origin < tune_until else "S"
        lines.append(f"  {w.week:>4} {w.origin:<10} {part} {w.cells:>5} {w.problems[ALL]:>8.0f} "
                     + " ".join(f"{s[fc][ALL]['hit10']:>8.3f}" for fc in (*BASELINES, *MODELS, ORACLE)))
    summary = result["summary"]
    ceiling = result["ceiling"]
    goal = result["goal"]
    assert isinstance(summary, dict) and isinstance(ceiling, dict) and isinstance(goal, dict)
    titles = {"scoring": "SCORING weeks (the headline: run once, nothing chosen on them)",
              "tuning": "TUNING weeks (in-sample: features and hyperparameters were chosen on these)"}
    for part, title in titles.items():
        if part not in summary:
            continue
        lines += ["", f"{title}: mean over weeks",
                  f"  {'family':<15} {'forecaster':<22} {'hit@5%':>7} {'hit@10%':>8} {'deviance':>9}  {'ratio@10%':>9}"]
        for fam in names:
            for fc in (*BASELINES, *MODELS, *BOUNDS):
                row = summary[part][fam][fc]
                dev = f"{row['deviance']:>9.3f}" if fc not in BOUNDS else f"{'-':>9}"
                tail = f"  {ceiling[part][fam][f'ratio_{fc}']:>9.3f}" if fc in MODELS else ""
                if fc == MODEL and part == "scoring":
                    tail += " met" if goal["per_family"][fam]["goal_met"] else " NOT met"
                label = f"{fc} (bound)" if fc in BOUNDS else fc
                lines.append(f"  {fam:<15} {label:<22} {row['hit5']:>7.3f} {row['hit10']:>8.3f} {dev}{tail}")
        lines += ["", f"  Ceiling ({part}): hit rate at 10 % the goal needs ({GOAL} x the better baseline) "
                      "vs the oracle",
                  f"  {'family':<15} {'needed':>7} {'oracle':>7} {'needed/oracle':>13} {'hindsight':>9}"]
        for fam in names:
            c = ceiling[part][fam]
            lines.append(f"  {fam:<15} {c['needed_hit10']:>7.3f} {c['oracle_hit10']:>7.3f} "
                         f"{c['needed_over_oracle']:>13.3f} {c['hindsight_hit10']:>9.3f}")
    lines.append("")
    lines.append(f"Goal ({MODEL}'s hit rate at 10 % >= {GOAL} x the better baseline, every family, scoring weeks): "
                 f"{'MET' if goal['met'] else 'NOT MET'}")
    return "\n".join(lines)
