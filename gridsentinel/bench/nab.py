"""``gridsentinel bench nab``: NAB scores of the general-purpose detectors, out of fold (leave one category out).

NAB's rules: each file is read one row at a time (no look-ahead), with a fresh detector per file and
the same parameters for every file; the file's minimum and maximum may be known in advance, so a
detector whose constructor takes ``lo``/``hi`` gets them.

The protocol (docs/detectors.md, "NAB benchmark"): every candidate detector runs once per setting of its
small grid (``GRIDS``). For each category of the corpus in turn, that category is held out: the setting
and the corpus threshold are chosen on the other categories only (NAB's threshold optimisation, per
profile), and the held-out files are scored at that setting and threshold. The held-out raw scores of
all folds are pooled and normalised against the whole corpus's null and perfect detectors: that is the
headline, out-of-fold score. The in-sample score (setting and threshold chosen on every file, the
figure NAB's scoreboard reports) is printed beside it, labelled. The default detector is the candidate
with the best out-of-fold standard score.
"""

from __future__ import annotations

import argparse
import csv
import inspect
import itertools
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from gridsentinel.bench.common import emit
from gridsentinel.detectors.nab_scoring import (
    PROFILES,
    FileData,
    FileResult,
    Profile,
    ProfileResult,
    score_corpus,
    score_file,
    window_rows,
)
from gridsentinel.detectors.registry import DETECTORS, create
from gridsentinel.engineering.sources import read_series, series_readings
from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings

# Chosen by the protocol below: the best out-of-fold standard score among the candidates not tuned on the
# corpus outside the protocol (docs/detectors.md, "NAB benchmark").
DEFAULT_DETECTOR = "likelihood"


def _grid(**axes: Sequence[Any]) -> tuple[dict[str, Any], ...]:
    keys = list(axes)
    return tuple(dict(zip(keys, combo, strict=True)) for combo in itertools.product(*axes.values()))


# Settings each candidate may choose from in a fold (small on purpose: a large grid overfits the training
# categories). `robust` and `seasonal` are not candidates: they are per-device alarm detectors whose
# scores are unbounded z-scores that saturate, not anomaly scores comparable between series.
GRIDS: dict[str, tuple[dict[str, Any], ...]] = {
    "likelihood": _grid(bins=(6, 8, 10), refractory=(50, 150), stats=("recent", "history"),
                        discount_looks=(False, True)),
    "novelty": _grid(refractory=(50, 100, 200)),
    "ensemble": _grid(refractory=(50, 100, 200)),
}

# Candidates whose fixed settings were chosen by searches over all 25 shared files before this protocol
# existed (docs/detectors.md): every held-out fold was part of their tuning, so their out-of-fold figure is
# biased upwards and they are shown but not chosen while another candidate is left.
TUNED_ON_SHARED_FILES = frozenset({"ensemble", "novelty"})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", required=True, type=Path,
                        help="NAB folder holding data/<category>/*.csv and labels/combined_windows.json")
    parser.add_argument("--detector", action="append", choices=sorted(DETECTORS), metavar="NAME",
                        help="registered detector to evaluate (repeatable; default: the candidates "
                             f"{', '.join(GRIDS)}); one not in that list runs with its default settings")
    parser.add_argument("--out", type=Path, default=None,
                        help="also write each detector's per-row scores (its in-sample standard setting) "
                             "as NAB results CSVs under this folder")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")


def _parse_ts(text: str) -> datetime:
    return datetime.fromisoformat(text)


# The backtest's CSV source: NAB and `gridsentinel backtest --source csv` read files the same way.
load_file = read_series


@dataclass(frozen=True, slots=True)
class CorpusFile:
    name: str  # "<category>/<file>.csv"
    raw_ts: list[str]
    stamps: list[datetime]
    values: list[float]
    windows: list[tuple[int, int]]

    @property
    def category(self) -> str:
        return self.name.split("/", 1)[0]


def load_corpus(data: Path) -> list[CorpusFile]:
    windows_path = data / "labels" / "combined_windows.json"
    if not windows_path.is_file():
        raise GridSentinelError(f"{windows_path}: not found (expected a NAB folder with labels/ and data/)")
    windows_by_file: dict[str, list[list[str]]] = json.loads(windows_path.read_text())
    out = []
    for rel in sorted(windows_by_file):
        path = data / "data" / rel
        if not path.is_file():
            raise GridSentinelError(f"{path}: listed in {windows_path} but not found")
        raw_ts, stamps, values = load_file(path)
        wins = window_rows(stamps, [(_parse_ts(a), _parse_ts(b)) for a, b in windows_by_file[rel]])
        out.append(CorpusFile(rel, raw_ts, stamps, values, wins))
    return out


