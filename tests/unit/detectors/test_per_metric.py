"""Multi-metric devices: flatline, robust and dropout judge each metric on its own (shipped config).

A district replay found stuck air-quality monitors (pm2_5 and pm10 both frozen) and stuck drain level
sensors that also send their battery voltage: both were never reported, because the detectors took
every metric of a device as one series.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridsentinel.cases.categories import load_catalog
from gridsentinel.core.records import Detection, Reading
from gridsentinel.detectors.bank import DeviceDetectors
from gridsentinel.detectors.config import load_file
from gridsentinel.detectors.generic import DropoutDetector, FlatlineDetector, RobustDetector

pytestmark = pytest.mark.unit

SHIPPED = Path(__file__).resolve().parents[3] / "config" / "detectors.yaml"
CATEGORY_OF = load_catalog(SHIPPED.parent).category_of  # config/categories.yaml labels detections
CELL = "320582110152102"
T0 = 1_749_434_400.0  # pinned: Monday 2025-06-09 10:00 Asia/Shanghai


def _bank(device_id: str, kind: str, since: float | None = T0) -> DeviceDetectors:
    return DeviceDetectors(load_file(SHIPPED).settings_for(device_id, kind, CELL), CATEGORY_OF, since=since)


def _feed(bank: DeviceDetectors, rows: list[Reading], check_every: bool = False) -> list[Detection]:
    out: list[Detection] = []
    for r in rows:
        if check_every:
            out += bank.check(r.observed_at - 1.0)
        out += bank.update(r)
    return out


def _air(hours: float, pm2_5: float | None = 35.0, pm10: float | None = 61.0) -> list[Reading]:
    rows = []
    for i in range(int(hours * 12)):  # every 5 min, both channels
        t = T0 + 300.0 * i
        if pm2_5 is not None:
            rows.append(Reading("aq-1", "pm2_5", "ug/m3", pm2_5, t))
        if pm10 is not None:
            rows.append(Reading("aq-1", "pm10", "ug/m3", pm10, t + 1.0))
    return rows


def _drain(hours: float, level: float = 0.42) -> list[Reading]:
    rows = []
    for i in range(int(hours * 12)):
        t = T0 + 300.0 * i
        rows.append(Reading("drain-7", "water_level", "m", level, t))
        rows.append(Reading("drain-7", "battery", "V", round(3.61 - 0.0001 * (i % 7), 4), t + 2.0))
    return rows


def test_frozen_air_monitor_is_stuck_on_both_metrics() -> None:
    found = [d for d in _feed(_bank("aq-1", "air_quality"), _air(8)) if d.kind == "sensor_stuck"]
    assert sorted(d.evidence["metric"] for d in found) == ["pm10", "pm2_5"]
    assert len({d.detection_id for d in found}) == 2  # two incidents, not one replayed
    assert all(d.evidence["incident_started_at"] in (T0, T0 + 1.0) for d in found)
    assert {d.message for d in found} == {"pm2_5 stuck at 35 for 6.0 h", "pm10 stuck at 61 for 6.0 h"}


def test_drain_sensor_sending_its_battery_with_a_frozen_level_is_stuck() -> None:
    found = [d for d in _feed(_bank("drain-7", "drain_level"), _drain(13)) if d.kind == "sensor_stuck"]
    assert [d.evidence["metric"] for d in found] == ["water_level"]
    assert found[0].evidence["incident_started_at"] == T0


def test_a_steady_battery_is_not_a_stuck_sensor() -> None:
    rows = [r for i, r in enumerate(_drain(13)) if r.metric == "battery" or i % 4 == 0]
    moving = [Reading(r.device_id, r.metric, r.unit, r.value + 0.01 * (i % 5), r.observed_at)
              if r.metric == "water_level" else r for i, r in enumerate(rows)]
    assert [d for d in _feed(_bank("drain-7", "drain_level"), moving) if d.kind == "sensor_stuck"] == []


def test_rain_gauge_sending_its_battery_still_reports_heavy_rain() -> None:
    rows = []
    for i in range(6):
        t = T0 + 300.0 * i
        rows += [Reading("rain-3", "rain_rate", "mm/h", 56.0, t), Reading("rain-3", "battery", "V", 3.6, t + 1)]
    found = _feed(_bank("rain-3", "rain_gauge"), rows)
    assert [(d.kind, d.value) for d in found] == [("heavy_rain", 56.0)]


def test_outlier_is_scored_against_its_own_metric() -> None:
    rows = _air(3, pm2_5=None, pm10=None)
    for i in range(36):
        t = T0 + 300.0 * i
        pm2_5 = 30.0 + (i % 3) if i != 30 else 75.0  # a spike, still below the pm10 level
        rows += [Reading("aq-1", "pm2_5", "ug/m3", pm2_5, t), Reading("aq-1", "pm10", "ug/m3", 90.0 + i % 4, t)]
    found = [d for d in _feed(_bank("aq-1", "air_quality"), rows) if d.kind == "outlier"]
    assert [(d.evidence["metric"], d.value, d.severity) for d in found] == [("pm2_5", 75.0, "alarm")]


def test_level_that_stopped_is_offline_while_the_battery_reports() -> None:
    rows = [r for r in _drain(2) if r.metric == "battery" or r.observed_at < T0 + 1800.0]
    found = [d for d in _feed(_bank("drain-7", "drain_level"), rows, check_every=True)
             if d.kind == "device_offline"]
    assert [(d.evidence["metric"], d.evidence["silent_metrics"]) for d in found] == [
        ("water_level", ["water_level"])]
    assert found[0].message.startswith("no water_level reading for 3.")


def test_a_dead_pm10_channel_is_offline_and_clears_when_it_returns() -> None:
    rows = [r for r in _air(3) if r.metric == "pm2_5" or not T0 + 3600.0 <= r.observed_at < T0 + 7200.0]
    bank = _bank("aq-1", "air_quality")
    found = [d for d in _feed(bank, rows, check_every=True) if d.kind == "device_offline"]
    assert [d.evidence["metric"] for d in found] == ["pm10"]
    dropout = bank.detectors["dropout"]
    assert isinstance(dropout, DropoutDetector) and not dropout.policy.active  # pm10 is back


def test_flatline_and_robust_take_over_state_saved_before_metrics_were_separate() -> None:
    # the shape an earlier version stored: one scorer and one policy for the whole device
    old_flat = {"run": {"run_start": T0, "run_value": 0.42},
                "policy": FlatlineDetector().new_track().policy.state()}
    flat = FlatlineDetector(min_duration_s=3600.0)
    flat.restore(json.loads(json.dumps(old_flat)))
    out = [f for i in range(13) for f in flat.update(Reading("d", "water_level", "m", 0.42, T0 + 300.0 * i))
           .findings]
    assert [(f.phase, f.metric, f.started_at) for f in out] == [("open", "water_level", T0)]

    old_robust = RobustDetector(warmup=5).new_track()
    for i in range(20):
        old_robust.scorer.update(50.0 + i % 3)
    robust = RobustDetector(warmup=5)
    robust.restore(json.loads(json.dumps(old_robust.state())))
    assert robust.update(Reading("d", "pm2_5", "ug/m3", 90.0, T0)).findings[0].severity == "alarm"
    assert set(robust.state()["metrics"]) == {"pm2_5"}


def test_dropout_takes_over_state_saved_with_one_clock() -> None:
    old = {"silence": {"last_seen": T0, "since": T0 - 600.0},
           "policy": DropoutDetector().policy.state()}
    d = DropoutDetector(expected_interval_s=300.0, misses=3.0)
    d.restore(json.loads(json.dumps(old)))
    assert d.check(T0 + 600.0) == []
    assert [f.phase for f in d.check(T0 + 1000.0)] == ["open"]
    assert [f.phase for f in d.update(Reading("d", "water_level", "m", 1.0, T0 + 1100.0)).findings] == ["clear"]


def test_a_channel_sent_hourly_is_judged_by_its_own_cadence() -> None:
    rows = [Reading("drain-7", "water_level", "m", 0.4 + 0.01 * (i % 3), T0 + 300.0 * i) for i in range(96)]
    rows += [Reading("drain-7", "temperature", "Cel", 18.0, T0 + 3600.0 * h + 5.0) for h in range(5)]
    rows.sort(key=lambda r: r.observed_at)  # 8 h of levels; the hourly channel stops after 4 h
    found = [d for d in _feed(_bank("drain-7", "drain_level"), rows, check_every=True)
             if d.kind == "device_offline"]
    assert [d.evidence["metric"] for d in found] == ["temperature"]
    assert found[0].observed_at >= T0 + 4 * 3600.0 + 3 * 3600.0  # three of its own intervals, not 15 min
