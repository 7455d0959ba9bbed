"""``gridsentinel bench performance``: department performance on the Boston 311 extract, checked against Boston.

Reads every request of the extract (open, due = ``TARGET_DT``, closed times, ``Department``), computes the
performance figures of :mod:`gridsentinel.analytics.performance` per department over the whole period
(judged at the extract's last recorded time, opening or closing), and checks the overdue rule against
Boston's own ``OnTime_Status`` on the closed requests that had a due time: the share on which the two
agree, and the confusion counts.
"""

from __future__ import annotations

import argparse
import csv
import gzip
import sys
import time
from dataclasses import asdict
from pathlib import Path

from gridsentinel.analytics.civic import DEFAULT_FAMILIES, load_families
from gridsentinel.analytics.performance import figures, was_overdue
from gridsentinel.analytics.sources import CIVIC_FILE, civic_file, from_civic
from gridsentinel.bench.common import emit
from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path,
                        help=f"the civic dataset folder (holding {CIVIC_FILE}) or the CSV itself")
    parser.add_argument("--families", type=Path, default=DEFAULT_FAMILIES,
                        help="REASON -> family mapping (default config/forecast_families.yaml)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _on_time_status(path: Path) -> dict[str, str]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        return {row["CASE_ENQUIRY_ID"]: row["OnTime_Status"] for row in csv.DictReader(fh)}


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """The figures over a local file; ``settings`` is unused (every benchmark takes them)."""
    t0 = time.perf_counter()
    path = civic_file(args.data)
    data = from_civic(path, load_families(args.families), opened_from=0.0, opened_to=float("inf"))
    if not data.records:
        raise GridSentinelError(f"{path}: no requests")
    start = min(r.opened_at for r in data.records)
    as_of = max(max(r.opened_at, r.closed_at or 0.0) for r in data.records) + 1
    print(f"[performance {time.perf_counter() - t0:5.1f}s] {len(data.records)} requests read", file=sys.stderr)
    rows = figures(data.records, "department", start=start, end=as_of, as_of=as_of, rework_recorded=False,
                   escalations_recorded=False)
    overall = figures(data.records, "all", start=start, end=as_of, as_of=as_of, rework_recorded=False,
                      escalations_recorded=False)[0]
    status = _on_time_status(path)
    agree = {"both_overdue": 0, "both_on_time": 0, "ours_overdue_boston_on_time": 0,
             "ours_on_time_boston_overdue": 0}
    for r in data.records:
        if r.closed_at is None or r.closed_at >= as_of or r.due_at is None:
            continue
        theirs = status.get(r.case_id)
        if theirs not in ("ONTIME", "OVERDUE"):
            continue
        ours = bool(was_overdue(r, as_of))
        key = ("both_overdue" if theirs == "OVERDUE" else "ours_overdue_boston_on_time") if ours else (
            "ours_on_time_boston_overdue" if theirs == "OVERDUE" else "both_on_time")
        agree[key] += 1
    checked = sum(agree.values())
    result = {
        "benchmark": "performance", "data": str(path), "requests": len(data.records),
        "overall": asdict(overall) | {"overdue_share": overall.overdue_share},
        "departments": [asdict(g) | {"overdue_share": g.overdue_share} for g in rows],
        "on_time_check": {"checked": checked, **agree,
                          "agreement": round((agree["both_overdue"] + agree["both_on_time"]) / checked, 4)
                          if checked else None},
        "elapsed_s": round(time.perf_counter() - t0, 1),
    }
    lines = [f"Boston 311 department performance, {len(data.records)} requests ({path.name}); hours from opening",
             f"{'department':<12} {'cases':>6} {'resolved':>8} {'res med h':>9} {'res p90 h':>9} {'overdue':>8}"]
    for g in [*rows, overall]:
        med = "-" if g.resolve_median_h is None else f"{g.resolve_median_h:.1f}"
        p90 = "-" if g.resolve_p90_h is None else f"{g.resolve_p90_h:.1f}"
        share = "-" if g.overdue_share is None else f"{g.overdue_share:.1%}"
        lines.append(f"{g.group:<12} {g.cases:>6} {g.resolved:>8} {med:>9} {p90:>9} {share:>8}")
    chk = result["on_time_check"]
    assert isinstance(chk, dict)
    lines.append(f"overdue rule vs Boston's OnTime_Status on {checked} closed requests with a due time: agreement "
                 f"{chk['agreement']}; ours overdue / Boston on time {agree['ours_overdue_boston_on_time']}, "
                 f"ours on time / Boston overdue {agree['ours_on_time_boston_overdue']}")
    lines.append("not recorded by Boston: dispatch time, rework, escalations, refusals")
    emit(result, args.json, "\n".join(lines))
    return 0
