"""The patrol planner on hand-built grids where the right plan is known."""

from __future__ import annotations

from datetime import date

import numpy as np
import pytest

from gridsentinel.analytics.forecast import History
from gridsentinel.analytics.patrol import (
    FALLBACK_DAYS,
    PatrolError,
    PatrolParams,
    Site,
    covered_actual,
    expected_for_day,
    plan_routes,
    two_opt,
)


def cluster(prefix: str, cx: float, cy: float, expected: float, n: int = 4) -> list[Site]:
    """``n`` neighbouring 100 m cells around (cx, cy)."""
    return [Site(f"{prefix}{i}", cx + 100.0 * (i % 2), cy + 100.0 * (i // 2), expected) for i in range(n)]


def test_two_hot_clusters_two_inspectors_one_cluster_each() -> None:
    west, east = cluster("w", -3000.0, 0.0, 5.0), cluster("e", 3000.0, 0.0, 4.0)
    cold = [Site(f"c{i}", 0.0, 2000.0 + 200.0 * i, 0.1) for i in range(5)]
    # 4 km/h: 3 km there and back with the detour is about 117 min; 4 visits of 10 min; a 3 h shift cannot do both.
    params = PatrolParams(inspectors=2, shift_min=180, speed_kmh=4, visit_min=10)
    plan = plan_routes(west + east + cold, [(0.0, 0.0)], params)
    groups = [{s.key[0] for s in r.stops} for r in plan.routes]
    assert sorted(map(sorted, groups)) == [["e"], ["w"]]
    assert all(len(r.stops) == 4 for r in plan.routes)
    assert len(set(plan.cells)) == len(plan.cells)  # a cell is in one route only
    assert plan.covered_expected == pytest.approx(36.0)
    assert all(r.minutes <= 180 + 1e-6 for r in plan.routes)


def test_far_hot_cell_beyond_the_budget_is_skipped() -> None:
    near = [Site("n1", 500.0, 0.0, 1.0), Site("n2", 0.0, 500.0, 1.0)]
    far = Site("far", 20_000.0, 0.0, 50.0)  # 52 km there and back: 13 h at 4 km/h
    plan = plan_routes([far, *near], [(0.0, 0.0)], PatrolParams(inspectors=1, shift_min=120, visit_min=5))
    assert sorted(plan.cells) == ["n1", "n2"]
    assert plan.covered_share == pytest.approx(2.0 / 52.0)
    # With a long enough shift it is the first thing taken.
    long = plan_routes([far, *near], [(0.0, 0.0)], PatrolParams(inspectors=1, shift_min=15 * 60, visit_min=5))
    assert "far" in long.cells


def test_order_is_a_sensible_tour_and_times_add_up() -> None:
    # Eight cells on a 1 km square ring around the depot at its corner: the tour walks the ring, no crossings.
    ring = [(0, 1), (0, 2), (1, 2), (2, 2), (2, 1), (2, 0), (1, 0)]
    sites = [Site(f"{x},{y}", 500.0 * x, 500.0 * y, 1.0) for x, y in ring]
    params = PatrolParams(inspectors=1, shift_min=600, speed_kmh=6, visit_min=5, detour=1.0)
    plan = plan_routes(sites, [(0.0, 0.0)], params)
    keys = [s.key for s in plan.routes[0].stops]
    walk_ring = ["0,1", "0,2", "1,2", "2,2", "2,1", "2,0", "1,0"]
    assert keys in (walk_ring, walk_ring[::-1])
    route = plan.routes[0]
    assert route.distance_m == pytest.approx(4000.0)  # the ring's perimeter, back to the depot
    assert route.stops[0].arrive_min == pytest.approx(5.0)  # 500 m at 100 m/min
    assert route.stops[1].arrive_min == pytest.approx(5.0 + 5.0 + 5.0)  # visit, then 500 m
    assert route.minutes == pytest.approx(40.0 + 7 * 5.0)


def test_deterministic_and_one_start_per_inspector() -> None:
    rng = np.random.default_rng(3)
    sites = [Site(str(i), float(x), float(y), float(e)) for i, (x, y, e) in
             enumerate(zip(rng.uniform(-4000, 4000, 80), rng.uniform(-4000, 4000, 80), rng.gamma(1.0, 1.0, 80),
                           strict=True))]
    starts = [(-3000.0, 0.0), (3000.0, 0.0), (0.0, 3000.0)]
    params = PatrolParams(inspectors=3, shift_min=240)
    a, b = plan_routes(sites, starts, params), plan_routes(sites, starts, params)
    assert [[s.key for s in r.stops] for r in a.routes] == [[s.key for s in r.stops] for r in b.routes]
    assert len(set(a.cells)) == len(a.cells) > 0
    assert all(r.minutes <= 240 + 1e-6 for r in a.routes)
    # Each inspector works near its own start: its stops are on average closer to it than to the others.
    by_key = {s.key: s for s in sites}
    for r in a.routes:
        mine = [np.hypot(by_key[s.key].x - r.start[0], by_key[s.key].y - r.start[1]) for s in r.stops]
        others = [np.hypot(by_key[s.key].x - o[0], by_key[s.key].y - o[1]) for s in r.stops for o in starts
                  if o != r.start]
        assert np.mean(mine) < np.mean(others)


def test_bad_parameters_are_refused_with_a_reason() -> None:
    with pytest.raises(PatrolError, match="inspectors"):
        plan_routes([], [(0.0, 0.0)], PatrolParams(inspectors=0))
    with pytest.raises(PatrolError, match="one start point per inspector"):
        plan_routes([], [(0.0, 0.0), (1.0, 1.0)], PatrolParams(inspectors=3))
    with pytest.raises(PatrolError, match="speed"):
        PatrolParams(speed_kmh=0).check()
    empty = plan_routes([], [(0.0, 0.0)], PatrolParams(inspectors=2))
    assert empty.cells == [] and empty.covered_share == 0.0


def test_two_opt_uncrosses() -> None:
    pts = np.array([[0, 0], [0, 1], [1, 1], [1, 0]], dtype=float)
    d = np.sqrt(((pts[:, None] - pts[None]) ** 2).sum(axis=2))
    assert two_opt([0, 2, 1, 3, 0], d) in ([0, 1, 2, 3, 0], [0, 3, 2, 1, 0])


def history(days: int) -> History:
    counts = np.zeros((1, 3, days))
    counts[0, 0, :] = 2.0
    counts[0, 1, -7:] = 1.0
    return History(date(2024, 1, 1), ("a",), [(0, 0), (1, 0), (2, 0)], counts, frozenset())


def test_short_history_falls_back_to_the_28_day_mean_and_says_so() -> None:
    h = history(30)
    exp, how = expected_for_day(h, 30)
    assert "simple estimate" in how and f"last {FALLBACK_DAYS} days" in how
    assert exp.tolist() == pytest.approx([2.0, 7.0 / 28.0, 0.0])
    short, how = expected_for_day(history(10), 10)
    assert "last 10 days" in how and short[0] == pytest.approx(2.0)


def test_long_history_uses_the_forecast_and_sees_no_future() -> None:
    h = history(70)
    exp, how = expected_for_day(h, 60)
    assert "forecast" in how and "2024-02-29" in how
    assert exp[0] > exp[2] >= 0.0
    with pytest.raises(PatrolError, match="forecast reaches"):
        expected_for_day(h, 69, complete_days=50)


def test_covered_actual_counts_problems_outside_known_cells() -> None:
    plan = plan_routes([Site("a", 0.0, 0.0, 1.0), Site("b", 90_000.0, 0.0, 1.0)], [(0.0, 0.0)],
                       PatrolParams(inspectors=1, shift_min=60))
    assert covered_actual(plan, ["a", "b"], np.array([3.0, 1.0]), outside=4.0) == pytest.approx(3.0 / 8.0)
