"""Hotspot forecast and its rolling-origin evaluation on hand-built histories where the answer is known."""

from __future__ import annotations

import math
from datetime import date
from pathlib import Path

import numpy as np
import pytest

from gridsentinel.analytics.civic import Families, FamilyConfig, Request, load_families, read_requests
from gridsentinel.analytics.forecast import (
    HORIZON,
    BoostedPoisson,
    History,
    LastWeek,
    SameWeekdayMean,
    WeeklyBoostedPoisson,
    build_history,
    features,
    weekday_profile,
    weekly_features,
)
from gridsentinel.analytics.grid import Grid
from gridsentinel.analytics.rolling import (
    ALL,
    HINDSIGHT,
    ORACLE,
    WeekScore,
    hindsight_forecast,
    hit_rate,
    poisson_deviance,
    rolling_origin,
    score_week,
    split_weeks,
)
from gridsentinel.bench.forecast import _ceiling
from gridsentinel.errors import GridSentinelError

pytestmark = pytest.mark.unit

START = date(2024, 1, 1)  # a Monday


def _history(counts: np.ndarray, families: tuple[str, ...] = ("a",)) -> History:
    cells = [(i, 0) for i in range(counts.shape[1])]
    return History(START, families, cells, counts.astype(float), frozenset())


def _hotspot_history(days: int = 70, seed: int = 1) -> History:
    """Cell 0 always has the most problems (Poisson 6/day), cells 1-19 have 0.3/day."""
    rng = np.random.default_rng(seed)
    rates = np.full(20, 0.3)
    rates[0] = 6.0
    return _history(rng.poisson(rates[None, :, None], size=(1, 20, days)))


def test_last_week_baseline_by_hand():
    counts = np.zeros((1, 2, 14))
    counts[0, 0, 7:14] = [1, 2, 3, 4, 5, 6, 7]
    counts[0, 1, 9] = 4
    fc = LastWeek().forecast(_history(counts), np.arange(2))
    assert fc[0, 0].tolist() == [1, 2, 3, 4, 5, 6, 7]
    assert fc[0, 1].tolist() == [0, 0, 4, 0, 0, 0, 0]


def test_same_weekday_mean_by_hand():
    counts = np.zeros((1, 1, 70))
    counts[0, 0, ::7] = np.arange(10)  # Mondays: 0, 1, ..., 9
    fc = SameWeekdayMean().forecast(_history(counts), np.arange(1))
    assert fc[0, 0, 0] == pytest.approx(np.mean(np.arange(2, 10)))  # the last 8 Mondays
    assert fc[0, 0, 1:].tolist() == [0.0] * 6
    short = SameWeekdayMean().forecast(_history(counts[:, :, :21]), np.arange(1))
    assert short[0, 0, 0] == pytest.approx(1.0)  # only 3 Mondays of history: their mean


def test_model_ranks_the_always_busiest_cell_first():
    history = _hotspot_history()
    cells = np.arange(20)
    fc = BoostedPoisson(max_iter=30).forecast(history, cells)
    week = fc.sum(axis=2)[0]
    assert int(np.argmax(week)) == 0
    assert week[0] == pytest.approx(42, rel=0.35)  # about 6 a day for 7 days


def test_no_future_leakage():
    history = _hotspot_history(days=77)
    origin = 63
    cells = np.arange(20)
    before = BoostedPoisson(max_iter=20).forecast(history.until(origin), cells)
    spiked = _history(history.counts.copy())
    spiked.counts[0, 7, origin:] += 50  # a spike after the origin
    after = BoostedPoisson(max_iter=20).forecast(spiked.until(origin), cells)
    np.testing.assert_array_equal(before, after)
    for fc in (LastWeek(), SameWeekdayMean()):
        np.testing.assert_array_equal(fc.forecast(history.until(origin), cells),
                                      fc.forecast(spiked.until(origin), cells))
    # the spike is in the evaluation's actuals, not in any forecast
    weeks = rolling_origin(spiked, [LastWeek()], first_week=9, last_week=9)
    assert weeks[0].origin == "2024-03-04" and weeks[0].problems["a"] > 350


