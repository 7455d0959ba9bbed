"""Properties of the `likelihood` detector (not its NAB score: that is `gridsentinel bench nab`'s job)."""

from __future__ import annotations

import json
import math
import random

import pytest

from gridsentinel.core.records import Reading
from gridsentinel.detectors.likelihood import LikelihoodDetector, tail_decades

pytestmark = pytest.mark.unit

DT = 300.0  # five-minute rows, as most NAB series


def _times(n: int) -> list[float]:
    return [1_600_000_000.0 + DT * i for i in range(n)]


def _noise(n: int, seed: int, sd: float = 1.0) -> list[float]:
    rng = random.Random(seed)
    return [10.0 + rng.gauss(0.0, sd) for _ in range(n)]


def _scores(values: list[float], **params: object) -> list[float]:
    return LikelihoodDetector(**params).score_series(values, _times(len(values)))  # type: ignore[arg-type]


def test_deterministic() -> None:
    values = _noise(3000, 1)
    assert _scores(values) == _scores(values)


@pytest.mark.parametrize("stats", ["recent", "history"])
def test_streaming_equals_batch_and_resuming_from_state(stats: str) -> None:
    values = _noise(2000, 2)
    values[1500] = 20.0
    batch = _scores(values, stats=stats)
    det = LikelihoodDetector(stats=stats)  # type: ignore[arg-type]
    streamed = []
    for i, (v, t) in enumerate(zip(values, _times(len(values)), strict=True)):
        if i == 1000:  # a worker restart: state through JSON into a fresh detector
            state = json.loads(json.dumps(det.state(), allow_nan=False))
            det = LikelihoodDetector(stats=stats)  # type: ignore[arg-type]
            det.restore(state)
        streamed.append(det.update(Reading("d", "value", "", v, t)).score)
    assert streamed == batch


def test_a_state_saved_without_history_sums_starts_them_afresh_and_quietly() -> None:
    """A worker restarted on design 11 with a state design 10 saved (no ``sums``): the history statistics
    start from that row, and the detector stays silent for their first ``warmup`` rows instead of meeting
    every raw score with a spread of zero."""
    values = _noise(2000, 12)
    values[1010] = 25.0  # a spike right after the restart: history statistics of 9 rows cannot judge it
    values[1600] = -5.0  # a spike the other way once they have 600 rows
    lo, hi = min(values), max(values)
    old = LikelihoodDetector(lo=lo, hi=hi, stats="recent", discount_looks=False)
    for v, t in zip(values[:1000], _times(1000), strict=True):
        old.update(Reading("d", "value", "", v, t))
    state = json.loads(json.dumps(old.state()))
    del state["sums"]
    new = LikelihoodDetector(lo=lo, hi=hi)
    new.restore(state)
    times = _times(len(values))
    scores = [new.update(Reading("d", "value", "", v, t)).score for v, t in zip(values[1000:], times[1000:],
                                                                                 strict=True)]
    assert scores[:30] == [0.0] * 30 and new.sums[2] == 1000.0
    assert scores[600] >= 0.5 and max(scores[30:600]) < 0.5  # then it judges as before: only the spike fires


def test_scores_are_in_unit_interval_and_never_pile_up_at_one() -> None:
    rng = random.Random(3)
    values = [rng.choice([0.0, 0.0, 1.0, 50.0, 1e6]) for _ in range(3000)]
    scores = _scores(values)
    assert all(0.0 <= s < 1.0 and math.isfinite(s) for s in scores)


def test_nothing_scores_during_warm_up() -> None:
    values = [0.0] * 10 + [100.0, -100.0] * 10  # wild from the start
    scores = _scores(values, warmup=30)
    assert scores[:30] == [0.0] * 30


@pytest.mark.parametrize("stats", ["recent", "history"])
@pytest.mark.parametrize("seed", [4, 5, 6])
def test_flags_a_level_step(seed: int, stats: str) -> None:
    values = _noise(3000, seed)
    values[2000:] = [v + 8.0 for v in values[2000:]]
    scores = _scores(values, lo=min(values), hi=max(values), stats=stats)
    assert max(scores[2000:2010]) >= 0.5


@pytest.mark.parametrize("stats", ["recent", "history"])
@pytest.mark.parametrize("seed", [7, 8, 9])
def test_flags_a_single_spike(seed: int, stats: str) -> None:
    values = _noise(3000, seed)
    values[2000] = 25.0
    scores = _scores(values, lo=min(values), hi=max(values), stats=stats)
    assert scores[2000] >= 0.5


@pytest.mark.parametrize("seed", [10, 11, 12])
def test_white_noise_rarely_fires(seed: int) -> None:
    values = _noise(20_000, seed)  # about 70 days of five-minute rows, no anomaly
    scores = _scores(values, lo=min(values), hi=max(values))
    rate = sum(s >= 0.5 for s in scores[1000:]) / 19_000
    # a Gaussian's outer levels and their pairs keep turning up for the first time, now and then: what
    # fires is those first visits (measured 5-6 in 10,000 rows), bounded here at 1 in 1,000 rows
    assert rate <= 1e-3, rate


def test_time_of_day_part_stays_silent_on_a_series_without_a_daily_shape() -> None:
    values = _noise(10_000, 13, sd=3.0)
    assert _scores(values, daily=True) == _scores(values, daily=False)


