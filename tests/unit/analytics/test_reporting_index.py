"""Selective-reporting index on hand-built histories where the right answer is known."""

from __future__ import annotations

import random

import pytest
from scipy.stats import binom

from gridsentinel.analytics.reporting_index import (
    Observation,
    Tally,
    assess_units,
    benjamini_hochberg,
    flags,
    tally,
)

pytestmark = pytest.mark.unit


def _history(units: dict[str, float], *, problems: int = 60, seed: int = 1) -> list[Observation]:
    """Each unit has ``problems`` machine-found problems; people report ``rate`` of them (rounded), in 3 cells."""
    obs: list[Observation] = []
    for unit, rate in units.items():
        people = round(problems * rate)
        for i in range(problems):
            obs.append(Observation(unit, "drainage", f"{unit}-{i % 3}", True, False))
        for i in range(people):
            obs.append(Observation(unit, "drainage", f"{unit}-{i % 3}", False, True))
    random.Random(seed).shuffle(obs)
    return obs


def test_one_unit_under_reporting_by_a_factor_five_is_flagged_and_no_other() -> None:
    units = {f"u{i}": 0.5 for i in range(8)}
    units["u3"] = 0.1  # people report a fifth of what the others do
    results = assess_units(tally(_history(units)))
    assert [r.unit for r in flags(results)] == ["u3"]
    r = next(r for r in results if r.unit == "u3")
    assert (r.people, r.machines) == (6, 60)
    assert r.reference_share == pytest.approx(30 / 90)
    assert r.expected_people == pytest.approx(66 * 30 / 90)
    assert r.p_value == pytest.approx(binom.cdf(6, 66, 1 / 3))
    assert r.shortfall == pytest.approx(22 / 6)
    assert "people reported 6 of 66" in r.reason and "flagged" in r.reason and "q =" in r.reason


def test_all_equal_units_none_flagged() -> None:
    results = assess_units(tally(_history({f"u{i}": 0.4 for i in range(10)})))
    assert all(r.tested for r in results)
    assert flags(results) == []
    assert all(r.p_value == pytest.approx(binom.cdf(24, 84, 24 / 84)) for r in results)


def test_over_reporting_unit_is_not_flagged() -> None:
    units = {f"u{i}": 0.3 for i in range(6)}
    units["u0"] = 1.5  # people report more than machines find: never a selective-reporting flag
    assert flags(assess_units(tally(_history(units)))) == []


def test_busy_or_heavily_instrumented_unit_is_not_flagged_for_its_size() -> None:
    """Ten times the problems at the same people share: the exposure cancels in the conditional test."""
    obs = _history({f"u{i}": 0.5 for i in range(5)})
    obs += _history({"big": 0.5}, problems=600)
    results = assess_units(tally(obs))
    assert flags(results) == []
    big = next(r for r in results if r.unit == "big")
    assert big.tested and big.reference_share == pytest.approx(1 / 3) and (big.p_value or 0.0) > 0.3


def test_cells_without_instruments_are_left_out() -> None:
    obs = [Observation("a", "f", "c1", True, False), Observation("a", "f", "c1", False, True),
           Observation("a", "f", "c2", False, True)]  # c2 has no instrument for f: its report is not compared
    assert tally(obs) == [Tally("a", "f", 1, 1)]
    assert tally(obs, instrumented={"f": {"c1", "c2"}}) == [Tally("a", "f", 2, 1)]
    both = [Observation("a", "f", "c1", True, True)]  # one problem seen by both channels counts on each side
    assert tally(both) == [Tally("a", "f", 1, 1)]


def test_small_units_and_lonely_families_are_not_tested() -> None:
    results = assess_units([Tally("a", "f", 0, 3), Tally("b", "f", 10, 10), Tally("c", "f", 10, 10),
                            Tally("z", "g", 0, 50), Tally("y", "g", 20, 20)], min_total=5)
    by = {r.unit: r for r in results}
    assert not by["a"].tested and "3 problems" in by["a"].reason
    assert not by["z"].tested and "1 comparable units" in by["z"].reason
    assert by["b"].tested and by["c"].tested


def test_benjamini_hochberg_matches_hand_computation_and_keeps_input_order() -> None:
    p = [0.04, 0.001, 0.03, 0.2, 0.011]
    # sorted: 0.001*5/1=0.005, 0.011*5/2=0.0275, 0.03*5/3=0.05, 0.04*5/4=0.05, 0.2*5/5=0.2; step-up minima
    assert benjamini_hochberg(p) == pytest.approx([0.05, 0.005, 0.05, 0.2, 0.0275])
    # monotone in p, never below p, capped at 1
    q = benjamini_hochberg([0.9, 0.8, 0.95])
    assert q == pytest.approx([0.95, 0.95, 0.95])
    assert benjamini_hochberg([]) == []


def test_benjamini_hochberg_step_up_rescues_a_p_value_above_its_own_threshold() -> None:
    """With m = 2, p = (0.06, 0.04) at q = 0.1: p_(1) = 0.04 <= 0.05 and p_(2) = 0.06 <= 0.1: both rejected."""
    assert benjamini_hochberg([0.06, 0.04]) == pytest.approx([0.06, 0.06])
    # 0 of 5 against a 1/3 ... 1/2 share: p = 0.5 ** 5 = 0.031, q = 0.094 <= 0.1 with three tests
    results = assess_units([Tally("a", "f", 0, 5), Tally("b", "f", 5, 5), Tally("c", "f", 5, 5)], fdr=0.1)
    assert [r.unit for r in flags(results)] == ["a"]


def test_fdr_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="fdr"):
        assess_units([], fdr=0)


def test_peers_that_vary_among_themselves_widen_what_counts_as_normal() -> None:
    """Peers reporting 20-60 % of what machines find: a unit at 20 % is within their spread (a plain binomial
    test would flag it: 40 of 240 where the median peer share predicts 69), a unit at 2 % is not."""
    shares = [0.2, 0.3, 0.4, 0.5, 0.6, 0.3, 0.4, 0.5]
    units = {f"u{i}": s for i, s in enumerate(shares)}
    units["mild"] = 0.2
    results = {r.unit: r for r in assess_units(tally(_history(units, problems=200)))}
    mild = results["mild"]
    assert not mild.flagged and "beta-binomial" in mild.reason
    assert binom.cdf(mild.people, mild.people + mild.machines, mild.reference_share) < 1e-3  # binomial would flag
    units["severe"] = 0.02
    results = {r.unit: r for r in assess_units(tally(_history(units, problems=200)))}
    assert results["severe"].flagged and not results["mild"].flagged
