"""Patrol plan: an ordered list of cells per inspector for one day that covers the most expected problems.

Input: the expected problems per cell for the day (:func:`expected_for_day`: the hotspot forecast, or the last
28 days' mean when the history is too short to train it), each cell's centre in metres, N inspectors with a
start point each (or one shared depot), the shift length, the walking speed and the minutes spent per visit.

The heuristic (deterministic, explained in docs/analytics.md "Patrol plan"):

1. Walking distance between two points is the straight line times ``detour`` (1.3 by default: streets are
   not straight lines). A route starts at the inspector's start and ends back there; its time is the walking
   time plus ``visit_min`` per visited cell, and must fit in the shift.
2. Greedy insertion: every unplanned cell with expected problems > 0 is priced in every route at its
   cheapest position (extra walking minutes + visit minutes). Among the insertions that fit the shift the
   one with the most expected problems per extra minute is made (ties: the lower cell index, then the lower
   inspector). A cell joins one route only.
3. After each insertion the route is improved with 2-opt (reverse a segment when that shortens the walk),
   which frees minutes for later insertions. Steps 2-3 repeat until no cell fits anywhere.

>>> sites = [Site("a", 0.0, 0.0, 5.0), Site("b", 400.0, 0.0, 3.0), Site("far", 50_000.0, 0.0, 9.0)]
>>> plan = plan_routes(sites, [(0.0, 0.0)], PatrolParams(inspectors=1, shift_min=60, speed_kmh=4, visit_min=10))
>>> sorted(s.key for s in plan.routes[0].stops), round(plan.covered_share, 3)
(['a', 'b'], 0.471)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from gridsentinel.analytics.forecast import HORIZON, MIN_TRAIN_HISTORY, BoostedPoisson, History
from gridsentinel.errors import GridSentinelError

DETOUR = 1.3  # walking distance / straight-line distance in a street grid
FALLBACK_DAYS = 28  # the simple estimate: the mean daily count of the last 28 days
MIN_FORECAST_HISTORY = MIN_TRAIN_HISTORY + HORIZON  # one training origin with its 7 targets
MAX_CANDIDATES = 3000  # the most expected cells considered (a city's whole grid is more than a shift can walk)


class PatrolError(GridSentinelError):
    """A patrol plan cannot be made as asked (bad parameters, no data)."""


@dataclass(frozen=True)
class Site:
    """A cell to visit: ``key`` (grid code or "col,row"), centre in metres (x east, y north), expected problems."""

    key: str
    x: float
    y: float
    expected: float
    lat: float = 0.0
    lon: float = 0.0


@dataclass(frozen=True)
class PatrolParams:
    inspectors: int = 4
    shift_min: float = 360.0
    speed_kmh: float = 4.0
    visit_min: float = 10.0
    detour: float = DETOUR

    def check(self) -> None:
        if not 1 <= self.inspectors <= 200:
            raise PatrolError(f"inspectors must be between 1 and 200, got {self.inspectors}")
        if not 0 < self.shift_min <= 24 * 60:
            raise PatrolError(f"the shift must be longer than 0 and at most 24 h, got {self.shift_min / 60:g} h")
        if not 0.5 <= self.speed_kmh <= 30:
            raise PatrolError(f"the walking speed must be between 0.5 and 30 km/h, got {self.speed_kmh:g}")
        if not 0 <= self.visit_min <= self.shift_min:
            raise PatrolError(f"the visit time must be between 0 and the shift, got {self.visit_min:g} min")
        if not 1 <= self.detour <= 3:
            raise PatrolError(f"the detour factor must be between 1 and 3, got {self.detour:g}")

    @property
    def metres_per_min(self) -> float:
        return self.speed_kmh * 1000.0 / 60.0


@dataclass(frozen=True)
class Stop:
    key: str
    arrive_min: float  # minutes after the shift starts
    expected: float
    lat: float
    lon: float


@dataclass
class Route:
    inspector: int  # 1-based
    start: tuple[float, float]  # metres
    stops: list[Stop] = field(default_factory=list)
    distance_m: float = 0.0  # walking distance, back to the start included
    minutes: float = 0.0  # walking plus visits

    @property
    def expected(self) -> float:
        return sum(s.expected for s in self.stops)


@dataclass
class Plan:
    routes: list[Route]
    total_expected: float  # over every cell of the city
    covered_expected: float

    @property
    def covered_share(self) -> float:
        return self.covered_expected / self.total_expected if self.total_expected > 0 else 0.0

    @property
    def cells(self) -> list[str]:
        return [s.key for r in self.routes for s in r.stops]


def _tour_length(tour: Sequence[int], dist: np.ndarray) -> float:
    return float(sum(dist[tour[i], tour[i + 1]] for i in range(len(tour) - 1)))


def two_opt(tour: list[int], dist: np.ndarray) -> list[int]:
    """A closed tour (first == last node, kept fixed) improved by 2-opt until no reversal shortens it.

    >>> d = np.array([[0, 1, 2, 1], [1, 0, 1, 2], [2, 1, 0, 1], [1, 2, 1, 0]], dtype=float)
    >>> two_opt([0, 2, 1, 3, 0], d)
    [0, 1, 2, 3, 0]
    """
    best = list(tour)
    improved = True
    while improved:
        improved = False
        for i in range(1, len(best) - 2):
            for j in range(i + 1, len(best) - 1):
                a, b, c, e = best[i - 1], best[i], best[j], best[j + 1]
                if dist[a, c] + dist[b, e] < dist[a, b] + dist[c, e] - 1e-9:
                    best[i:j + 1] = reversed(best[i:j + 1])
                    improved = True
    return best


def plan_routes(sites: Sequence[Site], starts: Sequence[tuple[float, float]], params: PatrolParams) -> Plan:
    """Routes for ``params.inspectors`` inspectors; ``starts`` holds one point each, or one shared depot."""
    params.check()
    if len(starts) not in (1, params.inspectors):
        raise PatrolError(f"give one start point per inspector ({params.inspectors}) or one depot, got {len(starts)}")
    starts = list(starts) * params.inspectors if len(starts) == 1 else list(starts)
    total = float(sum(max(s.expected, 0.0) for s in sites))
    ranked = sorted((i for i, s in enumerate(sites) if s.expected > 0), key=lambda i: (-sites[i].expected, i))
    cand = ranked[:MAX_CANDIDATES]
    n_c, n_r = len(cand), params.inspectors
    # Nodes: candidates 0..n_c-1, then the inspectors' starts.
    xy = np.array([(sites[i].x, sites[i].y) for i in cand] + [tuple(p) for p in starts], dtype=float).reshape(-1, 2)
    diff = xy[:, None, :] - xy[None, :, :]
    walk = np.sqrt((diff ** 2).sum(axis=2)) * params.detour / params.metres_per_min  # minutes
    value = np.array([sites[i].expected for i in cand], dtype=float)
    tours = [[n_c + r, n_c + r] for r in range(n_r)]
    used = [0.0] * n_r  # minutes of each tour (walk + visits)
    free = np.ones(n_c, dtype=bool)
    while free.any():
        best: tuple[float, int, int, int] | None = None  # (-ratio, cell, route, position)
        idx = np.flatnonzero(free)
        for r, tour in enumerate(tours):
            t = np.array(tour)
            a, b = t[:-1], t[1:]
            extra = walk[np.ix_(idx, a)] + walk[np.ix_(idx, b)] - walk[a, b][None, :]  # [cell, edge]
            pos = np.argmin(extra, axis=1)
            cost = extra[np.arange(len(idx)), pos] + params.visit_min
            fits = used[r] + cost <= params.shift_min + 1e-9
            if not fits.any():
                continue
            ratio = np.where(fits, value[idx] / np.maximum(cost, 1e-6), -np.inf)
            k = int(np.argmax(ratio))  # the first maximum: the lowest cell index among ties
            cand_best = (-float(ratio[k]), int(idx[k]), r, int(pos[k]) + 1)
            if best is None or cand_best[:3] < best[:3]:
                best = cand_best
        if best is None:
            break
        _, cell, r, at = best
        tour = tours[r]
        tour.insert(at, cell)
        tours[r] = two_opt(tour, walk)
        used[r] = _tour_length(tours[r], walk) + params.visit_min * (len(tours[r]) - 2)
        free[cell] = False
    routes: list[Route] = []
    for r, tour in enumerate(tours):
        route = Route(r + 1, (float(starts[r][0]), float(starts[r][1])))
        clock = 0.0
        for prev, node in zip(tour[:-2], tour[1:-1], strict=True):
            clock += float(walk[prev, node])
            s = sites[cand[node]]
            route.stops.append(Stop(s.key, round(clock, 1), s.expected, s.lat, s.lon))
            clock += params.visit_min
        walked = _tour_length(tour, walk)
        route.distance_m = walked * params.metres_per_min
        route.minutes = walked + params.visit_min * len(route.stops)
        routes.append(route)
    covered = float(sum(value[n] for tour in tours for n in tour[1:-1]))
    return Plan(routes, total, covered)


def expected_for_day(history: History, target: int, complete_days: int | None = None,
                     model: BoostedPoisson | None = None, model_note: str = "") -> tuple[np.ndarray, str]:
    """Expected problems per cell (all families) on day ``target`` of ``history``, and how they were estimated.

    The forecast is made at the start of the first incomplete day (``complete_days``, default ``target``; at
    most ``target``), from the days before it only, and day ``target`` must be within its 7 days. ``model``: a
    fitted model to use (``model_note`` names it; ``history.families`` must be its families, in its order); else
    one is fitted here (``model_note`` may say why no stored one was used). With fewer
    than ``MIN_FORECAST_HISTORY`` complete days the estimate is the mean daily count of the last 28 days (or of
    every complete day, when fewer), and the text says so.
    """
    origin = target if complete_days is None else min(complete_days, target)
    h = target - origin
    if not 0 <= h < HORIZON:
        raise PatrolError(f"the day is {h} days after the last complete day: the forecast reaches {HORIZON - 1}")
    if origin <= 0:
        raise PatrolError("no complete day of history before the day: nothing to estimate from")
    past = history.until(origin)
    cells = past.seen_cells()
    out = np.zeros(len(history.cells))
    if origin < MIN_FORECAST_HISTORY:
        days = min(FALLBACK_DAYS, origin)
        out[cells] = past.counts[:, cells, origin - days:origin].sum(axis=0).mean(axis=1)
        return out, (f"simple estimate: the mean daily count of the last {days} days per cell (the store holds "
                     f"{origin} complete days; the forecast needs {MIN_FORECAST_HISTORY})")
    if model is not None:  # a stored model (analytics/model_store.py): no fit here
        if len(cells):
            out[cells] = model.predict(past, cells)[:, :, h].sum(axis=0)
        return out, (f"hotspot forecast (boosted Poisson trees, {model_note}) from the {origin} days up to "
                     f"{past.day(origin - 1).isoformat()}, {h + 1} day(s) ahead")
    if len(cells):
        out[cells] = BoostedPoisson().forecast(past, cells)[:, :, h].sum(axis=0)
    return out, (f"hotspot forecast (boosted Poisson trees, fitted for this plan{model_note}) from the {origin} "
                 f"days up to {past.day(origin - 1).isoformat()}, {h + 1} day(s) ahead")


def last_week_total(history: History, target: int) -> np.ndarray:
    """The naive plan's value per cell: problems of the 7 days before ``target`` (all families)."""
    lo = max(0, target - 7)
    return np.asarray(history.counts[:, :, lo:target].sum(axis=(0, 2)), dtype=float)


def covered_actual(plan: Plan, keys: Sequence[str], actual: np.ndarray, outside: float = 0.0) -> float:
    """Share of the day's problems (``actual`` per key, plus ``outside`` in cells without a key) in planned cells."""
    total = float(actual.sum()) + outside
    if total <= 0:
        return math.nan
    index = {k: i for i, k in enumerate(keys)}
    return float(sum(actual[index[k]] for k in plan.cells)) / total
