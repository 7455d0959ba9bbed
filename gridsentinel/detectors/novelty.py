"""A general-purpose streaming anomaly scorer: novelty of quantised contexts, then surprise of surprise.

Method (our own, in the spirit of context-based detectors):

1. The value is scaled to [0, 1] with the series range (known in advance when available, else learnt
   online) and quantised into ``bins`` levels.
2. Contexts of order 1..``order`` (the last k levels) are counted; a context seen fewer than ``min_count``
   times before is novel. The raw novelty is the weighted share of novel contexts at this row, averaged
   over two grids offset by half a level (so jitter across one bin edge counts half).
3. Raw novelty is noisy on noisy series, so the output is how unusual the *recent* novelty is against the
   long-run novelty (a short mean against a slow mean and spread, through a Gaussian tail), gated so that
   only rows that are themselves novel can score.
4. After a row scores high, the output is held down for ``refractory`` rows: one incident, one peak.
"""

from __future__ import annotations

import math
from collections import deque
from typing import ClassVar

from gridsentinel.core.records import Reading
from gridsentinel.detectors.base import Detector, Outcome
from gridsentinel.detectors.policy import Level, Policy
from gridsentinel.detectors.scorers import widen_and_scale


class NoveltyDetector(Detector):
    """Scores in [0, 1] how novel the latest value's context is; fires on a never-seen pattern.

    >>> d = NoveltyDetector(lo=0.0, hi=10.0)
    >>> wave = [5, 6, 7, 6, 5, 4, 3, 4] * 40
    >>> scores = [d.update(Reading("d", "value", "", v, 60.0 * i)).score for i, v in enumerate(wave + [10])]
    >>> max(scores[100:-1]) < 0.5 < scores[-1]
    True
    >>> d2 = NoveltyDetector(lo=0.0, hi=10.0)
    >>> rows = [Reading("d", "value", "", v, 60.0 * i) for i, v in enumerate(wave + [10])]
    >>> [f.kind for r in rows for f in d2.update(r).findings]
    ['novelty']
    """

    name: ClassVar[str] = "novelty"
    _state_fields: ClassVar[tuple[str, ...]] = (
        "lo", "hi", "recent", "shifted", "counts", "n", "mean", "var", "short", "quiet")
    _children: ClassVar[tuple[str, ...]] = ("policy",)

    def __init__(self, lo: float | None = None, hi: float | None = None, bins: int = 8, order: int = 2,
                 min_count: int = 1, short_alpha: float = 0.5, long_alpha: float = 0.002,
                 refractory: int = 100, fire: float = 0.9, warmup: int = 30) -> None:
        self.lo, self.hi = lo, hi
        self.bins = bins
        self.order = order
        self.min_count = min_count
        self.short_alpha = short_alpha
        self.long_alpha = long_alpha
        self.refractory = refractory
        self.fire = fire
        self.warmup = warmup
        self.recent: deque[int] = deque(maxlen=order)
        self.shifted: deque[int] = deque(maxlen=order)
        self.counts: dict[str, int] = {}
        self.n = 0
        self.mean = 0.0
        self.var = 0.0
        self.short = 0.0
        self.quiet = 0
        self.policy = Policy("novelty", [Level("advisory", fire, fire)])

    def _scaled(self, x: float) -> float:
        return widen_and_scale(self, x)

    def _novelty(self, recent: deque[int], tag: str) -> float:
        counts = self.counts
        novel = 0.0
        key = tag
        weight_sum = 0.0
        for k in range(len(recent)):
            key = f"{key}.{recent[-1 - k]}"
            c = counts.get(key, 0)
            w = 1.0 / (k + 1)
            weight_sum += w
            if c < self.min_count:
                novel += w
            counts[key] = c + 1
        return novel / weight_sum

    def update(self, reading: Reading) -> Outcome:
        v = self._scaled(reading.value) * self.bins
        top = self.bins - 1
        q = int(v)
        self.recent.append(q if q < top else top)
        # a second grid shifted by half a level: a value jittering across one grid's boundary is not
        # novel unless it is novel on both grids
        q = int(v + 0.5)
        self.shifted.append(q if q < self.bins else self.bins)
        raw = 0.5 * (self._novelty(self.recent, "a") + self._novelty(self.shifted, "b"))
        self.n += 1
        # surprise of surprise: short mean of raw novelty against its slow mean and spread
        self.short += self.short_alpha * (raw - self.short)
        a = self.long_alpha if self.n > 1.0 / self.long_alpha else 1.0 / self.n
        d = raw - self.mean
        self.mean += a * d
        self.var = (1.0 - a) * (self.var + a * d * d)
        score = 0.0
        if self.n > self.warmup and raw > 0.0:
            sd = math.sqrt(self.var) + 1e-3
            z = (self.short - self.mean) / sd
            score = 0.5 * math.erfc(-z / math.sqrt(2.0))  # Gaussian CDF of z
        if self.quiet > 0:
            self.quiet -= 1
            score = 0.0
        elif score >= self.fire:
            self.quiet = self.refractory
        return self._emit(score, self.policy.step(reading.observed_at, score, reading.value))
