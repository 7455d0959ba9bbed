"""A general-purpose streaming anomaly scorer whose output is a tail probability, not a raw score.

Method (our own code; the ideas come from published descriptions, see docs/detectors.md):

1. **Scale** the value to [0, 1] with the series range (known in advance when available, else learnt
   online).
2. **Raw surprise per row**, two components:
   - *context novelty* (CAD OSE's context operator; an adaptive-resonance category being created): the
     value is quantised into ``bins`` levels on two grids offset by half a level; contexts of order 1 and
     2 (the last one or two levels) are counted, and the raw score is the weighted share of contexts never
     seen before (order 2 weighs half);
   - *time-of-day novelty* (``daily``): the share of the two grids on which this (``slot_s`` slot of the
     day, level) pair is new. It may only score after the first day, and only while the time of day
     explains at least ``daily_r2`` of the value's variance (one minus the EW mean square of the
     residual from each slot's own EW mean, over the EW variance): a series without a daily shape, a
     noisy irregular one, never fires on it.
3. **Likelihood** (HTM's anomaly likelihood on its prediction error): a short EWMA of each raw score
   (``short_alpha``) against the raw score's long-run mean and spread (EW, ``long_alpha``; a plain running
   mean until ``1/long_alpha`` rows) gives a z, and its Gaussian tail probability p gives
   L = -log10(p), "decades of surprise". Only a row that is itself novel can score (the tail of an
   average must not keep firing). The two components are fused by the larger L. With
   ``stats="history"`` (the default) the mean and spread are those of the whole history instead (plain
   running sums from the first row, never forgotten), so a long quiet stretch does not shrink the spread
   towards 0 and make the next small novelty a 20-80-decade event.
   **Many looks** (``discount_looks``): a series watched for n rows has had about n·``long_alpha``
   independent chances to show a surprise this large, so L is lowered by log10(n·``long_alpha``) (from
   the 1/``long_alpha``-th row on; never below 0): the same surprise means less after months than after
   days, and a threshold means the same on a short series as on a long one.
4. **Output** ``L / (L + L_fire)`` with ``L_fire = -log10(p_fire)``: 0.5 at the firing probability and
   strictly below 1 for any finite surprise, so scores never pile up at 1.0 (the flaw of ``robust`` and
   ``seasonal`` on NAB) and a threshold is a tail probability whatever the series' scale or noise. No
   output during the first ``warmup`` rows (it only learns).
5. **One incident, one peak** (the mask of adaptive-resonance detectors): after a row reaches 0.5 the
   output is held at 0 for ``refractory`` rows. After a row that scores below 0.5, for ``refractory``
   rows only a row that beats the incident's highest score so far passes (a new record), so whatever
   threshold the caller applies later, an incident crosses it once (plus any higher peaks), not once per
   row of a cluster.

O(1) per row, pure Python: counts in flat lists (JSON-safe state of ints) and a few EWMAs.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import ClassVar, Literal

from gridsentinel.core.records import Reading
from gridsentinel.detectors.base import Detector, Outcome
from gridsentinel.detectors.policy import Level, Policy
from gridsentinel.detectors.scorers import widen_and_scale

_SQRT2 = math.sqrt(2.0)
_LN10 = math.log(10.0)
_HALF_LN_2PI = 0.5 * math.log(2.0 * math.pi)
# spread floors (in raw-score units): a series that has been perfectly regular has no spread, and any
# novelty then is a many-sigma event; the floor keeps that finite and comparable between series
_SD_FLOOR = 0.001


def tail_decades(z: float) -> float:
    """-log10 of the upper Gaussian tail probability of ``z`` (0 for z <= 0), finite for any finite z.

    >>> round(tail_decades(3.0), 2), round(tail_decades(40.0), 1), tail_decades(-1.0)
    (2.87, 349.4, 0.0)
    """
    if z <= 0.0:
        return 0.0
    if z < 30.0:
        return -math.log10(0.5 * math.erfc(z / _SQRT2))
    # asymptotic tail (erfc underflows past ~37): p ~ exp(-z²/2) / (z·sqrt(2π))
    return (0.5 * z * z + math.log(z) + _HALF_LN_2PI) / _LN10


class LikelihoodDetector(Detector):
    """Scores in [0, 1) the tail probability of recent surprise (context and time-of-day novelty).

    A noisy wave, then a level the series has never shown: the wave's own novelty is expected, the new
    level is not.

    >>> import random
    >>> rng = random.Random(1)
    >>> values = [5 + 2 * math.sin(i / 6) + rng.gauss(0, 0.3) for i in range(600)] + [9.5, 9.6, 9.4]
    >>> d = LikelihoodDetector(lo=0.0, hi=10.0)
    >>> scores = d.score_series(values, [60.0 * i for i in range(len(values))])
    >>> max(scores[:600]) < 0.5 <= max(scores[600:])
    True
    >>> d2 = LikelihoodDetector(lo=0.0, hi=10.0)
    >>> rows = [Reading("d", "value", "", v, 60.0 * i) for i, v in enumerate(values)]
    >>> [(f.kind, f.phase, int(f.observed_at // 60)) for r in rows for f in d2.update(r).findings][:1]
    [('anomaly', 'open', 600)]
    """

    name: ClassVar[str] = "likelihood"
    _state_fields: ClassVar[tuple[str, ...]] = (
        "lo", "hi", "n", "since", "last", "ctx", "tod", "slot_mean", "slot_seen", "level", "short", "mean",
        "var", "sums", "quiet", "record")
    _children: ClassVar[tuple[str, ...]] = ("policy",)

    def __init__(self, lo: float | None = None, hi: float | None = None, bins: int = 6, daily: bool = True,
                 daily_r2: float = 0.5, slot_s: float = 3600.0, utc_offset_s: float = 0.0,
                 short_alpha: float = 0.5, long_alpha: float = 0.001, p_fire: float = 1e-4,
                 refractory: int = 150, warmup: int = 30,
                 stats: Literal["recent", "history"] = "history", discount_looks: bool = True) -> None:
        if not 2 <= bins <= 64:
            raise ValueError(f"bins must be in 2..64, got {bins}")
        if not 0.0 <= daily_r2 <= 1.0:
            raise ValueError(f"daily_r2 must be a share of variance in [0, 1], got {daily_r2}")
        if not 60.0 <= slot_s <= 86400.0:
            raise ValueError(f"slot_s must be 60..86400 seconds, got {slot_s}")
        if not 0.0 < short_alpha <= 1.0 or not 0.0 < long_alpha <= 1.0:
            raise ValueError("short_alpha and long_alpha must be in (0, 1]")
        if not 0.0 < p_fire < 1.0:
            raise ValueError(f"p_fire must be a probability in (0, 1), got {p_fire}")
        if refractory < 0 or warmup < 0:
            raise ValueError("refractory and warmup must be >= 0 rows")
        if stats not in ("recent", "history"):
            raise ValueError(f"stats must be 'recent' or 'history', got {stats!r}")
        self.lo, self.hi = lo, hi
        self.bins = bins
        self.daily = daily
        self.daily_r2 = daily_r2
        self.slot_s = slot_s
        self.utc_offset_s = utc_offset_s
        self.short_alpha = short_alpha
        self.long_alpha = long_alpha
        self.p_fire = p_fire
        self.refractory = refractory
        self.warmup = warmup
        self.stats = stats
        self.discount_looks = discount_looks
        self._l_fire = -math.log10(p_fire)
        levels = bins + 1  # the offset grid has one level more
        slots = math.ceil(86400.0 / slot_s)
        self.n = 0
        self.since: float | None = None  # event time of the first reading
        self.last = [-1, -1]  # previous level on each grid
        # counts, flat: order-1 contexts of both grids, then order-2 contexts of both grids
        self.ctx = [0] * (2 * levels + 2 * levels * levels)
        # (slot, level) counts of both grids; each slot's EW mean of the scaled value, and whether seen
        self.tod = [0] * (2 * slots * levels)
        self.slot_mean = [0.0] * slots
        self.slot_seen = [0] * slots
        # EW mean and variance of the scaled value, and EW mean square of its residual from the slot mean:
        # the share of variance the time of day explains is 1 - level[2] / level[1]
        self.level = [0.0, 0.0, 0.0]
        # per component (context novelty, time-of-day novelty): short EWMA of the raw score, long-run
        # mean and variance of the raw score
        self.short = [0.0, 0.0]
        self.mean = [0.0, 0.0]
        self.var = [0.0, 0.0]
        # per component, the sum of the raw score, of its square, and the rows summed, over the whole history
        # (stats="history"); the count is the sums' own: a state saved without them (design 10) starts them
        # afresh, and the component stays silent for its first ``warmup`` rows as a new detector does
        self.sums = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0]
        self.quiet = 0
        self.record = 0.0  # the highest score of the incident being held (1.0: it fired, hold everything)
        self.policy = Policy("anomaly", [Level("advisory", 0.5, 0.5)])

    def _scaled(self, x: float) -> float:
        return widen_and_scale(self, x)

    def _decades(self, i: int, raw: float, a: float, live: bool) -> float:
        """Surprise of component ``i`` in decades of tail probability: the short mean of its raw score
        against the raw score's long-run mean and spread (before this row); 0 unless this row is itself
        novel and ``live``."""
        short = self.short[i] = self.short[i] + self.short_alpha * (raw - self.short[i])
        if self.stats == "history":
            sums = self.sums
            j = 3 * i
            k = sums[j + 2]  # rows summed before this one (n - 1 for a detector that started with them)
            mean = sums[j] / k if k else 0.0
            var = sums[j + 1] / k - mean * mean if k else 0.0
            sums[j] += raw
            sums[j + 1] += raw * raw
            sums[j + 2] = k + 1
            if var < 0.0:  # rounding
                var = 0.0
            if k < self.warmup:
                live = False
        else:
            mean = self.mean[i]
            var = self.var[i]
            d = raw - mean
            self.mean[i] = mean + a * d
            self.var[i] = (1.0 - a) * (var + a * d * d)
        if raw <= 0.0 or not live:
            return 0.0
        return tail_decades((short - mean) / (math.sqrt(var) + _SD_FLOOR))

    def _context_novelty(self, u: float) -> float:
        """Weighted share of never-seen contexts (order 1 weighs 1, order 2 weighs 1/2) over two grids."""
        bins = self.bins
        levels = bins + 1
        ctx = self.ctx
        v = u * bins
        qa = int(v)
        if qa >= bins:
            qa = bins - 1
        qb = int(v + 0.5)  # the grid offset by half a level: jitter across one edge is half as novel
        pa, pb = self.last
        self.last = [qa, qb]
        novel = 0.0
        for i in (qa, levels + qb):
            if ctx[i] == 0:
                novel += 1.0
            ctx[i] += 1
        if pa < 0:
            return 0.5 * novel
        base = 2 * levels
        for i in (base + pa * levels + qa, base + levels * levels + pb * levels + qb):
            if ctx[i] == 0:
                novel += 0.5
            ctx[i] += 1
        return novel / 3.0

    def _time_of_day(self, u: float, t: float, a: float) -> tuple[float, bool]:
        """Raw time-of-day novelty (share of the two grids on which this (slot, level) pair is new), and
        whether it may score: after the first day, and once the time of day explains ``daily_r2`` of the
        value's variance (a series without a daily shape never scores on it)."""
        slot = int(((t + self.utc_offset_s) % 86400.0) // self.slot_s)
        level = self.level
        d = u - level[0]
        level[0] += a * d
        level[1] = (1.0 - a) * (level[1] + a * d * d)
        if self.slot_seen[slot]:
            r = u - self.slot_mean[slot]
            level[2] += a * (r * r - level[2])
            self.slot_mean[slot] += 0.1 * r  # a slot comes once a day: its mean follows the last ~10 days
        else:
            self.slot_seen[slot] = 1
            self.slot_mean[slot] = u
        bins = self.bins
        levels = bins + 1
        v = u * bins
        qa = int(v)
        if qa >= bins:
            qa = bins - 1
        tod = self.tod
        novel = 0.0
        for i in (2 * slot * levels + qa, (2 * slot + 1) * levels + int(v + 0.5)):
            if tod[i] == 0:
                novel += 0.5
            tod[i] += 1
        since = self.since
        live = (since is not None and t - since >= 86400.0 and level[1] > 0.0
                and level[2] <= (1.0 - self.daily_r2) * level[1])
        return novel, live

    def step(self, value: float, t: float) -> float:
        """Learn one value and return its score (the detector's whole per-row work, without a policy)."""
        u = self._scaled(value)
        self.n += 1
        if self.since is None:
            self.since = t
        a = self.long_alpha if self.n * self.long_alpha > 1.0 else 1.0 / self.n
        live = self.n > self.warmup
        decades = self._decades(0, self._context_novelty(u), a, live)
        if self.daily:
            raw, daily_live = self._time_of_day(u, t, a)
            day = self._decades(1, raw, a, live and daily_live)
            if day > decades:
                decades = day
        if self.discount_looks and decades > 0.0:
            looks = self.n * self.long_alpha
            if looks > 1.0:
                decades -= math.log10(looks)
                if decades < 0.0:
                    decades = 0.0
        score = decades / (decades + self._l_fire)
        if self.quiet > 0:
            # inside an incident only a new record passes: at any threshold, the incident's rows above it
            # after its first one are held, whatever level that threshold is (the bench chooses it later)
            self.quiet -= 1
            if score <= self.record:
                return 0.0
            if score >= 0.5:
                self.quiet = self.refractory
            self.record = 1.0 if score >= 0.5 else score
            return score
        if score > 0.0:
            self.quiet = self.refractory
            self.record = 1.0 if score >= 0.5 else score  # scores are < 1: a firing row holds everything
        return score

    def score_series(self, values: Sequence[float], times: Sequence[float]) -> list[float]:
        """Scores of a whole series, row by row (the batch form of ``update``; same numbers, no findings)."""
        step = self.step
        return [step(v, t) for v, t in zip(values, times, strict=True)]

    def update(self, reading: Reading) -> Outcome:
        score = self.step(reading.value, reading.observed_at)
        if score < 0.5 and not self.policy.active:
            return Outcome(score)  # the policy would neither change state nor find anything
        return self._emit(score, self.policy.step(reading.observed_at, score, reading.value))