def test_features_use_only_the_past():
    counts = np.zeros((1, 1, 35))
    counts[0, 0, 28:35] = 1.0  # the last week
    X = features(_history(counts), np.arange(1))
    assert X.shape == (HORIZON, 10)
    assert X[:, 4].tolist() == [1.0] * 7  # last7 mean
    assert X[0, 5] == pytest.approx(7 / 28)  # last28 mean
    assert X[0, 7] == pytest.approx(7 / 35)  # long-run mean
    assert X[:, 2].tolist() == [0, 1, 2, 3, 4, 5, 6]  # target weekday from day 35 = Monday 5 Feb 2024
    holiday = History(START, ("a",), [(0, 0)], counts, frozenset({date(2024, 2, 6)}))
    assert features(holiday, np.arange(1))[:, 3].tolist() == [0, 1, 0, 0, 0, 0, 0]


def test_hit_rate_counts_problems_in_unseen_cells_as_misses():
    assert hit_rate(np.array([5.0, 1.0]), np.array([4.0, 0.0]), 0.10, outside=4.0) == pytest.approx(0.5)
    assert math.isnan(hit_rate(np.array([1.0]), np.array([0.0]), 0.10))


def test_score_week_all_families_ranks_by_total():
    # two families, three cells; cell 2 was never seen before the origin
    forecast = np.zeros((2, 2, HORIZON))
    forecast[0, 0] = 1.0
    forecast[1, 1] = 3.0
    actual = np.zeros((2, 3, HORIZON))
    actual[0, 0, 0] = 2
    actual[1, 1, 0] = 6
    actual[1, 2, 0] = 2
    scores = score_week(np.array([0, 1]), forecast, actual, ("a", "b"))
    assert scores["a"]["hit10"] == 1.0  # k = 1 of 2 seen cells: cell 0, where family a's 2 problems are
    assert scores["b"]["hit10"] == pytest.approx(6 / 8)
    assert scores[ALL]["hit10"] == pytest.approx(6 / 10)


def test_poisson_deviance():
    assert poisson_deviance(np.array([2.0, 0.0]), np.array([2.0, 0.0])) == pytest.approx(0.01)
    assert poisson_deviance(np.array([1.0]), np.array([1.0])) == 0.0


def test_rolling_origin_model_beats_last_week_on_a_stable_hotspot():
    weeks = rolling_origin(_hotspot_history(days=84), [LastWeek(), BoostedPoisson(max_iter=30)], first_week=10)
    assert [w.week for w in weeks] == [10, 11]
    for w in weeks:
        assert w.scores["boosted_poisson"]["a"]["deviance"] < w.scores["last_week"]["a"]["deviance"]


def test_build_history_grid_and_families(tmp_path: Path):
    grid = Grid(42.36, -71.06, 500)
    reqs = [Request(date(2024, 1, 1), 42.36, -71.06, "b"), Request(date(2024, 1, 2), 42.36, -71.06, "b"),
            Request(date(2024, 1, 2), 42.37, -71.06, "a"), Request(date(2023, 12, 31), 42.36, -71.06, "a")]
    h = build_history(reqs, grid, ("a", "b"), date(2024, 1, 1), date(2024, 1, 3))
    assert h.cells == [(0, 0), (0, 2)] and h.days == 3
    assert h.counts[1, 0].tolist() == [1, 1, 0] and h.counts[0, 1].tolist() == [0, 1, 0]
    assert h.counts.sum() == 3  # the request before the start is outside


def test_families_and_unlocated_rows(tmp_path: Path):
    fams = Families.from_config(FamilyConfig(families={"street": ["Pothole"]}, exclude=["Survey"]))
    assert fams.names == ("street", "other")
    csv_path = tmp_path / "r.csv"
    csv_path.write_text("OPEN_DT,REASON,LATITUDE,LONGITUDE\n"
                        "01/02/2015 10:00:00 AM,Pothole,42.33,-71.08\n"
                        "01/02/2015 11:00:00 PM,Trees,42.33,-71.08\n"
                        "01/03/2015 10:00:00 AM,Pothole,42.3594,-71.0587\n"  # City Hall default point
                        "01/03/2015 10:00:00 AM,Survey,42.33,-71.08\n")
    reqs, stats = read_requests(csv_path, fams)
    assert [(r.day, r.family) for r in reqs] == [(date(2015, 1, 2), "street"), (date(2015, 1, 2), "other")]
    assert (stats.rows, stats.unlocated, stats.excluded) == (4, 1, 1)


