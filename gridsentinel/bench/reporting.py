"""``gridsentinel bench reporting``: the selective-reporting index's false flags and power, simulated; and its
flags on Boston 311 week by week.

Simulation: ``--units`` units of one family, each with ``--problems`` problems on average (Poisson), whose
people share is drawn from a beta distribution around ``--share`` with intra-unit correlation ``--rho`` (real
peers differ). Null runs have no under-reporting unit: every flag is false. Power runs make one unit's
people report ``1/--factor`` of its share. Reported: the mean number of false flags per run, the share of
runs with any false flag, and the share of power runs that flag the under-reporting unit; for the beta-
binomial test (the index) and for a plain binomial test (no allowance for the peers' spread).
"""

from __future__ import annotations

import argparse
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np

from gridsentinel.analytics.civic import DEFAULT_FAMILIES, load_families
from gridsentinel.analytics.reporting_index import DEFAULT_FDR, Tally, assess_units, flags, tally
from gridsentinel.analytics.sources import BOSTON_TZ, CIVIC_FILE, from_civic
from gridsentinel.analytics.weekly import INDEX_WEEKS, iso_week, parse_week, week_bounds
from gridsentinel.bench.common import emit
from gridsentinel.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--runs", type=int, default=200, help="simulated runs per case (default 200)")
    parser.add_argument("--units", type=int, default=25, help="units per run (default 25)")
    parser.add_argument("--problems", type=float, default=60.0, help="mean problems per unit (default 60)")
    parser.add_argument("--share", type=float, default=0.4, help="mean people share (default 0.4)")
    parser.add_argument("--rho", type=float, default=0.02, help="peers' intra-unit correlation (default 0.02)")
    parser.add_argument("--factor", type=float, default=5.0, help="under-reporting factor in power runs (default 5)")
    parser.add_argument("--fdr", type=float, default=DEFAULT_FDR, help=f"FDR q (default {DEFAULT_FDR})")
    parser.add_argument("--data", type=Path, default=None,
                        help=f"also count the flags on Boston 311 per week (folder holding {CIVIC_FILE})")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _run(rng: np.random.Generator, args: argparse.Namespace, under: bool, plain: bool) -> tuple[int, bool]:
    """(false flags, whether the under-reporting unit was flagged) of one simulated family."""
    a = args.share * (1 - args.rho) / args.rho
    b = (1 - args.share) * (1 - args.rho) / args.rho
    tallies = []
    for i in range(args.units):
        n = int(rng.poisson(args.problems))
        share = rng.beta(a, b)
        if under and i == 0:
            share /= args.factor
        people = int(rng.binomial(n, share))
        tallies.append(Tally(f"u{i}", "f", people, n - people))
    results = assess_units(tallies, fdr=args.fdr, max_rho=0.0 if plain else None)
    flagged = {r.unit for r in flags(results)}
    return len(flagged - ({"u0"} if under else set())), "u0" in flagged


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    t0 = time.perf_counter()
    rng = np.random.default_rng(0)
    sim: dict[str, dict[str, float]] = {}
    for name, plain in (("beta_binomial", False), ("plain_binomial", True)):
        null = [_run(rng, args, False, plain) for _ in range(args.runs)]
        power = [_run(rng, args, True, plain) for _ in range(args.runs)]
        sim[name] = {"false_flags_per_run": round(float(np.mean([f for f, _ in null])), 3),
                     "runs_with_a_false_flag": round(float(np.mean([f > 0 for f, _ in null])), 3),
                     "power": round(float(np.mean([hit for _, hit in power])), 3),
                     "false_flags_per_power_run": round(float(np.mean([f for f, _ in power])), 3)}
    result: dict[str, object] = {"benchmark": "reporting", "simulation": {**vars(args), "data": None,
                                                                           "results": sim}}
    lines = [f"Selective-reporting index, simulated: {args.units} units x ~{args.problems:.0f} problems, people share "
             f"{args.share} with peers' rho {args.rho}, FDR {args.fdr}, {args.runs} runs each"]
    for name, s in sim.items():
        lines.append(f"  {name:<15} false flags/run {s['false_flags_per_run']:.3f}, runs with a false flag "
                     f"{s['runs_with_a_false_flag']:.1%}, power (1/{args.factor:g} share) {s['power']:.1%}")
    if args.data is not None:
        families = load_families(DEFAULT_FAMILIES)
        first, last = parse_week("2015-W05"), parse_week("2015-W39")
        start, _ = week_bounds(first - timedelta(days=7 * (INDEX_WEEKS - 1)), BOSTON_TZ)
        _, end = week_bounds(last, BOSTON_TZ)
        data = from_civic(args.data, families, opened_from=start, opened_to=end)
        weekly: list[dict[str, object]] = []
        monday = first
        while monday <= last:
            w_start, w_end = week_bounds(monday, BOSTON_TZ)
            lo = w_start - 7 * 86400 * (INDEX_WEEKS - 1)
            window = [o for at, o in data.observations["neighborhood"] if lo <= at < w_end]
            row: dict[str, object] = {"week": iso_week(monday)}
            for name, plain in (("beta_binomial", False), ("plain_binomial", True)):
                res = assess_units(tally(window), fdr=args.fdr, max_rho=0.0 if plain else None)
                row[name] = len(flags(res))
                row["tested"] = sum(r.tested for r in res)
            weekly.append(row)
            monday += timedelta(days=7)
            print(f"[reporting {time.perf_counter() - t0:5.1f}s] {row}", file=sys.stderr)
        result["boston"] = weekly
        bb = [int(str(r["beta_binomial"])) for r in weekly]
        pb = [int(str(r["plain_binomial"])) for r in weekly]
        tested = [int(str(r["tested"])) for r in weekly]
        lines.append(f"Boston 311 (residents vs city staff by neighborhood, {INDEX_WEEKS}-week windows, "
                     f"{len(weekly)} weeks, ~{np.mean(tested):.0f} units tested): flags per week beta-binomial "
                     f"mean {np.mean(bb):.1f} (max {max(bb)}), plain binomial mean {np.mean(pb):.1f} (max {max(pb)})")
    result["elapsed_s"] = round(time.perf_counter() - t0, 1)
    emit(result, args.json, "\n".join(lines))
    return 0
