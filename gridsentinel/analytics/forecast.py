"""Hotspot forecast: expected new problems per day for the next 7 days, per grid cell x category family.

A ``History`` holds daily counts ``[family, cell, day]``. Every forecaster takes a history that *ends at
the forecast origin* (``History.until(origin)``) and returns ``[family, cell, 7]`` expected counts for
the 7 days from the origin, so no forecaster can see past its origin.

- ``LastWeek``: each day's count one week earlier (naive baseline).
- ``SameWeekdayMean``: the mean of the same weekday over the last 8 weeks (naive baseline).
- ``BoostedPoisson``: scikit-learn's HistGradientBoostingRegressor with the Poisson loss, trained at each
  origin on weekly origins of the past (targets all before the origin) with past-only features:

  family, horizon (0-6 days), target weekday, public-holiday flag, the cell x family's mean daily count
  over the last 7 and 28 days, the mean of the same weekday over the last 8 weeks, the long-run mean since
  the history starts, and the cell's all-family means over the last 28 days and long run.
- ``WeeklyBoostedPoisson``: the same learner fitted on *weekly totals* (what the hit rate ranks by), one row
  per family x cell x past weekly origin, with longer, decayed history as features (``WEEKLY_FEATURES``:
  exponentially weighted means over all past weeks at half-lives of 1-16 weeks, the cell's long-run share
  of its family, the family's city-wide level, the public holidays in the week); the week's total is split
  into days by the family's city-wide weekday profile over the last 8 weeks.

Two optional inputs add features when a city has them (``feature_names``): its working calendar (the target
day is a working day: make-up working days, local days off) and its rain gauges' daily rainfall (the day before
the origin, the 7 days before it). The Boston 311 extract has neither, so the evaluation runs without them.

>>> h = History(date(2024, 1, 1), ("a",), [(0, 0), (0, 1)], np.zeros((1, 2, 14)), frozenset())
>>> h.counts[0, 0, :] = 2.0; h.counts[0, 1, 7:] = 1.0
>>> LastWeek().forecast(h, np.arange(2))[0, :, 0].tolist()
[2.0, 1.0]
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Protocol

import numpy as np
from sklearn.ensemble import HistGradientBoostingRegressor

from gridsentinel.analytics.civic import Request
from gridsentinel.analytics.grid import Grid

HORIZON = 7
SAME_WEEKDAY_WEEKS = 8
MIN_TRAIN_HISTORY = 28  # a training origin needs this many days behind it

HALF_LIVES = (7, 14, 28, 56, 112)  # days; the decayed means of the weekly model
WEEKLY_FEATURES = ("family", "last_week", "last4_weeks", "long_run", *(f"ewm_{h}d" for h in HALF_LIVES),
                   "cell_ewm28_all", "cell_long_run_all", "family_share", "family_city_ewm14", "holidays")

FEATURES = ("family", "horizon", "weekday", "holiday", "last7", "last28", "same_weekday_8w", "long_run",
            "cell_last28_all", "cell_long_run_all")


@dataclass
class History:
    """Daily counts ``counts[family, cell, day]`` from ``start``; ``holidays`` are public-holiday dates."""

    start: date
    families: tuple[str, ...]
    cells: list[tuple[int, int]]
    counts: np.ndarray
    holidays: frozenset[date]
    # Optional inputs a city has (each adds features, ``feature_names``): its working calendar (make-up working
    # days and local days off beyond the public holidays; ``cases.calendar.WorkCalendar.is_working_day``), and
    # its rain gauges' daily rainfall in mm per day of ``counts`` (NaN: unknown; ``analytics/weather.py``).
    is_working_day: Callable[[date], bool] | None = None
    rain_mm: np.ndarray | None = None

    @property
    def days(self) -> int:
        return int(self.counts.shape[2])

    def day(self, index: int) -> date:
        return self.start + timedelta(days=index)

    def until(self, origin: int) -> History:
        """The history before day ``origin`` (what a forecaster at that origin may see)."""
        return replace(self, counts=self.counts[:, :, :origin],
                       rain_mm=None if self.rain_mm is None else self.rain_mm[:origin])

    def seen_cells(self) -> np.ndarray:
        """Indexes of the cells with at least one problem in this history (the cells ranked at its end)."""
        return np.flatnonzero(self.counts.sum(axis=(0, 2)) > 0)


def build_history(requests: Iterable[Request], grid: Grid, families: Sequence[str], start: date, end: date,
                  holidays: Iterable[date] = ()) -> History:
    """Count requests per family x cell x day over ``[start, end]`` (requests outside are ignored)."""
    fam_index = {f: i for i, f in enumerate(families)}
    keyed: list[tuple[int, tuple[int, int], int]] = []
    for req in requests:
        d = (req.day - start).days
        if 0 <= d <= (end - start).days:
            keyed.append((fam_index[req.family], grid.cell(req.lat, req.lon), d))
    cells = sorted({c for _, c, _ in keyed})
    cell_index = {c: i for i, c in enumerate(cells)}
    counts = np.zeros((len(families), len(cells), (end - start).days + 1))
    for f, c, d in keyed:
        counts[f, cell_index[c], d] += 1
    return History(start, tuple(families), cells, counts, frozenset(holidays))


class Forecaster(Protocol):
    name: str

    def forecast(self, past: History, cells: np.ndarray) -> np.ndarray:
        """Expected counts ``[family, len(cells), 7]`` for the 7 days after ``past`` ends."""
        ...


class LastWeek:
    """Baseline: the count on the same day one week earlier."""

    name = "last_week"

    def forecast(self, past: History, cells: np.ndarray) -> np.ndarray:
        origin = past.days
        out = np.zeros((len(past.families), len(cells), HORIZON))
        for h in range(HORIZON):
            if origin + h - 7 >= 0:
                out[:, :, h] = past.counts[:, cells, origin + h - 7]
        return out


class SameWeekdayMean:
    """Baseline: the mean count of the same weekday over the last 8 weeks (the weeks the history has)."""

    name = "same_weekday_8w"

    def __init__(self, weeks: int = SAME_WEEKDAY_WEEKS) -> None:
        self.weeks = weeks

    def forecast(self, past: History, cells: np.ndarray) -> np.ndarray:
        return _same_weekday(past.counts[:, cells, :], past.days, self.weeks)


def _same_weekday(counts: np.ndarray, origin: int, weeks: int) -> np.ndarray:
    out = np.zeros((*counts.shape[:2], HORIZON))
    for h in range(HORIZON):
        days = [origin + h - 7 * k for k in range(1, weeks + 1) if origin + h - 7 * k >= 0]
        if days:
            out[:, :, h] = counts[:, :, days].mean(axis=2)
    return out


def _window_mean(counts: np.ndarray, origin: int, days: int) -> np.ndarray:
    lo = max(0, origin - days)
    if origin - lo == 0:
        return np.zeros(counts.shape[:2])
    return counts[:, :, lo:origin].mean(axis=2)


WORKING_DAY_FEATURES = ("working_day",)  # the target day is a working day in the city's calendar
RAIN_FEATURES = ("rain_1d", "rain_7d")  # mm on the day before the origin, and over the 7 days before it


def feature_names(past: History) -> tuple[str, ...]:
    """``FEATURES``, then the working-day and rain features when ``past`` has a calendar and rainfall.

    >>> h = History(date(2024, 1, 1), ("a",), [(0, 0)], np.zeros((1, 1, 14)), frozenset())
    >>> feature_names(h)[-1], feature_names(replace(h, rain_mm=np.zeros(14)))[-2:]
    ('cell_long_run_all', ('rain_1d', 'rain_7d'))
    """
    return (FEATURES + (WORKING_DAY_FEATURES if past.is_working_day is not None else ())
            + (RAIN_FEATURES if past.rain_mm is not None else ()))


def _rain(rain: np.ndarray, origin: int) -> tuple[float, float]:
    """Rain on the day before ``origin`` and over the 7 days before it (NaN when no day of it is known).

    >>> _rain(np.array([1.0, np.nan, 4.0]), 3), _rain(np.array([np.nan, np.nan]), 2)
    ((4.0, 5.0), (nan, nan))
    """
    last = float(rain[origin - 1]) if origin >= 1 else math.nan
    week = rain[max(0, origin - 7):origin]
    return last, float(np.nansum(week)) if np.isfinite(week).any() else math.nan


def features(past: History, cells: np.ndarray) -> np.ndarray:
    """Feature rows for the 7 days after ``past`` ends, ordered family x cell x horizon (``feature_names``)."""
    counts = past.counts[:, cells, :]
    origin = past.days
    n_fam, n_cell = counts.shape[:2]
    last7 = _window_mean(counts, origin, 7)
    last28 = _window_mean(counts, origin, 28)
    long_run = _window_mean(counts, origin, origin)
    all_fam = counts.sum(axis=0, keepdims=True)
    cell28 = np.broadcast_to(_window_mean(all_fam, origin, 28), (n_fam, n_cell))
    cell_long = np.broadcast_to(_window_mean(all_fam, origin, origin), (n_fam, n_cell))
    same = _same_weekday(counts, origin, SAME_WEEKDAY_WEEKS)
    names = feature_names(past)
    X = np.empty((n_fam, n_cell, HORIZON, len(names)))
    X[..., 0] = np.arange(n_fam)[:, None, None]
    for h in range(HORIZON):
        day = past.day(origin + h)
        X[:, :, h, 1] = h
        X[:, :, h, 2] = day.weekday()
        X[:, :, h, 3] = float(day in past.holidays)
        X[:, :, h, 6] = same[:, :, h]
    for col, values in ((4, last7), (5, last28), (7, long_run), (8, cell28), (9, cell_long)):
        X[..., col] = values[:, :, None]
    col = len(FEATURES)
    if past.is_working_day is not None:
        for h in range(HORIZON):
            X[:, :, h, col] = float(past.is_working_day(past.day(origin + h)))
        col += 1
    if past.rain_mm is not None:
        X[..., col], X[..., col + 1] = _rain(past.rain_mm, origin)
    return X.reshape(-1, len(names))


class _PoissonTrees:
    """What the two tree models share: scikit-learn's HistGradientBoostingRegressor with the Poisson loss (the
    family, column 0, as a categorical feature), fitted on a subclass's ``training_set`` and used by its
    ``predict``; with nothing to learn from, the forecast falls back to the weekday mean."""

    def __init__(self, **params: float | int) -> None:
        self.params = params
        self.model: HistGradientBoostingRegressor | None = None
        self.trained_rows = self.trained_problems = 0  # the last fit's training rows and their problems

    def training_set(self, past: History, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        raise NotImplementedError

    def predict(self, past: History, cells: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def fit(self, past: History, cells: np.ndarray) -> bool:
        X, y = self.training_set(past, cells)
        self.trained_rows, self.trained_problems = len(y), int(y.sum())
        if len(y) == 0 or y.sum() == 0:
            self.model = None
            return False
        model = HistGradientBoostingRegressor(loss="poisson", categorical_features=[0], early_stopping=False,
                                              **self.params)
        model.fit(X, y)
        self.model = model
        return True

    def forecast(self, past: History, cells: np.ndarray) -> np.ndarray:
        if not self.fit(past, cells):  # too little history to learn from: fall back to the weekday mean
            return SameWeekdayMean().forecast(past, cells)
        return self.predict(past, cells)


class BoostedPoisson(_PoissonTrees):
    """Gradient-boosted trees, Poisson loss, refitted at every origin on all the weeks before it.

    Training origins are every 7th day back from the forecast origin (the last ``train_weeks`` of them, from
    day ``MIN_TRAIN_HISTORY`` on), each with its 7 targets wholly before the forecast origin; the window is
    bounded so that a refit costs the same every week on a 2-core machine. Hyperparameters are fixed in advance (not
    tuned on the evaluated weeks).
    """

    name = "boosted_poisson"

    def __init__(self, max_iter: int = 100, learning_rate: float = 0.1, max_leaf_nodes: int = 31,
                 min_samples_leaf: int = 40, train_weeks: int = 12, random_state: int = 0) -> None:
        super().__init__(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                         min_samples_leaf=min_samples_leaf, random_state=random_state)
        self.train_weeks = train_weeks

    def training_set(self, past: History, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        origin = past.days
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        t = origin - HORIZON
        while t >= MIN_TRAIN_HISTORY and len(xs) < self.train_weeks:
            xs.append(features(past.until(t), cells))
            ys.append(past.counts[:, cells, t:t + HORIZON].reshape(-1))
            t -= HORIZON
        if not xs:
            return np.empty((0, len(feature_names(past)))), np.empty(0)
        return np.concatenate(xs), np.concatenate(ys)

    def predict(self, past: History, cells: np.ndarray) -> np.ndarray:
        """``[family, cell, 7]`` from the model fitted earlier (a stored one: ``analytics/model_store.py``) and
        the features of ``past``; ``past.families`` must be the families it was fitted with, in that order
        (the family index is a feature)."""
        if self.model is None:
            raise ValueError("the model is not fitted")
        pred = self.model.predict(features(past, cells))
        return np.asarray(pred, dtype=float).reshape(len(past.families), len(cells), HORIZON)


def _decayed_weekly(counts: np.ndarray, half_life: float) -> np.ndarray:
    """Exponentially weighted mean daily count over all of ``counts[..., day]`` (weights halve every
    ``half_life`` days back from the last day), times 7: a weekly level."""
    n = counts.shape[-1]
    if n == 0:
        return np.zeros(counts.shape[:-1])
    w = 0.5 ** ((n - 1 - np.arange(n)) / half_life)
    return np.asarray(counts @ w / w.sum() * HORIZON)


def weekly_features(past: History, cells: np.ndarray) -> np.ndarray:
    """One row per family x cell for the week after ``past`` ends (``WEEKLY_FEATURES``), past only.

    Weekly levels are in problems per week. ``family_share`` is the cell's share of all the family's past
    problems; ``family_city_ewm14`` the family's city-wide decayed level (every cell, not only ``cells``);
    ``holidays`` the number of public holidays in the 7 target days.

    >>> counts = np.zeros((1, 2, 14)); counts[0, 0, 7:] = 1.0
    >>> X = weekly_features(History(date(2024, 1, 1), ("a",), [(0, 0), (1, 0)], counts, frozenset()), np.arange(2))
    >>> X[:, 1].tolist(), X[:, 2].tolist(), X[:, 3].tolist()   # last week, mean of the last 4, long run
    ([7.0, 0.0], [3.5, 0.0], [3.5, 0.0])
    >>> X[:, WEEKLY_FEATURES.index("family_share")].tolist()
    [1.0, 0.0]
    """
    counts = past.counts
    origin = past.days
    n_fam, n_all = counts.shape[:2]
    cols: list[np.ndarray] = [np.broadcast_to(np.arange(n_fam, dtype=float)[:, None], (n_fam, n_all))]
    cols.append(counts[:, :, max(0, origin - HORIZON):origin].sum(axis=2))
    recent = min(origin, 4 * HORIZON)
    cols.append(counts[:, :, origin - recent:origin].sum(axis=2) / max(recent, 1) * HORIZON)
    cols.append(counts.sum(axis=2) / max(origin, 1) * HORIZON)
    cols += [_decayed_weekly(counts, hl) for hl in HALF_LIVES]
    all_fam = counts.sum(axis=0)
    cols.append(np.broadcast_to(_decayed_weekly(all_fam, 28), (n_fam, n_all)))
    cols.append(np.broadcast_to(all_fam.sum(axis=1) / max(origin, 1) * HORIZON, (n_fam, n_all)))
    family_total = counts.sum(axis=(1, 2))
    cols.append(counts.sum(axis=2) / np.maximum(family_total, 1.0)[:, None])
    cols.append(np.broadcast_to(_decayed_weekly(counts.sum(axis=1), 14)[:, None], (n_fam, n_all)))
    n_hol = sum(past.day(origin + h) in past.holidays for h in range(HORIZON))
    cols.append(np.full((n_fam, n_all), float(n_hol)))
    X = np.stack(cols, axis=-1)[:, cells, :]
    return X.reshape(-1, len(WEEKLY_FEATURES))


def weekday_profile(past: History) -> np.ndarray:
    """``[family, 7]``: each family's city-wide share of a week's problems on each of the 7 days after the
    origin, from the same weekdays over the last 8 weeks (uniform where the family has none)."""
    city = past.counts.sum(axis=1, keepdims=True)
    same = _same_weekday(city, past.days, SAME_WEEKDAY_WEEKS)[:, 0, :]
    total = same.sum(axis=1, keepdims=True)
    return np.where(total > 0, same / np.where(total > 0, total, 1.0), 1.0 / HORIZON)


class WeeklyBoostedPoisson(_PoissonTrees):
    """Gradient-boosted trees, Poisson loss, on weekly totals; refitted at every origin on all past weeks.

    Training origins are every 7th day back from the forecast origin down to day ``MIN_TRAIN_HISTORY``, each
    target the 7-day total wholly before the forecast origin. A row is a family x cell x week, so a refit
    is about 7 times smaller than ``BoostedPoisson``'s and can use every past week. The forecast total is
    split into days by ``weekday_profile``. Features and hyperparameters were chosen on the bench's tuning
    weeks only (docs/analytics.md, "Evaluation protocol").
    """

    name = "weekly_poisson"

    def __init__(self, max_iter: int = 200, learning_rate: float = 0.05, max_leaf_nodes: int = 15,
                 min_samples_leaf: int = 40, random_state: int = 0) -> None:
        super().__init__(max_iter=max_iter, learning_rate=learning_rate, max_leaf_nodes=max_leaf_nodes,
                         min_samples_leaf=min_samples_leaf, random_state=random_state)

    def training_set(self, past: History, cells: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        xs: list[np.ndarray] = []
        ys: list[np.ndarray] = []
        t = past.days - HORIZON
        while t >= MIN_TRAIN_HISTORY:
            xs.append(weekly_features(past.until(t), cells))
            ys.append(past.counts[:, cells, t:t + HORIZON].sum(axis=2).reshape(-1))
            t -= HORIZON
        if not xs:
            return np.empty((0, len(WEEKLY_FEATURES))), np.empty(0)
        return np.concatenate(xs), np.concatenate(ys)

    def predict(self, past: History, cells: np.ndarray) -> np.ndarray:
        """``[family, cell, 7]``: the fitted model's weekly totals split into days by ``weekday_profile``."""
        if self.model is None:
            raise ValueError("the model is not fitted")
        week = np.asarray(self.model.predict(weekly_features(past, cells)), dtype=float)
        week = week.reshape(len(past.families), len(cells))
        return week[:, :, None] * weekday_profile(past)[:, None, :]
