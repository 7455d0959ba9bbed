"""A general-purpose streaming anomaly scorer: two cheap novelty detectors, fused, then spike-then-suppress.

Method (our own; the NAB default before issue 14, see docs/detectors.md):

1. The value is scaled to [0, 1] with the series range (known in advance when available, else learnt
   online).
2. **Sequence novelty**: the value is quantised into ``bins`` levels on two grids offset by half a level;
   contexts of order 1..``order`` (the last k levels) are counted, and the raw score is the weighted
   share of never-seen contexts (order k weighs 1/k), averaged over the two grids.
3. **Time-of-day novelty**: the value is quantised into ``day_bins`` levels (two offset grids again) and
   paired with its ``slot_s`` slot of the day (local time via ``utc_offset_s``); the raw score is the
   share of grids on which this (slot, level) pair was never seen. It catches a value that is normal for
   the series but not at this time of day (a missing daily peak, a rush hour at night). During the
   first day of the stream it only learns (no expectation per slot yet), so it cannot score.
4. Each raw score is calibrated against its own history ("surprise of surprise"): a short EWMA of the
   raw score (``short_alpha``) against its slow mean and spread (``long_alpha``) gives a z; only a row
   that is itself novel can score. The two z are fused by taking the larger.
5. The output is ``z / (z + fire)`` in [0, 1) (0.5 at the firing level). After a row reaches it, the
   output is held at 0 for ``refractory`` rows: one incident, one peak (NAB rewards the earliest
   detection in a window and charges every false positive).

Everything is O(1) per row: a handful of dictionary look-ups and a few EWMAs.
"""

from __future__ import annotations

import math
from collections import deque
from typing import ClassVar

from gridsentinel.core.records import Reading
from gridsentinel.detectors.base import Detector, Outcome
from gridsentinel.detectors.policy import Level, Policy
from gridsentinel.detectors.scorers import widen_and_scale

_DAY_S = 86400.0
_SQRT2 = math.sqrt(2.0)