def run_detector(name: str, device: str, stamps: list[datetime], values: list[float],
                 **settings: Any) -> list[float]:
    """Fresh detector, one row at a time through ``update``; scores clipped to [0, 1]."""
    params: dict[str, Any] = dict(settings)
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


@dataclass(slots=True)
class Fold:
    category: str
    setting: int  # index into the detector's grid
    threshold: float
    train_score: float
    held_out: list[FileResult]

    @property
    def windows(self) -> int:
        return sum(f.windows for f in self.held_out)

    @property
    def held_out_score(self) -> float | None:
        """The held-out files' own normalised score (None for a category without windows)."""
        null = sum(f.null for f in self.held_out)
        perfect = sum(f.perfect for f in self.held_out)
        raw = sum(f.raw for f in self.held_out)
        return None if perfect == null else 100.0 * (raw - null) / (perfect - null)


@dataclass(slots=True)
class OutOfFold:
    profile: Profile
    folds: list[Fold] = field(default_factory=list)

    @property
    def raw(self) -> float:
        return sum(f.raw for fold in self.folds for f in fold.held_out)

    @property
    def normalized(self) -> float:
        """Pooled held-out raw scores against the whole corpus's null and perfect detectors."""
        null = sum(f.null for fold in self.folds for f in fold.held_out)
        perfect = sum(f.perfect for fold in self.folds for f in fold.held_out)
        return 0.0 if perfect == null else 100.0 * (self.raw - null) / (perfect - null)

    def counts(self) -> tuple[int, int, int]:
        files = [f for fold in self.folds for f in fold.held_out]
        return sum(f.tp for f in files), sum(f.fp for f in files), sum(f.fn for f in files)


def best_setting(runs: Sequence[Sequence[FileData]], rows: Sequence[int],
                 profile: Profile) -> tuple[int, ProfileResult]:
    """The setting (index into ``runs``) whose optimised corpus score on files ``rows`` is highest (ties:
    the earlier setting), with that result."""
    best: tuple[int, ProfileResult] | None = None
    for s, files in enumerate(runs):
        result = score_corpus([files[i] for i in rows], profile)
        if best is None or result.normalized > best[1].normalized + 1e-9:
            best = (s, result)
    if best is None:
        raise ValueError("no settings to choose from")
    return best


def out_of_fold(runs: Sequence[Sequence[FileData]], categories: Sequence[str], profile: Profile) -> OutOfFold:
    """Leave one category out: choose setting and threshold without it, score it at that choice.

    ``runs[s][i]`` is file ``i`` scored with setting ``s``; ``categories[i]`` is file ``i``'s category.
    Nothing of a held-out category's files is read before its setting and threshold are fixed.
    """
    result = OutOfFold(profile)
    for held in sorted(set(categories)):
        train = [i for i, c in enumerate(categories) if c != held]
        test = [i for i, c in enumerate(categories) if c == held]
        if not train:
            raise GridSentinelError(f"only one category ({held}): leave-one-category-out needs two or more")
        s, chosen = best_setting(runs, train, profile)
        result.folds.append(Fold(held, s, chosen.threshold, chosen.normalized,
                                 [score_file(runs[s][i], profile, chosen.threshold) for i in test]))
    return result