def test_shipped_family_config_loads_and_bad_config_names_the_file(tmp_path: Path):
    fams = load_families()
    assert fams.family_of("Street Lights") == "signs-lights" and fams.family_of("Call Inquiry") is None
    bad = tmp_path / "f.yaml"
    bad.write_text("families: {a: [X]}\ncolour: red\n")
    with pytest.raises(GridSentinelError, match="f.yaml: colour"):
        load_families(bad)


def test_oracle_ranks_by_next_weeks_counts_and_no_forecaster_beats_it():
    # 10 cells, two weeks; week 1 (the evaluated one) has its problems where week 0 had none
    counts = np.zeros((1, 10, 14))
    counts[0, :, :7] = 1.0  # every cell seen in week 0
    counts[0, 3, 7] = 6.0
    counts[0, 8, 9] = 3.0
    counts[0, 5, 10] = 1.0
    weeks = rolling_origin(_history(counts), [LastWeek(), SameWeekdayMean()], first_week=1, bounds=True)
    scores = weeks[0].scores
    assert scores[ORACLE]["a"]["hit10"] == pytest.approx(6 / 10)  # k = 1 cell: cell 3, 6 of 10 problems
    assert scores[ORACLE]["a"]["hit5"] == pytest.approx(6 / 10)
    assert scores["last_week"]["a"]["hit10"] == pytest.approx(1 / 10)  # all tied: a random cell's expected share
    for fc in ("last_week", "same_weekday_8w", HINDSIGHT):
        assert scores[fc]["a"]["hit10"] <= scores[ORACLE]["a"]["hit10"]


def test_bounds_are_only_scored_when_asked():
    weeks = rolling_origin(_hotspot_history(days=21), [LastWeek()], first_week=1)
    assert set(weeks[0].scores) == {"last_week"}


def test_hindsight_rate_uses_every_week_but_the_target_one():
    counts = np.zeros((1, 2, 21))
    counts[0, 0, 7:14] = 100.0  # the target week: must not count
    counts[0, 1, 14:21] = 7.0  # a later week: counts (this bound sees the future)
    rate = hindsight_forecast(_history(counts), 7, np.arange(2))
    assert rate.shape == (1, 2, HORIZON)
    assert rate[0, 0].tolist() == [0.0] * HORIZON
    assert rate[0, 1, 0] == pytest.approx(7 * 7 / 14)


def test_split_weeks_puts_the_cut_date_in_scoring():
    ws = [WeekScore(w, o, 1, {}) for w, o in ((22, "2015-06-04"), (23, "2015-06-11"), (24, "2015-06-18"))]
    tuning, scoring = split_weeks(ws, "2015-06-11")
    assert [w.week for w in tuning] == [22] and [w.week for w in scoring] == [23, 24]
    assert split_weeks(ws, "2015-01-01") == ([], ws)


def test_ceiling_says_what_the_goal_needs_beside_the_oracle():
    def row(hit10: float) -> dict[str, float]:
        return {"hit5": 0.0, "hit10": hit10, "deviance": 0.0}
    summary = {"a": {"last_week": row(0.2), "same_weekday_8w": row(0.4), "boosted_poisson": row(0.42),
                     "weekly_poisson": row(0.46), HINDSIGHT: row(0.44), ORACLE: row(0.5)}}
    c = _ceiling(summary, ["a"])["a"]
    assert c["best_baseline_hit10"] == 0.4 and c["needed_hit10"] == pytest.approx(0.46)
    assert c["needed_over_oracle"] == pytest.approx(0.92)
    assert c["ratio_weekly_poisson"] == pytest.approx(1.15) and c["ratio_boosted_poisson"] == pytest.approx(1.05)


def test_weekly_model_ranks_the_busiest_cell_first_and_splits_by_weekday():
    history = _hotspot_history(days=70)
    # 20 cells x 6 past weeks = 120 rows: leaves of 40 (the default) could not isolate the one busy cell
    fc = WeeklyBoostedPoisson(max_iter=30, min_samples_leaf=5).forecast(history, np.arange(20))
    week = fc.sum(axis=2)[0]
    assert int(np.argmax(week)) == 0
    assert week[0] == pytest.approx(42, rel=0.35)
    np.testing.assert_allclose(weekday_profile(history).sum(axis=1), 1.0)


