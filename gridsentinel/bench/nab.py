"""``gridsentinel bench nab``: run a registered detector over NAB files and score it with our own scorer.

NAB's rules: each file is read one row at a time (no look-ahead), with a fresh detector per file and
the same parameters for every file; the file's minimum and maximum may be known in advance, so a
detector whose constructor takes ``lo``/``hi`` gets them. Per-row scores go to ``--out`` as CSV
(``timestamp,value,anomaly_score,label``, NAB's results layout), then every profile is scored.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import json
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from gridsentinel.bench.common import emit
from gridsentinel.detectors.nab_scoring import FileData, ProfileResult, score_all, window_rows
from gridsentinel.detectors.registry import DETECTORS, create
from gridsentinel.engineering.sources import read_series, series_readings
from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings

DEFAULT_DETECTOR = "ensemble"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path,
                        help="NAB folder holding data/ and labels/combined_windows.json")
    parser.add_argument("--detector", default=DEFAULT_DETECTOR, choices=sorted(DETECTORS),
                        help=f"registered detector to run (default {DEFAULT_DETECTOR})")
    parser.add_argument("--out", type=Path, default=Path("nab-results"),
                        help="folder for the per-row score CSVs (default ./nab-results)")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


# The backtest's CSV source: NAB and `gridsentinel backtest --source csv` read files the same way.
load_file = read_series


def run_detector(name: str, device: str, stamps: list[datetime], values: list[float]) -> list[float]:
    """Fresh detector, one row at a time; scores clipped to [0, 1]."""
    params: dict[str, Any] = {}
    accepted = inspect.signature(DETECTORS[name]).parameters
    if "lo" in accepted and "hi" in accepted and values:
        params.update(lo=min(values), hi=max(values))  # NAB allows knowing the range in advance
    detector = create(name, **params)
    update = detector.update
    out: list[float] = []
    append = out.append
    for reading in series_readings(device, stamps, values):
        score = update(reading).score
        append(0.0 if score < 0.0 else 1.0 if score > 1.0 else score)
    return out


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """The benchmark over local files; ``settings`` is unused (every benchmark takes them)."""
    data: Path = args.data
    windows_path = data / "labels" / "combined_windows.json"
    if not windows_path.is_file():
        raise GridSentinelError(f"{windows_path}: not found (expected a NAB folder with labels/ and data/)")
    windows_by_file: dict[str, list[list[str]]] = json.loads(windows_path.read_text())
    out_dir: Path = args.out
    files: list[FileData] = []
    rows = 0
    busy = 0.0
    for rel in sorted(windows_by_file):
        path = data / "data" / rel
        raw_ts, stamps, values = load_file(path)
        wins = window_rows(stamps, [(_parse_ts(a), _parse_ts(b)) for a, b in windows_by_file[rel]])
        t0 = time.perf_counter()
        scores = run_detector(args.detector, rel, stamps, values)
        busy += time.perf_counter() - t0
        rows += len(values)
        files.append(FileData(rel, scores, wins))
        _write_scores(out_dir / rel, args.detector, raw_ts, values, scores, wins)
    results = score_all(files)
    rate = rows / busy if busy > 0 else 0.0
    emit(_as_json(args.detector, results, rows, rate), args.json,
         _tables(args.detector, results, rows, rate, out_dir), indent=None)
    return 0


def _write_scores(path: Path, detector: str, raw_ts: list[str], values: list[float], scores: list[float],
                  wins: list[tuple[int, int]]) -> None:
    path = path.with_name(f"{detector}_{path.name}")
    path.parent.mkdir(parents=True, exist_ok=True)
    label = [0] * len(values)
    for lo, hi in wins:
        for i in range(lo, hi + 1):
            label[i] = 1
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["timestamp", "value", "anomaly_score", "label"])
        for row in zip(raw_ts, values, (f"{s:.6f}" for s in scores), label, strict=True):
            w.writerow(row)


def _as_json(detector: str, results: dict[str, ProfileResult], rows: int, rate: float) -> dict[str, Any]:
    return {
        "detector": detector, "rows": rows, "rows_per_s": round(rate),
        "profiles": {
            name: {"score": round(r.normalized, 2), "threshold": r.threshold, "raw": round(r.raw, 4),
                   "files": {f.name: {"raw": round(f.raw, 4), "tp": f.tp, "fp": f.fp, "fn": f.fn,
                                      "score": None if f.normalized is None else round(f.normalized, 2)}
                             for f in r.files}}
            for name, r in results.items()
        },
    }


def _tables(detector: str, results: dict[str, ProfileResult], rows: int, rate: float, out_dir: Path) -> str:
    lines = [f"NAB, detector {detector!r}: {rows} rows, {rate:,.0f} rows/s (detector loop, one core); "
             f"per-row scores in {out_dir}"]
    for name, r in results.items():
        lines.append(f"\n{name}: score {r.normalized:.1f}  (threshold {r.threshold:.4f}, raw {r.raw:.3f})")
        lines.append(f"  {'file':<58} {'score':>7} {'raw':>8} {'TP':>3} {'FP':>4} {'FN':>3}")
        for f in r.files:
            sc = "-" if f.normalized is None else f"{f.normalized:.1f}"
            lines.append(f"  {f.name:<58} {sc:>7} {f.raw:>8.3f} {f.tp:>3} {f.fp:>4} {f.fn:>3}")
    return "\n".join(lines)
