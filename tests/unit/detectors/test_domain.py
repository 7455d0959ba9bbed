from __future__ import annotations

import pytest

from gridsentinel.core.records import Reading
from gridsentinel.detectors.air_quality import BREAKPOINTS, iaqi
from gridsentinel.detectors.detection import detection_id, to_detection
from gridsentinel.detectors.drainage import DrainageLevelDetector
from gridsentinel.detectors.generic import DropoutDetector
from gridsentinel.detectors.noise import NoiseDetector
from gridsentinel.detectors.tilt import CoverTiltDetector

pytestmark = pytest.mark.unit


def r(metric: str, value: float, t: float) -> Reading:
    return Reading("dev", metric, "", value, t)


def test_iaqi_breakpoints_hj633_2012() -> None:
    pm25 = BREAKPOINTS["HJ 633-2012"]["pm2_5"]
    assert [iaqi(c, pm25) for c in (0, 35, 75, 115, 150, 250, 350, 500)] == [
        0, 50, 100, 150, 200, 300, 400, 500]
    assert iaqi(100, BREAKPOINTS["HJ 633-2012"]["pm10"]) == 75


def test_tilt_over_90_is_critical_without_hold() -> None:
    d = CoverTiltDetector(alarm_deg=15, hold_s=2)
    out = d.update(r("tilt", 120.0, 0.0)).findings
    assert [(f.phase, f.severity) for f in out] == [("open", "critical")]


def test_tilt_traffic_does_not_alarm() -> None:
    d = CoverTiltDetector(alarm_deg=15, hold_s=2)
    out = [f for i in range(50) for f in d.update(r("tilt", 20.0 if i % 3 == 0 else 0.5, i * 1.0)).findings]
    assert out == []


def test_dropout_of_a_device_that_never_reported() -> None:
    d = DropoutDetector(expected_interval_s=300, misses=3, since=None)
    assert d.check(1000.0) == []             # first look: start counting
    assert d.check(1800.0) == []
    out = d.check(1000.0 + 901)
    assert [(f.kind, f.phase, f.started_at) for f in out] == [("device_offline", "open", 1901.0)]
    assert d.check(5000.0) == []             # still one incident


def test_drainage_dry_weather_high_level_is_a_suspected_blockage() -> None:
    d = DrainageLevelDetector(depth_m=3.0, dry_hold_s=1800)
    kinds = [f.kind for i in range(12) for f in d.update(r("water_level", 1.8, i * 300.0)).findings]
    assert kinds == ["drain_blockage_suspected"]


def test_drainage_rain_lowers_the_warning_level() -> None:
    dry = DrainageLevelDetector(depth_m=3.0, dry_high_fill=0.99)
    wet = DrainageLevelDetector(depth_m=3.0, dry_high_fill=0.99)
    wet.update(r("rain_rate", 20.0, 0.0))
    levels = [1.9, 1.9, 1.9]  # 63 % full, steady
    assert not [f for i, v in enumerate(levels) for f in dry.update(r("water_level", v, 60.0 * i)).findings]
    assert [f.severity for i, v in enumerate(levels)
            for f in wet.update(r("water_level", v, 60.0 * i)).findings] == ["warning"]


def test_noise_day_and_night_limits() -> None:
    d = NoiseDetector(zone_class="4a", utc_offset_s=0)
    assert d.limit(12 * 3600.0) == 70 and d.limit(23 * 3600.0) == 55 and d.limit(5 * 3600.0) == 55
    assert d.limit(23 * 3600.0, "lmax") == 70


def test_detection_id_is_deterministic_and_distinguishes_incidents() -> None:
    a = detection_id("d", "x", "k", 10.0, "alarm")
    assert a == detection_id("d", "x", "k", 10.0, "alarm")
    assert a != detection_id("d", "x", "k", 11.0, "alarm")
    assert a != detection_id("d", "x", "k", 10.0, "critical")


def test_clear_is_not_a_detection() -> None:
    d = CoverTiltDetector(hold_s=0, cooldown_s=0)
    d.update(r("tilt", 30.0, 0.0))
    clear = d.update(r("tilt", 0.0, 1000.0)).findings[0]
    assert clear.phase == "clear"
    with pytest.raises(ValueError):
        to_detection(clear, device_id="d", detector="cover_tilt", detector_version="1", grid_code="1",
                     category_code="0103", category_standard="s")
