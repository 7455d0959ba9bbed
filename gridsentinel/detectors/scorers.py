"""Scorers: the building blocks that say how unusual a value is. They never decide anything.

Each takes ``(t, x)`` (event time in Unix seconds, value) and keeps only JSON-safe state.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any, ClassVar, Literal, Protocol

from gridsentinel.detectors.base import Stateful


class _Range(Protocol):
    lo: float | None
    hi: float | None


def widen_and_scale(r: _Range, x: float) -> float:
    """``x`` scaled to [0, 1] by the range seen so far (``r.lo``/``r.hi``), widened to take ``x`` first;
    0.5 while the range is a single value. The value-context detectors (novelty, ensemble, likelihood)
    quantise their inputs this way.

    >>> class R: lo = hi = None
    >>> r = R()
    >>> widen_and_scale(r, 2.0), widen_and_scale(r, 4.0), widen_and_scale(r, 3.0), (r.lo, r.hi)
    (0.5, 1.0, 0.5, (2.0, 4.0))
    """
    lo, hi = r.lo, r.hi
    if lo is None or hi is None or x < lo or x > hi:
        r.lo = lo = x if lo is None else min(lo, x)
        r.hi = hi = x if hi is None else max(hi, x)
    span = hi - lo
    return (x - lo) / span if span > 0 else 0.5


class RateOfChange(Stateful):
    """Least-squares slope (units per second) over the readings of the last ``window_s`` seconds.

    >>> r = RateOfChange(window_s=600)
    >>> [round(r.update(t, 0.01 * t / 60), 5) for t in (0, 60, 120)]
    [0.0, 0.00017, 0.00017]
    """

    _state_fields: ClassVar[tuple[str, ...]] = ("points",)

    def __init__(self, window_s: float = 900.0, max_points: int = 64) -> None:
        self.window_s = window_s
        self.points: deque[list[float]] = deque(maxlen=max_points)
        self._slope: float | None = None  # cached until the points change (callers ask twice a reading)

    def update(self, t: float, x: float) -> float:
        self.points.append([t, x])
        while self.points and t - self.points[0][0] > self.window_s:
            self.points.popleft()
        self._slope = None
        return self.slope()

    def restore(self, state: dict[str, Any]) -> None:
        super().restore(state)
        self._slope = None

    def slope(self) -> float:
        if self._slope is None:
            self._slope = self._fit()
        return self._slope

    def _fit(self) -> float:
        # the same sums, in the same order, as the textbook formula: one pass per sum, no re-indexing
        points = self.points
        n = len(points)
        if n < 2:
            return 0.0
        t0 = points[0][0]
        dts = [p[0] - t0 for p in points]
        mt = sum(dts) / n
        mx = sum([p[1] for p in points]) / n
        devs = [d - mt for d in dts]
        sxx = sum([d ** 2 for d in devs])
        if sxx <= 0.0:
            return 0.0
        return sum([d * (p[1] - mx) for d, p in zip(devs, points, strict=True)]) / sxx

    def last(self) -> tuple[float, float] | None:
        return (self.points[-1][0], self.points[-1][1]) if self.points else None


class RobustScorer(Stateful):
    """How many robust spreads a value sits from the recent centre.

    ``method="mad"``: median and median absolute deviation of the last ``window`` values (1.4826·MAD
    estimates σ). ``method="ewma"``: exponentially weighted mean and mean absolute deviation with
    smoothing ``alpha``. The score is scored *before* the value is learned (no look-ahead), and is 0 until
    ``warmup`` values have been seen. ``min_scale`` keeps a flat signal from dividing by zero.

    >>> s = RobustScorer(window=20, warmup=5)
    >>> [s.update(x) for x in [10, 11, 10, 9, 10, 11, 10]][-1] < 1.0
    True
    >>> s.update(25.0) > 5
    True
    """

    _state_fields: ClassVar[tuple[str, ...]] = ("values", "mean", "dev", "count")

    def __init__(self, method: Literal["mad", "ewma"] = "mad", window: int = 60, alpha: float = 0.05,
                 warmup: int = 10, min_scale: float = 1e-6) -> None:
        self.method = method
        self.window = window
        self.alpha = alpha
        self.warmup = warmup
        self.min_scale = min_scale
        self.values: deque[float] = deque(maxlen=window if method == "mad" else 0)
        self.mean = 0.0
        self.dev = 0.0
        self.count = 0

    def center_scale(self) -> tuple[float, float]:
        if self.method == "ewma":
            return self.mean, max(1.2533 * self.dev, self.min_scale)
        ordered = sorted(self.values)
        if not ordered:
            return 0.0, self.min_scale
        med = _median(ordered)
        mad = _median(sorted(abs(v - med) for v in ordered))
        return med, max(1.4826 * mad, self.min_scale)

    def update(self, x: float) -> float:
        """Score ``x`` against what came before, then learn it. Returns |x - centre| / scale."""
        score = 0.0
        if self.count >= self.warmup:
            c, s = self.center_scale()
            score = abs(x - c) / s
        self.learn(x)
        return score

    def learn(self, x: float) -> None:
        self.count += 1
        if self.method == "mad":
            self.values.append(x)
        elif self.count == 1:
            self.mean, self.dev = x, 0.0
        else:
            err = x - self.mean
            self.mean += self.alpha * err
            self.dev += self.alpha * (abs(err) - self.dev)


def _median(ordered: list[float]) -> float:
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else 0.5 * (ordered[mid - 1] + ordered[mid])


class SeasonalBaseline(Stateful):
    """Expected value per time-of-day slot (and day of week with ``period="week"``).

    Each slot keeps an EWMA mean and mean absolute deviation; the score is the deviation from the slot's
    mean in slot spreads, 0 until the slot has ``warmup`` values. ``utc_offset_s`` puts slots on local
    time (China: 28800). ``min_scale`` is the smallest spread, in the metric's units.

    >>> b = SeasonalBaseline(slot_s=3600, warmup=3, min_scale=1.0)
    >>> for day in range(5):
    ...     _ = b.update(day * 86400 + 8 * 3600, 100.0)   # 08:00 busy
    ...     _ = b.update(day * 86400 + 3 * 3600, 10.0)    # 03:00 quiet
    >>> b.update(5 * 86400 + 3 * 3600, 100.0) > 10          # busy at 03:00 is unusual
    True
    """

    _state_fields: ClassVar[tuple[str, ...]] = ("slots",)

    def __init__(self, period: Literal["day", "week"] = "day", slot_s: float = 3600.0,
                 utc_offset_s: float = 0.0, alpha: float = 0.2, warmup: int = 3,
                 min_scale: float = 1e-6) -> None:
        self.period_s = 86400.0 if period == "day" else 7 * 86400.0
        self.slot_s = slot_s
        self.utc_offset_s = utc_offset_s
        self.alpha = alpha
        self.warmup = warmup
        self.min_scale = min_scale
        self.slots: dict[str, list[float]] = {}  # slot -> [count, mean, mean abs dev]

    def slot(self, t: float) -> str:
        # Epoch day 0 was a Thursday; the slot index only has to be stable, not named.
        return str(int(((t + self.utc_offset_s) % self.period_s) // self.slot_s))

    def expected(self, t: float) -> tuple[float, float] | None:
        """(mean, spread) for the slot of ``t``, or None while it is warming up."""
        st = self.slots.get(self.slot(t))
        if st is None or st[0] < self.warmup:
            return None
        return st[1], max(1.2533 * st[2], self.min_scale)

    def update(self, t: float, x: float) -> float:
        exp = self.expected(t)
        score = 0.0 if exp is None else abs(x - exp[0]) / exp[1]
        key = self.slot(t)
        st = self.slots.get(key)
        if st is None:
            self.slots[key] = [1.0, x, 0.0]
        else:
            st[0] += 1.0
            a = max(self.alpha, 1.0 / st[0])
            err = x - st[1]
            st[1] += a * err
            st[2] += a * (abs(err) - st[2])
        return score


class Flatline(Stateful):
    """How long the value has stayed within ``tolerance`` of where the run began, in seconds.

    >>> f = Flatline(tolerance=0.001)
    >>> [f.update(t, x) for t, x in [(0, 1.0), (60, 1.0), (120, 1.0005), (180, 1.2)]]
    [0.0, 60.0, 120.0, 0.0]
    """

    _state_fields: ClassVar[tuple[str, ...]] = ("run_start", "run_value")

    def __init__(self, tolerance: float = 0.0) -> None:
        self.tolerance = tolerance
        self.run_start: float | None = None
        self.run_value = 0.0

    def update(self, t: float, x: float) -> float:
        if self.run_start is None or abs(x - self.run_value) > self.tolerance:
            self.run_start, self.run_value = t, x
        return float(t - self.run_start)


class Silence(Stateful):
    """Time since the last reading, in expected intervals; a device never heard from counts from ``since``.

    >>> s = Silence(expected_interval_s=300, since=0)
    >>> s.check(1200), s.update(1200), s.check(1500)
    (4.0, 4.0, 1.0)
    """

    _state_fields: ClassVar[tuple[str, ...]] = ("last_seen", "since")

    def __init__(self, expected_interval_s: float, since: float | None = None) -> None:
        if expected_interval_s <= 0:
            raise ValueError("expected_interval_s must be > 0")
        self.expected_interval_s = expected_interval_s
        self.last_seen: float | None = None
        self.since = since

    def check(self, now: float) -> float:
        ref = self.last_seen if self.last_seen is not None else self.since
        if ref is None:
            self.since = now  # first look at a silent device: start counting here
            return 0.0
        return max(0.0, now - ref) / self.expected_interval_s

    def update(self, t: float) -> float:
        gap = self.check(t)
        if self.last_seen is None or t > self.last_seen:
            self.last_seen = t
        return gap


class TimeToThreshold(Stateful):
    """Linear-trend forecast of when the value reaches ``level`` (seconds from the latest reading).

    Returns ``math.inf`` when the trend does not head for the level (never JSON-stored).

    >>> f = TimeToThreshold(level=3.0, window_s=900)
    >>> etas = [f.update(t, 2.0 + 0.01 * t / 60) for t in (0, 300, 600)]  # +1 cm/min, 1 m to go
    >>> etas[0], round(etas[1]), round(etas[2])
    (inf, 5700, 5400)
    """

    _children: ClassVar[tuple[str, ...]] = ("trend",)

    def __init__(self, level: float, window_s: float = 900.0, min_rate: float = 0.0) -> None:
        self.level = level
        self.min_rate = min_rate
        self.trend = RateOfChange(window_s)

    def update(self, t: float, x: float) -> float:
        rate = self.trend.update(t, x)
        return self.eta(x, rate)

    def eta(self, x: float, rate: float) -> float:
        if x >= self.level:
            return 0.0
        if rate <= self.min_rate or rate <= 0.0:
            return math.inf
        return (self.level - x) / rate