@dataclass(slots=True)
class Evaluation:
    detector: str
    grid: tuple[dict[str, Any], ...]
    rows: int  # rows scored (every setting counted)
    seconds: float
    oof: dict[str, OutOfFold]
    in_sample: dict[str, tuple[int, ProfileResult]]
    runs: list[list[FileData]]

    @property
    def rows_per_s(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


def evaluate(name: str, corpus: Sequence[CorpusFile]) -> Evaluation:
    grid = GRIDS.get(name, ({},))
    runs: list[list[FileData]] = []
    rows = 0
    busy = 0.0
    for settings in grid:
        files = []
        for f in corpus:
            t0 = time.perf_counter()
            scores = run_detector(name, f.name, f.stamps, f.values, **settings)
            busy += time.perf_counter() - t0
            rows += len(f.values)
            files.append(FileData(f.name, scores, f.windows))
        runs.append(files)
    categories = [f.category for f in corpus]
    everything = list(range(len(corpus)))
    return Evaluation(name, grid, rows, busy,
                      {p.name: out_of_fold(runs, categories, p) for p in PROFILES},
                      {p.name: best_setting(runs, everything, p) for p in PROFILES}, runs)


@dataclass(frozen=True, slots=True)
class CategoryView:
    """One category's score three ways, to see where the in-sample and out-of-fold figures part."""

    category: str
    windows: int
    own_threshold: float  # the best threshold for this category alone (at the in-sample setting)
    own: float | None  # its score there: what no single corpus threshold can beat at this setting
    in_sample: float | None  # at the in-sample setting and threshold
    out_of_fold: float | None  # at the setting and threshold chosen without it


def _category_score(results: Sequence[FileResult]) -> float | None:
    null = sum(f.null for f in results)
    perfect = sum(f.perfect for f in results)
    return None if perfect == null else 100.0 * (sum(f.raw for f in results) - null) / (perfect - null)


def _category(name: str) -> str:
    return name.split("/", 1)[0]


def category_views(ev: Evaluation, profile: Profile) -> list[CategoryView]:
    """Per category: its own best threshold and score, its score in-sample, and out of fold (analysis only:
    the first two look at the category itself, which the protocol's choice never does)."""
    s, in_sample = ev.in_sample[profile.name]
    held = {fold.category: fold.held_out for fold in ev.oof[profile.name].folds}
    views = []
    for category in sorted(held):
        own = score_corpus([f for f in ev.runs[s] if _category(f.name) == category], profile)
        views.append(CategoryView(
            category, sum(f.windows for f in held[category]), own.threshold, _category_score(own.files),
            _category_score([f for f in in_sample.files if _category(f.name) == category]),
            _category_score(held[category])))
    return views


def gap_parts(ev: Evaluation, profile: Profile) -> tuple[float, float]:
    """In-sample minus out of fold, split in two: (threshold part, setting part). The threshold part is
    the loss when only the threshold is chosen without the held-out category (the setting fixed at the
    in-sample one); the setting part is the rest."""
    s, in_sample = ev.in_sample[profile.name]
    categories = [_category(f.name) for f in ev.runs[s]]
    threshold_only = out_of_fold([ev.runs[s]], categories, profile).normalized
    return in_sample.normalized - threshold_only, threshold_only - ev.oof[profile.name].normalized


def choose_default(evaluations: Sequence[Evaluation]) -> str:
    """The candidate with the best out-of-fold standard score, among those not tuned on the corpus outside
    the protocol (all of them when none is left)."""
    clean = [e for e in evaluations if e.detector not in TUNED_ON_SHARED_FILES] or list(evaluations)
    return max(clean, key=lambda e: e.oof["standard"].normalized).detector


def run(args: argparse.Namespace, settings: Settings | None = None) -> int:
    """The benchmark over local files; ``settings`` is unused (every benchmark takes them)."""
    corpus = load_corpus(args.data)
    if not corpus:
        raise GridSentinelError(f"{args.data}: no files listed in labels/combined_windows.json")
    names: list[str] = list(dict.fromkeys(args.detector or GRIDS))
    evaluations = [evaluate(name, corpus) for name in names]
    chosen = choose_default(evaluations)
    if args.out is not None:
        for ev in evaluations:
            s, _ = ev.in_sample["standard"]
            for f, scored in zip(corpus, ev.runs[s], strict=True):
                _write_scores(args.out / f.name, ev.detector, f.raw_ts, f.values, list(scored.scores), f.windows)
    rows = sum(len(f.values) for f in corpus)
    categories = sorted({f.category for f in corpus})
    emit(_as_json(evaluations, chosen, len(corpus), rows, categories), args.json,
         _tables(evaluations, chosen, len(corpus), rows, categories), indent=None)
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


def _fold_json(ev: Evaluation, fold: Fold) -> dict[str, Any]:
    held = fold.held_out_score
    return {"category": fold.category, "setting": ev.grid[fold.setting], "threshold": fold.threshold,
            "train_score": round(fold.train_score, 2),
            "held_out_score": None if held is None else round(held, 2), "windows": fold.windows,
            "files": {f.name: {"raw": round(f.raw, 4), "tp": f.tp, "fp": f.fp, "fn": f.fn} for f in fold.held_out}}


def _round(x: float | None) -> float | None:
    return None if x is None else round(x, 2)


def _as_json(evaluations: list[Evaluation], chosen: str, files: int, rows: int,
             categories: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {"protocol": "leave-one-category-out", "files": files, "rows": rows,
                           "categories": categories, "default": chosen, "detectors": {}}
    for ev in evaluations:
        det: dict[str, Any] = {"rows_per_s": round(ev.rows_per_s), "grid": list(ev.grid),
                               "tuned_on_shared_files": ev.detector in TUNED_ON_SHARED_FILES,
                               "out_of_fold": {}, "in_sample": {}}
        for p in PROFILES:
            oof = ev.oof[p.name]
            tp, fp, fn = oof.counts()
            threshold_part, setting_part = gap_parts(ev, p)
            det["out_of_fold"][p.name] = {
                "score": round(oof.normalized, 2), "tp": tp, "fp": fp, "fn": fn,
                "folds": [_fold_json(ev, fold) for fold in oof.folds],
                "gap": {"threshold": round(threshold_part, 2), "setting": round(setting_part, 2)},
                "categories": [{"category": v.category, "windows": v.windows,
                                "own_threshold": v.own_threshold, "own": _round(v.own),
                                "in_sample": _round(v.in_sample), "out_of_fold": _round(v.out_of_fold)}
                               for v in category_views(ev, p)]}
        for name, (s, r) in ev.in_sample.items():
            det["in_sample"][name] = {
                "score": round(r.normalized, 2), "setting": ev.grid[s], "threshold": r.threshold,
                "tp": sum(f.tp for f in r.files), "fp": sum(f.fp for f in r.files),
                "fn": sum(f.fn for f in r.files)}
        out["detectors"][ev.detector] = det
    return out


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}"


def _tables(evaluations: list[Evaluation], chosen: str, files: int, rows: int, categories: list[str]) -> str:
    short = {"standard": "std", "reward_low_FP_rate": "lowFP", "reward_low_FN_rate": "lowFN"}
    lines = [f"NAB, leave one category out: {files} files, {rows:,} rows, {len(categories)} folds "
             f"({', '.join(categories)})",
             "out of fold = setting and threshold chosen on the other categories, scored on the held-out one "
             "(the headline)",
             "in-sample   = setting and threshold chosen on all files, scored on the same files (not a "
             "measure of generalisation)", "",
             f"{'detector':<12} {'out of fold: std':>16} {'lowFP':>6} {'lowFN':>6}   "
             f"{'in-sample: std':>14} {'lowFP':>6} {'lowFN':>6}   {'rows/s':>8}  settings"]
    for ev in evaluations:
        oofs = [ev.oof[p.name].normalized for p in PROFILES]
        ins = [ev.in_sample[p.name][1].normalized for p in PROFILES]
        lines.append(f"{ev.detector:<12} {oofs[0]:>16.1f} {oofs[1]:>6.1f} {oofs[2]:>6.1f}   "
                     f"{ins[0]:>14.1f} {ins[1]:>6.1f} {ins[2]:>6.1f}   {ev.rows_per_s:>8,.0f}  {len(ev.grid)}")
    tuned = [e.detector for e in evaluations if e.detector in TUNED_ON_SHARED_FILES]
    if tuned:
        lines.append(f"\n{', '.join(tuned)}: fixed settings tuned on all shared files before this protocol, "
                     "so out of fold is biased up for them; not chosen while another candidate is left")
    lines.append(f"default (best out-of-fold standard score): {chosen}")
    for ev in evaluations:
        for p in PROFILES:
            oof = ev.oof[p.name]
            tp, fp, fn = oof.counts()
            lines.append(f"\n{ev.detector}, {p.name} ({short[p.name]}): out of fold {oof.normalized:.1f} "
                         f"(TP {tp}, FP {fp}, FN {fn})")
            lines.append(f"  {'held-out category':<24} {'held-out':>8} {'train':>6} {'thresh':>7} "
                         f"{'TP':>3} {'FP':>4} {'FN':>3}  setting chosen on the other categories")
            for fold in oof.folds:
                held = fold.held_out_score
                ftp = sum(f.tp for f in fold.held_out)
                ffp = sum(f.fp for f in fold.held_out)
                ffn = sum(f.fn for f in fold.held_out)
                lines.append(f"  {fold.category:<24} {'-' if held is None else f'{held:.1f}':>8} "
                             f"{fold.train_score:>6.1f} {fold.threshold:>7.4f} {ftp:>3} {ffp:>4} {ffn:>3}  "
                             f"{ev.grid[fold.setting] or 'defaults'}")
            s, r = ev.in_sample[p.name]
            lines.append(f"  in-sample: {r.normalized:.1f} at threshold {r.threshold:.4f}, "
                         f"setting {ev.grid[s] or 'defaults'}")
            threshold_part, setting_part = gap_parts(ev, p)
            lines.append(f"  in-sample - out of fold = {r.normalized - oof.normalized:.1f}: "
                         f"{threshold_part:.1f} from choosing the threshold without the held-out category, "
                         f"{setting_part:.1f} from choosing the setting without it")
            lines.append(f"  {'per category (analysis)':<24} {'windows':>7} {'own best':>8} {'own thr':>9} "
                         f"{'in-sample':>9} {'out of fold':>11}")
            for v in category_views(ev, p):
                lines.append(f"  {v.category:<24} {v.windows:>7} {_fmt(v.own):>8} {v.own_threshold:>9.4f} "
                             f"{_fmt(v.in_sample):>9} {_fmt(v.out_of_fold):>11}")
    return "\n".join(lines)