def test_missing_daily_peak_is_flagged_only_with_the_time_of_day_part() -> None:
    rng = random.Random(14)
    hourly = [3600.0 * i for i in range(24 * 30)]
    values = [(10.0 if 12 <= (i % 24) < 16 and i // 24 != 25 else 0.0) + rng.uniform(-0.2, 0.2)
              for i in range(len(hourly))]
    day = LikelihoodDetector(lo=-1.0, hi=11.0).score_series(values, hourly)
    plain = LikelihoodDetector(lo=-1.0, hi=11.0, daily=False).score_series(values, hourly)
    missing = slice(24 * 25 + 12, 24 * 25 + 16)
    assert max(day[missing]) >= 0.5 > max(plain[missing])
    assert max(day[24 * 3:24 * 25]) < 0.5  # the normal days before it do not fire


def _decades_of(score: float) -> float:
    return 4.0 * score / (1.0 - score)  # the output's inverse at p_fire 1e-4


def test_history_statistics_keep_a_late_small_novelty_finite() -> None:
    rng = random.Random(15)
    levels = [0.5, 1.5, 2.5, 3.5, 4.5, 5.5]
    values = [2.5]
    while len(values) < 400:  # a jumpy start that shows every transition but 0.5 -> 5.5
        v = rng.choice(levels)
        if not (values[-1] == 0.5 and v == 5.5):
            values.append(v)
    quiet = [1.5 if i % 2 else 2.5 for i in range(8000)]  # then weeks between two known levels
    values += quiet + [0.5, 5.5] + quiet[:50]  # and once the one transition not seen yet
    late = slice(8400, 8403)
    recent = _scores(values, lo=0.0, hi=6.0, daily=False, stats="recent", discount_looks=False)
    history = _scores(values, lo=0.0, hi=6.0, daily=False, stats="history", discount_looks=False)
    # the recent spread has shrunk to its floor: hundreds of decades; the whole history's spread still
    # remembers the jumpy start
    assert _decades_of(max(recent[late])) > 100.0
    assert 0.0 < _decades_of(max(history[late])) < 10.0
    assert max(history[1000:8400]) == 0.0  # the quiet stretch itself never scores


def _masked(decades: list[float], refractory: int, **params: object) -> list[float]:
    """The output for a scripted surprise per row (decades of tail probability; p_fire 1e-4 = 4 decades)."""
    det = LikelihoodDetector(daily=False, warmup=0, refractory=refractory, **params)  # type: ignore[arg-type]
    script = iter(decades)
    det._decades = lambda *_: next(script)  # type: ignore[method-assign]
    return det.score_series([0.0] * len(decades), _times(len(decades)))


def test_an_incident_crosses_any_threshold_once_unless_it_peaks_higher() -> None:
    out = _masked([0.0, 1.0, 0.5, 1.0, 2.0, 0.3, 0.0, 0.0, 0.0, 0.0, 1.0], refractory=6)
    # rows 2, 3 and 5 are no higher than the incident's record: held; row 4 is a new record and passes;
    # row 10 comes after the incident's 6 rows, a new incident
    assert out == [0.0, 0.2, 0.0, 0.0, pytest.approx(1 / 3), 0.0, 0.0, 0.0, 0.0, 0.0, 0.2]
    for threshold in (0.1, 0.25, 0.3):  # whatever threshold is applied later: one crossing per peak
        assert sum(s >= threshold for s in out[:10]) == 1 + (threshold <= 0.2)


def test_a_firing_row_holds_everything_for_the_refractory_rows() -> None:
    out = _masked([1.0, 4.0, 9.0, 2.0, 0.0, 9.0, 1.0], refractory=3)
    assert out[1] == pytest.approx(0.5)
    assert out[2:5] == [0.0, 0.0, 0.0]  # held, even the higher surprise at row 2
    assert out[5] == pytest.approx(9 / 13) and out[6] == 0.0


def test_without_refractory_nothing_is_held() -> None:
    decades = [1.0, 0.5, 1.0, 6.0, 6.0, 0.2]
    assert _masked(decades, refractory=0) == pytest.approx([d / (d + 4.0) for d in decades])


def test_many_looks_lower_a_late_surprise_by_the_stretches_seen() -> None:
    # long_alpha 0.01: one look per 100 rows; the same 5-decade surprise on every row
    out = _masked([5.0] * 1000, refractory=0, long_alpha=0.01)
    assert out[99] == pytest.approx(5 / 9)  # row 100: the first stretch, nothing taken off
    assert out[999] == pytest.approx(4 / 8)  # row 1000: ten stretches seen, one decade less
    assert out == sorted(out, reverse=True)  # the discount only ever grows with the rows seen
    plain = _masked([5.0] * 1000, refractory=0, long_alpha=0.01, discount_looks=False)
    assert plain == [pytest.approx(5 / 9)] * 1000
    # a surprise smaller than the discount scores 0, never below
    assert _masked([0.5] * 1000, refractory=0, long_alpha=0.01)[999] == 0.0


def test_tail_decades() -> None:
    assert tail_decades(0.0) == 0.0
    assert tail_decades(1.0) == pytest.approx(-math.log10(0.158655), rel=1e-4)
    # continuous across the switch to the asymptotic form, and increasing
    assert tail_decades(29.999) == pytest.approx(tail_decades(30.0), rel=1e-3)
    assert tail_decades(10.0) < tail_decades(30.0) < tail_decades(100.0) < math.inf


@pytest.mark.parametrize("bad", [{"bins": 1}, {"p_fire": 0.0}, {"p_fire": 1.0}, {"daily_r2": 1.5},
                                 {"slot_s": 1.0}, {"short_alpha": 0.0}, {"refractory": -1},
                                 {"stats": "forever"}])
def test_bad_settings_are_refused_with_a_reason(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError, match=next(iter(bad))):
        LikelihoodDetector(**bad)  # type: ignore[arg-type]
