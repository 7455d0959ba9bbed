"""NAB scoring, implemented from /work/shared/datasets/nab/SCORING.md (pure: lists in, numbers out).

Rows are indexed 0..N-1 per file; windows are inclusive ``(first_row, last_row)`` pairs. The corpus
threshold is optimised by sweeping every distinct score of the scored rows from high to low (plus 1.1,
"flag nothing"), updating the corpus sum incrementally, so the sweep costs one sort.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

NO_THRESHOLD = 1.1


@dataclass(frozen=True, slots=True)
class Profile:
    """Weights of one NAB application profile."""

    name: str
    a_tp: float
    a_fp: float
    a_fn: float


PROFILES: tuple[Profile, ...] = (
    Profile("standard", 1.0, 0.11, 1.0),
    Profile("reward_low_FP_rate", 1.0, 0.22, 1.0),
    Profile("reward_low_FN_rate", 1.0, 0.11, 2.0),
)


@dataclass(frozen=True, slots=True)
class FileData:
    """One scored file: per-row anomaly scores (in [0, 1]) and its windows as inclusive row ranges."""

    name: str
    scores: Sequence[float]
    windows: Sequence[tuple[int, int]]


@dataclass(slots=True)
class FileResult:
    name: str
    rows: int
    windows: int
    raw: float = 0.0
    tp: int = 0
    fp: int = 0
    fn: int = 0
    null: float = 0.0
    perfect: float = 0.0

    @property
    def normalized(self) -> float | None:
        """This file's score on NAB's 0–100 scale (None for a file without windows)."""
        span = self.perfect - self.null
        return None if span == 0 else 100.0 * (self.raw - self.null) / span


@dataclass(slots=True)
class ProfileResult:
    profile: Profile
    threshold: float
    raw: float
    null: float
    perfect: float
    files: list[FileResult] = field(default_factory=list)

    @property
    def normalized(self) -> float:
        span = self.perfect - self.null
        return 0.0 if span == 0 else 100.0 * (self.raw - self.null) / span


def probation(n: int) -> int:
    """Rows at the start of a file that are never scored: min(floor(0.15·N), 750)."""
    return min(math.floor(0.15 * n), 750)


def sigma(y: float) -> float:
    """NAB's scaled sigmoid σ(y) = 2/(1+e^{5y}) − 1."""
    return 2.0 / (1.0 + math.exp(5.0 * y)) - 1.0


def row_values(n: int, windows: Sequence[tuple[int, int]], profile: Profile) -> tuple[list[float], list[int]]:
    """The value of flagging each row, and the index of the window it falls in (-1 outside).

    >>> vals, win = row_values(6, [(2, 3)], PROFILES[0])
    >>> [round(v, 3) for v in vals], win
    ([-0.11, -0.11, 1.0, 0.86, -0.109, -0.11], [-1, -1, 0, 0, -1, -1])
    """
    values = [-profile.a_fp] * n
    owner = [-1] * n
    s1 = sigma(-1.0)
    ordered = sorted(windows)
    for k, (lo, hi) in enumerate(ordered):
        width = hi - lo + 1
        for i in range(max(lo, 0), min(hi, n - 1) + 1):
            values[i] = profile.a_tp * sigma(-(hi - i + 1) / width) / s1
            owner[i] = k
        end = ordered[k + 1][0] if k + 1 < len(ordered) else n
        for i in range(hi + 1, min(end, n)):
            x = (i - hi) / max(width - 1, 1)
            values[i] = -profile.a_fp * math.tanh(2.5 * x) if x <= 3.0 else -profile.a_fp
    return values, owner


def score_corpus(files: Sequence[FileData], profile: Profile) -> ProfileResult:
    """Optimise one threshold for the corpus and score every file at it (SCORING.md steps 2–6)."""
    # (score, file index, row value, global window id or -1)
    events: list[tuple[float, int, float, int]] = []
    window_base: list[int] = []
    n_windows = 0
    for fi, f in enumerate(files):
        values, owner = row_values(len(f.scores), f.windows, profile)
        window_base.append(n_windows)
        for i in range(probation(len(f.scores)), len(f.scores)):
            wid = owner[i] + n_windows if owner[i] >= 0 else -1
            events.append((float(f.scores[i]), fi, values[i], wid))
        n_windows += len(f.windows)
    events.sort(key=lambda e: -e[0])
    best = [-profile.a_fn] * n_windows
    total = -profile.a_fn * n_windows
    best_total, best_theta = total, NO_THRESHOLD
    j = 0
    # rows at or above "flag nothing" (scores > 1) are flagged at every threshold
    while j < len(events) and events[j][0] >= NO_THRESHOLD:
        total += _flag(events[j], best, profile)
        j += 1
    best_total = total
    while j < len(events):
        theta = events[j][0]
        while j < len(events) and events[j][0] == theta:
            total += _flag(events[j], best, profile)
            j += 1
        if total > best_total + 1e-12:
            best_total, best_theta = total, theta
    result = ProfileResult(profile, best_theta, 0.0, -profile.a_fn * n_windows, profile.a_tp * n_windows)
    for f in files:
        result.files.append(score_file(f, profile, best_theta))
    result.raw = sum(fr.raw for fr in result.files)
    return result


def _flag(event: tuple[float, int, float, int], best: list[float], profile: Profile) -> float:
    _, _, value, wid = event
    if wid < 0:
        return value
    if value > best[wid]:
        gain = value - best[wid]
        best[wid] = value
        return gain
    return 0.0


def score_file(f: FileData, profile: Profile, threshold: float) -> FileResult:
    """One file's raw score and TP/FP/FN counts at ``threshold``."""
    n = len(f.scores)
    values, owner = row_values(n, f.windows, profile)
    best = [None] * len(f.windows)  # type: list[float | None]
    res = FileResult(f.name, n, len(f.windows), null=-profile.a_fn * len(f.windows),
                     perfect=profile.a_tp * len(f.windows))
    for i in range(probation(n), n):
        if f.scores[i] < threshold:
            continue
        k = owner[i]
        if k < 0:
            res.raw += values[i]
            res.fp += 1
        elif best[k] is None or values[i] > best[k]:  # type: ignore[operator]
            best[k] = values[i]
    for b in best:
        if b is None:
            res.raw -= profile.a_fn
            res.fn += 1
        else:
            res.raw += b
            res.tp += 1
    return res


def score_all(files: Sequence[FileData]) -> dict[str, ProfileResult]:
    """Every profile of ``PROFILES``, each with its own optimised threshold."""
    return {p.name: score_corpus(files, p) for p in PROFILES}


def window_rows(timestamps: Sequence[datetime],
                windows: Sequence[tuple[datetime, datetime]]) -> list[tuple[int, int]]:
    """Inclusive window bounds (datetimes) to inclusive row ranges; ``timestamps`` must be sorted.

    >>> ts = [datetime(2014, 1, 1, h) for h in range(6)]
    >>> window_rows(ts, [(datetime(2014, 1, 1, 2), datetime(2014, 1, 1, 3, 30))])
    [(2, 3)]
    """
    out = []
    for start, end in windows:
        lo = bisect.bisect_left(timestamps, start)
        hi = bisect.bisect_right(timestamps, end) - 1
        if lo <= hi:
            out.append((lo, hi))
    return out


def summary(results: Mapping[str, ProfileResult]) -> dict[str, float]:
    """Normalised score per profile."""
    return {name: r.normalized for name, r in results.items()}