class EnsembleDetector(Detector):
    """Scores in [0, 1) how novel a value is, by sequence and by time of day; fires once per incident.

    A daily wave whose peak goes missing on one day: every value is in the normal range and follows a
    normal step, but not at that time of day.

    >>> def wave(day, hour):
    ...     return 10.0 if 12 <= hour < 16 and day != 18 else 0.0
    >>> rows = [Reading("d", "value", "", wave(i // 24, i % 24), 3600.0 * i) for i in range(24 * 21)]
    >>> d = EnsembleDetector(lo=0.0, hi=10.0)
    >>> scores = [d.update(r).score for r in rows]
    >>> max(scores[48:24 * 18]) < 0.5 <= max(scores[24 * 18:24 * 19])
    True
    >>> d2 = EnsembleDetector(lo=0.0, hi=10.0)
    >>> [(f.kind, f.phase, divmod(int(f.observed_at // 3600), 24)) for r in rows for f in d2.update(r).findings
    ...  if f.phase == "open"]
    [('anomaly', 'open', (18, 14))]
    """

    name: ClassVar[str] = "ensemble"
    _state_fields: ClassVar[tuple[str, ...]] = (
        "lo", "hi", "recent", "shifted", "counts", "n", "mean", "var", "short", "quiet", "since")
    _children: ClassVar[tuple[str, ...]] = ("policy",)

    def __init__(self, lo: float | None = None, hi: float | None = None, bins: int = 8, order: int = 2,
                 day_bins: int = 8, slot_s: float = 3600.0, utc_offset_s: float = 0.0,
                 short_alpha: float = 0.5, long_alpha: float = 0.001, warmup: int = 30,
                 fire: float = 3.0, refractory: int = 100) -> None:
        if bins < 2 or day_bins < 2 or order < 1:
            raise ValueError("bins and day_bins must be >= 2 and order >= 1")
        if slot_s <= 0 or fire <= 0 or not 0 < short_alpha <= 1 or not 0 < long_alpha <= 1:
            raise ValueError("slot_s and fire must be > 0; short_alpha and long_alpha in (0, 1]")
        self.lo, self.hi = lo, hi
        self.bins = bins
        self.order = order
        self.day_bins = day_bins
        self.slot_s = slot_s
        self.utc_offset_s = utc_offset_s
        self.short_alpha = short_alpha
        self.long_alpha = long_alpha
        self.warmup = warmup
        self.fire = fire
        self.refractory = refractory
        self.recent: deque[int] = deque(maxlen=order)
        self.shifted: deque[int] = deque(maxlen=order)
        self.counts: dict[str, int] = {}
        self.n = 0
        # per component (sequence, time of day): slow mean and variance, short EWMA of the raw score
        self.mean = [0.0, 0.0]
        self.var = [0.0, 0.0]
        self.short = [0.0, 0.0]
        self.quiet = 0
        self.since: float | None = None  # event time of the first reading
        self.policy = Policy("anomaly", [Level("advisory", 0.5, 0.5)])

    def _scaled(self, x: float) -> float:
        return widen_and_scale(self, x)

    def _sequence(self, recent: deque[int], tag: str) -> float:
        counts = self.counts
        novel = 0.0
        weight_sum = 0.0
        key = tag
        for k in range(len(recent)):
            key = f"{key}.{recent[-1 - k]}"
            c = counts.get(key, 0)
            w = 1.0 / (k + 1)
            weight_sum += w
            if c == 0:
                novel += w
            counts[key] = c + 1
        return novel / weight_sum

    def _time_of_day(self, u: float, t: float) -> float:
        counts = self.counts
        slot = int(((t + self.utc_offset_s) % _DAY_S) // self.slot_s)
        v = u * self.day_bins
        top = self.day_bins - 1
        novel = 0.0
        for grid, offset in ((0, 0.0), (1, 0.5)):
            q = int(v + offset)
            key = f"d{grid}.{slot}.{min(q, top + grid)}"
            c = counts.get(key, 0)
            if c == 0:
                novel += 0.5
            counts[key] = c + 1
        return novel

    def _surprise(self, i: int, raw: float) -> float:
        """z of the short mean of raw score ``i`` against its slow mean and spread (0 unless raw > 0)."""
        short = self.short[i] = self.short[i] + self.short_alpha * (raw - self.short[i])
        a = self.long_alpha if self.n > 1.0 / self.long_alpha else 1.0 / self.n
        mean = self.mean[i]
        d = raw - mean
        self.mean[i] = mean + a * d
        self.var[i] = (1.0 - a) * (self.var[i] + a * d * d)
        if self.n <= self.warmup or raw <= 0.0:
            return 0.0
        return (short - self.mean[i]) / (math.sqrt(self.var[i]) + 1e-3)

    def update(self, reading: Reading) -> Outcome:
        u = self._scaled(reading.value)
        v = u * self.bins
        top = self.bins - 1
        q = int(v)
        self.recent.append(min(q, top))
        q = int(v + 0.5)  # second grid, offset by half a level
        self.shifted.append(min(q, self.bins))
        self.n += 1
        seq = 0.5 * (self._sequence(self.recent, "a") + self._sequence(self.shifted, "b"))
        day = self._time_of_day(u, reading.observed_at)
        z_day = self._surprise(1, day)
        if self.since is None:
            self.since = reading.observed_at
        if reading.observed_at - self.since < _DAY_S:
            z_day = 0.0  # the first day has no time-of-day expectation yet: it only learns
        z = max(self._surprise(0, seq), z_day)
        score = z / (z + self.fire) if z > 0.0 else 0.0
        if self.quiet > 0:
            self.quiet -= 1
            score = 0.0
        elif score >= 0.5:
            self.quiet = self.refractory
        if score < 0.5 and not self.policy.active:
            return Outcome(score)  # the policy would neither change state nor find anything
        return self._emit(score, self.policy.step(reading.observed_at, score, reading.value))
