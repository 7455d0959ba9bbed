"""What a backtest (or a shadow run) says: counts, outcomes, alerts, and agreement with real cases.

Agreement uses real cases closed in the period: ``resolved`` = a true problem, ``false_alarm`` = not
one (``duplicate`` and still-open cases carry no verdict). A replayed case *matches* a real case of the
same category in the same cell when their seen intervals overlap (± ``tolerance_s``).

- recall = true problems matched by some replayed case / true problems;
- precision = replayed cases matching a true problem / replayed cases matching any labelled case
  (a replayed case with no labelled counterpart is counted as ``unlabelled``, not as wrong);
- time to detect = first detection of the replayed case − first detection of the real case (negative:
  earlier than live).

>>> from gridsentinel.cases.case import new_case_for_test
>>> from dataclasses import replace
>>> real = replace(new_case_for_test(), status="closed", closing_reason="resolved", first_seen_at=100.0,
...                last_seen_at=200.0, closed_at=300.0)
>>> mine = replace(real, case_id="x", status="open", closing_reason=None, first_seen_at=90.0,
...                last_seen_at=95.0, closed_at=None)
>>> ev = evaluate([mine], [real])
>>> ev["recall"], ev["precision"], ev["time_to_detect_s"]["median"]
(1.0, 1.0, -10.0)
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Sequence
from typing import Any

from gridsentinel.cases.case import Case
from gridsentinel.engineering.backtest import Run, group_counts


def _overlaps(mine: Case, real: Case, tolerance_s: float) -> bool:
    real_end = real.closed_at if real.closed_at is not None else real.last_seen_at
    return (mine.category_key == real.category_key and mine.grid_code == real.grid_code
            and mine.first_seen_at <= real_end + tolerance_s
            and mine.last_seen_at >= real.first_seen_at - tolerance_s)


def evaluate(cases: Sequence[Case], real: Sequence[Case], tolerance_s: float = 3600.0) -> dict[str, Any]:
    labelled = [r for r in real if r.status == "closed" and r.closing_reason in ("resolved", "false_alarm")]
    true_cases = [r for r in labelled if r.closing_reason == "resolved"]
    false_cases = [r for r in labelled if r.closing_reason == "false_alarm"]
    found: list[float] = []
    missed: list[str] = []
    for r in true_cases:
        hits = [c for c in cases if _overlaps(c, r, tolerance_s)]
        if hits:
            found.append(min(c.first_seen_at for c in hits) - r.first_seen_at)
        else:
            missed.append(r.case_id)
    tp = fp = unlabelled = 0
    for c in cases:
        if any(_overlaps(c, r, tolerance_s) for r in true_cases):
            tp += 1
        elif any(_overlaps(c, r, tolerance_s) for r in false_cases):
            fp += 1
        else:
            unlabelled += 1
    return {
        "real_true": len(true_cases), "real_false_alarm": len(false_cases),
        "true_positive_cases": tp, "false_positive_cases": fp, "unlabelled_cases": unlabelled,
        "detected_true": len(found), "missed_true": missed,
        "precision": round(tp / (tp + fp), 4) if tp + fp else None,
        "recall": round(len(found) / len(true_cases), 4) if true_cases else None,
        "time_to_detect_s": {
            "median": round(statistics.median(found), 1) if found else None,
            "mean": round(statistics.fmean(found), 1) if found else None,
            "max": round(max(found), 1) if found else None,
        },
    }


def run_summary(run: Run, *, prefix_digits: int, real: Sequence[Case] | None,
                tolerance_s: float) -> dict[str, Any]:
    cases = run.cases()
    outcomes = Counter(run.outcomes.values())
    summary: dict[str, Any] = {
        "label": run.label,
        "detections": len(run.detections),
        "detections_by_kind": dict(sorted(Counter(d.kind for d in run.detections).items())),
        "detections_by_severity": dict(sorted(Counter(d.severity for d in run.detections).items())),
        "cases": len(cases),
        "cases_would_open": outcomes.get("opened", 0),
        "cases_would_merge": outcomes.get("merged", 0),
        "cases_would_reopen": outcomes.get("reopened", 0),
        "outcomes": dict(sorted(outcomes.items())),
        **group_counts(run, prefix_digits),
        "alerts_per_center": dict(sorted(run.alerts.items())),
        "rejected_detections": dict(run.rejected),
        "case_cells": sorted({f"{c.grid_code} {c.category_key}" for c in cases}),
    }
    if real is not None:
        summary["agreement"] = evaluate(cases, real, tolerance_s)
    return summary


def difference(candidate: dict[str, Any], live: dict[str, Any]) -> dict[str, Any]:
    """Candidate minus live for every number both have (agreement included)."""
    out: dict[str, Any] = {}
    for key in ("detections", "cases", "cases_would_open", "cases_would_merge", "cases_would_reopen"):
        out[key] = candidate[key] - live[key]
    alerts = Counter(candidate["alerts_per_center"])
    alerts.subtract(live["alerts_per_center"])
    out["alerts_per_center"] = {k: v for k, v in sorted(alerts.items()) if v}
    a, b = candidate.get("agreement"), live.get("agreement")
    if a and b:
        for key in ("precision", "recall"):
            out[key] = None if a[key] is None or b[key] is None else round(a[key] - b[key], 4)
        ma, mb = a["time_to_detect_s"]["median"], b["time_to_detect_s"]["median"]
        out["time_to_detect_median_s"] = None if ma is None or mb is None else round(ma - mb, 1)
    only_c = sorted(set(candidate["case_cells"]) - set(live["case_cells"]))
    only_l = sorted(set(live["case_cells"]) - set(candidate["case_cells"]))
    out["case_cells_only_candidate"], out["case_cells_only_live"] = only_c, only_l
    return out
