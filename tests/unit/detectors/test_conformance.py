"""The shared suite every registered detector must pass (style.md, "Detectors")."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from gridsentinel.core.records import Reading
from gridsentinel.detectors.base import Detector, Outcome
from gridsentinel.detectors.registry import DETECTORS, create

pytestmark = pytest.mark.unit

T0 = 1_700_000_000.0


@dataclass
class Scenario:
    """A normal stream and the same stream with an anomaly planted in rows [start, end)."""

    params: dict[str, Any]
    metric: str
    unit: str
    normal: Callable[[int, random.Random], float]
    planted: Callable[[int, float], float]
    start: int = 200
    end: int = 230
    rows: int = 300
    dt: float = 60.0
    gap_after: float | None = None  # for dropout: readings stop for a while at `start`
    extra: dict[str, Any] = field(default_factory=dict)

    def readings(self, anomalous: bool) -> list[Reading]:
        rng = random.Random(7)
        out, t = [], T0
        for i in range(self.rows):
            v = self.normal(i, rng)
            if anomalous and self.start <= i < self.end:
                v = self.planted(i, v)
            if anomalous and self.gap_after is not None and i == self.start:
                t += self.gap_after
            out.append(Reading("dev-1", self.metric, self.unit, v, t))
            t += self.dt
        return out


def _noisy(base: float, amp: float) -> Callable[[int, random.Random], float]:
    return lambda i, rng: base + amp * math.sin(i / 7.0) + rng.uniform(-amp, amp) * 0.3


SCENARIOS: dict[str, Scenario] = {
    "threshold": Scenario({"enter": 10.0, "exit": 8.0, "hold_s": 120.0}, "water_level", "m",
                          _noisy(5.0, 1.0), lambda i, v: 14.0),
    "rate_of_change": Scenario({"max_rate": 0.05, "window_s": 300.0}, "water_level", "m",
                               _noisy(1.0, 0.002), lambda i, v: v + 0.1 * (i - 199)),
    "robust": Scenario({"warmup": 20}, "pm2_5", "ug/m3", _noisy(40.0, 3.0), lambda i, v: v + 60.0),
    "seasonal": Scenario({"slot_s": 3600.0, "warmup": 3, "min_scale": 1.0}, "laeq", "dB",
                         lambda i, rng: 45.0 + 15.0 * ((i % 24) in range(8, 20)) + rng.uniform(-1, 1),
                         lambda i, v: 75.0, start=243, end=246, rows=280, dt=3600.0),
    "flatline": Scenario({"min_duration_s": 3600.0}, "water_level", "m", _noisy(1.0, 0.05),
                         lambda i, v: 0.777, start=150, end=290),
    "dropout": Scenario({"expected_interval_s": 60.0, "misses": 3.0}, "water_level", "m",
                        _noisy(1.0, 0.05), lambda i, v: v, start=200, end=201, gap_after=1800.0),
    "forecast": Scenario({"level": 3.0, "horizon_s": 1800.0}, "water_level", "m", _noisy(1.0, 0.01),
                         lambda i, v: v + 0.06 * (i - 199)),
    "novelty": Scenario({"lo": 0.0, "hi": 40.0}, "value", "", _noisy(10.0, 2.0), lambda i, v: 30.0,
                        start=250, end=252),
    "ensemble": Scenario({"lo": 0.0, "hi": 40.0}, "value", "", _noisy(10.0, 2.0), lambda i, v: 30.0,
                         start=250, end=252),
    "likelihood": Scenario({"lo": 0.0, "hi": 40.0}, "value", "", _noisy(10.0, 2.0), lambda i, v: 30.0,
                           start=250, end=252),
    "drainage_level": Scenario({"depth_m": 3.0}, "water_level", "m", _noisy(0.8, 0.05),
                               lambda i, v: 2.9),
    "cover_tilt": Scenario({}, "tilt", "deg", _noisy(1.0, 0.5), lambda i, v: 45.0, dt=1.0),
    "air_quality": Scenario({"averaging_s": 3600.0, "hold_s": 0.0}, "pm2_5", "ug/m3", _noisy(30.0, 5.0),
                            lambda i, v: 400.0),
    "noise": Scenario({"zone_class": "2", "utc_offset_s": 0.0}, "laeq", "dB", _noisy(40.0, 2.0),
                      lambda i, v: 85.0, start=100, end=200),
}

NAMES = sorted(DETECTORS)


def _run(det: Detector, readings: list[Reading]) -> list[Outcome]:
    out = []
    for r in readings:
        before = tuple(det.check(r.observed_at - 1.0))  # time passes until just before the reading
        o = det.update(r)
        out.append(Outcome(o.score, before + o.findings))
    return out


def test_every_registered_detector_has_a_scenario() -> None:
    assert set(SCENARIOS) == set(DETECTORS)


@pytest.mark.parametrize("name", NAMES)
def test_docstring_has_an_example(name: str) -> None:
    assert ">>>" in (DETECTORS[name].__doc__ or ""), f"{name} needs a doctest showing it firing"


@pytest.mark.parametrize("name", NAMES)
def test_scores_are_finite_and_non_negative(name: str) -> None:
    sc = SCENARIOS[name]
    for anomalous in (False, True):
        for o in _run(create(name, **sc.params), sc.readings(anomalous)):
            assert math.isfinite(o.score) and o.score >= 0.0


@pytest.mark.parametrize("name", NAMES)
def test_state_survives_json_round_trip_mid_stream(name: str) -> None:
    sc = SCENARIOS[name]
    readings = sc.readings(True)
    whole = _run(create(name, **sc.params), readings)
    for cut in (sc.start - 5, sc.start + 3):
        first = create(name, **sc.params)
        _run(first, readings[:cut])
        saved = json.loads(json.dumps(first.state(), allow_nan=False))
        second = create(name, **sc.params)
        second.restore(saved)
        assert _run(second, readings[cut:]) == whole[cut:]


@pytest.mark.parametrize("name", NAMES)
def test_planted_anomaly_outscores_the_baseline(name: str) -> None:
    sc = SCENARIOS[name]
    normal = _run(create(name, **sc.params), sc.readings(False))
    planted = _run(create(name, **sc.params), sc.readings(True))
    baseline_max = max(o.score for o in normal[sc.start // 2:])
    planted_max = max(o.score for o in planted[sc.start:sc.end + 5])
    assert planted_max > baseline_max


@pytest.mark.parametrize("name", NAMES)
def test_planted_anomaly_opens_an_incident_and_normal_does_not(name: str) -> None:
    sc = SCENARIOS[name]
    normal = _run(create(name, **sc.params), sc.readings(False))
    planted = _run(create(name, **sc.params), sc.readings(True))
    assert not [f for o in normal[sc.start // 2:] for f in o.findings if f.phase == "open"]
    assert [f for o in planted[sc.start:sc.end + 5] for f in o.findings if f.phase == "open"]


@pytest.mark.parametrize("name", NAMES)
def test_emits_only_the_kinds_it_declares(name: str) -> None:
    sc = SCENARIOS[name]
    declared = set(create(name, **sc.params).kinds)
    emitted = {f.kind for anomalous in (False, True)
               for o in _run(create(name, **sc.params), sc.readings(anomalous)) for f in o.findings}
    assert declared and emitted and emitted <= declared


def test_a_configured_kind_is_declared() -> None:
    assert create("threshold", enter=50.0, exit=30.0, kind="heavy_rain").kinds == ("heavy_rain",)
    assert create("flatline", kind="level_stuck").kinds == ("level_stuck",)
