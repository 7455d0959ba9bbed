"""Rolling-origin evaluation of hotspot forecasters.

For each week from ``first_week`` on (week ``w`` starts on day ``7 w`` of the history), every forecaster
sees only the history before the origin and forecasts the next 7 days for the cells seen before the origin.
Scored per week, per family and for all families together:

- hit rate at 5 % and 10 %: the share of next week's problems (all located problems of the family, also
  those in cells never seen before) that fall in the top ``ceil(share x cells)`` cells ranked by the week's
  forecast total. Ties at the cut are shared out: a tied group that straddles the cut counts with the
  fraction of its cells that fit, i.e. the expected hit rate under a random tie-break.
- mean Poisson deviance per cell-day (cells seen before the origin), with forecasts floored at
  ``DEVIANCE_FLOOR`` so that a zero forecast for a day with problems scores a finite (large) deviance.

Two upper bounds can be scored beside the forecasters (``bounds=True``). They look at the future, so they
are *not* forecasters; they say how high a hit rate could go:

- ``oracle`` ranks the cells by next week's actual counts: no ranking of the same cells can do better.
- ``hindsight_rate`` ranks them by each cell's mean over the whole history *except* the target week (past
  and later weeks): the best a model could do knowing each cell's long-run rate exactly.

``split_weeks`` cuts the evaluated weeks at a date into tuning weeks (where features and hyperparameters
may be chosen) and scoring weeks (run once, the headline).

>>> hit_rate(np.array([3.0, 1.0, 0.0, 0.0]), np.array([5.0, 0.0, 3.0, 2.0]), 0.25)
0.5
>>> hit_rate(np.array([1.0, 1.0, 0.0, 0.0]), np.array([4.0, 0.0, 3.0, 3.0]), 0.25)  # tie at the cut
0.2
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import numpy as np

from gridsentinel.analytics.forecast import HORIZON, Forecaster, History

SHARES = (0.05, 0.10)
ORACLE = "oracle"
HINDSIGHT = "hindsight_rate"
DEVIANCE_FLOOR = 0.01
ALL = "all"


def hit_rate(forecast: np.ndarray, actual: np.ndarray, share: float, outside: float = 0.0) -> float:
    """Share of ``actual.sum() + outside`` in the top ``ceil(share x len)`` cells by ``forecast``."""
    total = float(actual.sum()) + outside
    n = len(forecast)
    if total <= 0 or n == 0:
        return float("nan")
    k = max(1, math.ceil(share * n))
    order = np.argsort(-forecast, kind="stable")
    cut = forecast[order[k - 1]]
    above = forecast > cut
    tied = forecast == cut
    slots = k - int(above.sum())
    hits = float(actual[above].sum()) + slots / int(tied.sum()) * float(actual[tied].sum())
    return hits / total


def poisson_deviance(actual: np.ndarray, forecast: np.ndarray, floor: float = DEVIANCE_FLOOR) -> float:
    """Mean Poisson deviance ``2 (y log(y / mu) - (y - mu))`` with ``mu`` floored at ``floor``."""
    mu = np.maximum(forecast, floor)
    y = actual
    term = np.where(y > 0, y * np.log(np.where(y > 0, y, 1.0) / mu), 0.0)
    return float(np.mean(2.0 * (term - (y - mu))))


@dataclass
class WeekScore:
    week: int
    origin: str  # ISO date of the origin
    cells: int  # cells ranked (seen before the origin)
    problems: dict[str, float]  # next week's located problems per family and "all"
    # forecaster -> family (or "all") -> metric ("hit5", "hit10", "deviance") -> value
    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)


def score_week(past_cells: np.ndarray, forecast: np.ndarray, actual: np.ndarray,
               families: Sequence[str]) -> dict[str, dict[str, float]]:
    """Scores of one forecaster for one week: ``forecast`` is ``[family, len(past_cells), 7]``, ``actual`` the
    next week's counts for *every* cell ``[family, cell, 7]``."""
    seen = np.zeros(actual.shape[1], dtype=bool)
    seen[past_cells] = True
    week_fc = forecast.sum(axis=2)
    week_actual = actual.sum(axis=2)
    out: dict[str, dict[str, float]] = {}
    for i, fam in enumerate(families):
        outside = float(week_actual[i, ~seen].sum())
        out[fam] = {f"hit{round(s * 100)}": hit_rate(week_fc[i], week_actual[i, past_cells], s, outside)
                    for s in SHARES}
        out[fam]["deviance"] = poisson_deviance(actual[i][past_cells], forecast[i])
    outside_all = float(week_actual[:, ~seen].sum())
    out[ALL] = {f"hit{round(s * 100)}": hit_rate(week_fc.sum(axis=0), week_actual[:, past_cells].sum(axis=0), s,
                                                  outside_all) for s in SHARES}
    out[ALL]["deviance"] = poisson_deviance(actual[:, past_cells], forecast)
    return out