def test_weekly_model_sees_no_future():
    history = _hotspot_history(days=77)
    spiked = _history(history.counts.copy())
    spiked.counts[0, 7, 63:] += 50
    cells = np.arange(20)
    np.testing.assert_array_equal(WeeklyBoostedPoisson(max_iter=20).forecast(history.until(63), cells),
                                  WeeklyBoostedPoisson(max_iter=20).forecast(spiked.until(63), cells))


def test_weekly_features_decay_and_holidays():
    counts = np.zeros((1, 1, 28))
    counts[0, 0, 27] = 1.0  # one problem, yesterday
    X = weekly_features(History(START, ("a",), [(0, 0)], counts, frozenset({date(2024, 1, 30)})), np.arange(1))
    ewm7 = X[0, 4]
    assert ewm7 > X[0, 8] > 0  # a recent problem weighs more with a short half-life than a long one
    assert X[0, -1] == 1.0  # 30 Jan 2024 is among the 7 target days from 29 Jan


def _rainy_history(days: int = 140, seed: int = 3) -> tuple[History, np.ndarray]:
    """Drainage problems that follow the previous day's rain (the known answer), in 6 cells."""
    rng = np.random.default_rng(seed)
    rain = np.where(rng.random(days) < 0.25, rng.gamma(2.0, 15.0, days), 0.0)
    rate = 0.2 + 0.08 * np.concatenate([[0.0], rain[:-1]])  # problems per cell and day after d mm of rain
    counts = rng.poisson(np.broadcast_to(rate, (1, 6, days))).astype(float)
    return History(date(2026, 1, 5), ("drainage",), [(i, 0) for i in range(6)], counts, frozenset()), rain


def test_rain_features_are_the_past_rain_and_unknown_days_stay_unknown():
    from dataclasses import replace

    from gridsentinel.analytics.forecast import feature_names

    h, rain = _rainy_history(days=40)
    rain[39] = np.nan
    with_rain = replace(h, rain_mm=rain)
    names = feature_names(with_rain)
    X = features(with_rain.until(35), np.arange(6))
    assert X.shape[1] == len(names) and names[-2:] == ("rain_1d", "rain_7d")
    assert np.allclose(X[:, names.index("rain_1d")], rain[34])
    assert np.allclose(X[:, names.index("rain_7d")], rain[28:35].sum())
    assert np.isnan(features(with_rain.until(40), np.arange(6))[:, names.index("rain_1d")]).all()
    # the future's rain is not a feature: changing it changes nothing before it
    later = rain.copy()
    later[35:] = 500.0
    assert np.array_equal(X, features(replace(h, rain_mm=later).until(35), np.arange(6)))


def test_the_model_learns_drainage_after_rain_when_it_has_the_gauges():
    """Train on the first 16 weeks, score the next 4 weeks' origins: with the rain features the deviance of
    next-day drainage problems is lower than without (the counts follow the rain by construction)."""
    from dataclasses import replace

    from gridsentinel.analytics.rolling import poisson_deviance

    h, rain = _rainy_history()
    cells = np.arange(6)
    dev = {}
    for name, hist in (("without", h), ("with", replace(h, rain_mm=rain))):
        model = BoostedPoisson(train_weeks=12)
        assert model.fit(hist.until(112), cells)  # once, on the first 16 weeks
        dev[name] = sum(poisson_deviance(hist.counts[:, :, origin], model.predict(hist.until(origin), cells)[:, :, 0])
                        for origin in range(112, 140))
    assert dev["with"] < 0.8 * dev["without"], dev


def test_the_working_calendar_marks_make_up_days():
    from dataclasses import replace

    from gridsentinel.analytics.forecast import feature_names

    h, _ = _rainy_history(days=14)
    make_up = date(2026, 1, 17)  # a Saturday worked in place of a holiday
    cal = replace(h, is_working_day=lambda d: d.weekday() < 5 or d == make_up)
    names = feature_names(cal)
    X = features(cal.until(7), np.arange(6)).reshape(1, 6, HORIZON, len(names))  # targets 12 Jan .. 18 Jan
    assert names[len(names) - 1] == "working_day"
    assert X[0, 0, :, -1].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0, 0.0]