def oracle_forecast(actual: np.ndarray, cells: np.ndarray) -> np.ndarray:
    """The upper bound ``oracle``: next week's actual counts ``[family, cell, 7]`` of the ranked cells.

    >>> actual = np.zeros((1, 3, HORIZON)); actual[0, 2, 0] = 4.0
    >>> oracle_forecast(actual, np.array([0, 2])).sum(axis=2).tolist()
    [[0.0, 4.0]]
    """
    return actual[:, cells, :]


def hindsight_forecast(history: History, origin: int, cells: np.ndarray) -> np.ndarray:
    """The upper bound ``hindsight_rate``: each cell's mean daily count over the whole history except the
    7 days from ``origin`` (earlier *and later* days), for each of the 7 days."""
    counts = history.counts[:, cells, :]
    total = counts.sum(axis=2) - counts[:, :, origin:origin + HORIZON].sum(axis=2)
    other_days = history.days - min(HORIZON, history.days - origin)
    rate = total / max(other_days, 1)
    return np.repeat(rate[:, :, None], HORIZON, axis=2)


def rolling_origin(history: History, forecasters: Sequence[Forecaster], first_week: int = 8,
                   last_week: int | None = None,
                   progress: Callable[[str], None] | None = None, bounds: bool = False) -> list[WeekScore]:
    """Score every forecaster on each whole week ``first_week`` .. ``last_week`` (0-based, inclusive); with
    ``bounds``, also the upper bounds ``oracle`` and ``hindsight_rate`` (not forecasters: they see the
    future)."""
    weeks_in_data = history.days // HORIZON
    last = weeks_in_data - 1 if last_week is None else min(last_week, weeks_in_data - 1)
    results: list[WeekScore] = []
    for week in range(first_week, last + 1):
        origin = week * HORIZON
        past = history.until(origin)
        cells = past.seen_cells()
        actual = history.counts[:, :, origin:origin + HORIZON]
        week_actual = actual.sum(axis=(1, 2))
        ws = WeekScore(week, past.day(origin).isoformat(), len(cells),
                       {**{f: float(week_actual[i]) for i, f in enumerate(history.families)},
                        ALL: float(week_actual.sum())})
        for fc in forecasters:
            ws.scores[fc.name] = score_week(cells, fc.forecast(past, cells), actual, history.families)
        if bounds:
            ws.scores[ORACLE] = score_week(cells, oracle_forecast(actual, cells), actual, history.families)
            ws.scores[HINDSIGHT] = score_week(cells, hindsight_forecast(history, origin, cells), actual,
                                              history.families)
        results.append(ws)
        if progress:
            progress(f"week {week} (origin {ws.origin}): {len(cells)} cells, {ws.problems[ALL]:.0f} problems")
    return results


def summarise(weeks: Sequence[WeekScore], forecaster: str, family: str, metric: str) -> float:
    """Mean of a metric over weeks (weeks where it is undefined, e.g. no problems, are skipped)."""
    values = [w.scores[forecaster][family][metric] for w in weeks]
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else float("nan")


def split_weeks(weeks: Sequence[WeekScore], tune_until: str) -> tuple[list[WeekScore], list[WeekScore]]:
    """``(tuning, scoring)``: the weeks whose origin (ISO date) is before ``tune_until``, and the rest.

    >>> ws = [WeekScore(w, o, 1, {}) for w, o in ((8, "2015-02-26"), (9, "2015-03-05"), (10, "2015-03-12"))]
    >>> [[w.week for w in part] for part in split_weeks(ws, "2015-03-05")]
    [[8], [9, 10]]
    """
    tuning = [w for w in weeks if w.origin < tune_until]
    scoring = [w for w in weeks if w.origin >= tune_until]
    return tuning, scoring
