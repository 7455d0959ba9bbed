"""The simulated district is normal at every hour: what opens a case is what the script planted.

The shipped detectors (config/detectors.yaml, config/devices.yaml) run on the simulator's readings as the
gateway decodes them, with the dropout timer ticking on event time, for windows pinned at explicit
start times (never the wall clock): the night limit of GB 3096-2008 starts at 22:00 and ends at 06:00.
"""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest

from gridsentinel.cases.categories import load_catalog
from gridsentinel.core.devices import Registry
from gridsentinel.core.records import Detection
from gridsentinel.detectors.config import load_file
from gridsentinel.detectors.engine import DetectionEngine
from gridsentinel.detectors.noise import NoiseDetector
from gridsentinel.gateway.decode import Limits, decode_telemetry
from gridsentinel.settings import REPO_ROOT
from gridsentinel.simulator.publisher import telemetry_payload
from gridsentinel.simulator.scenario import Scenario, build_scenario

pytestmark = pytest.mark.unit
CONFIG = REPO_ROOT / "config"
TZ = ZoneInfo("Asia/Shanghai")


def shanghai(hour: int, minute: int = 0) -> float:
    return datetime(2026, 3, 2, hour, minute, tzinfo=TZ).timestamp()  # a Monday


def detect(scenario: Scenario, window_start: float) -> list[Detection]:
    """Every detection the shipped sensor detectors make of the script's telemetry (event time throughout,
    ``check`` run after each reading as the stage's timer would)."""
    engine = DetectionEngine(load_file(CONFIG / "detectors.yaml"), Registry.load(CONFIG),
                             category_of=load_catalog(CONFIG).category_of)
    devices = {d.id: d for d in scenario.devices}
    out: list[Detection] = []
    for seq, m in enumerate(scenario.messages):
        if m.type != "telemetry":
            continue
        ts = window_start + m.at
        body, ctype = telemetry_payload(devices[m.device_id], ts, seq, m.metrics)
        readings = decode_telemetry(m.device_id, body, ts, Limits(), ctype)
        assert isinstance(readings, list), readings
        for r in readings:
            out += engine.process(r, now=ts)
        out += engine.check(ts)
    return out + engine.flush()


@pytest.mark.parametrize("hour", [1, 5, 9, 13, 17, 21])
def test_the_script_opens_only_its_incidents_whatever_the_start_hour(hour: int) -> None:
    start = shanghai(hour, 40)  # 6.5 h windows: from 17:40 and 21:40 they cross 22:00, from 01:40 06:00
    scenario = build_scenario(CONFIG, seed=3, window_start=start)
    planted = {(i.device_id, i.detection_kind) for i in scenario.incidents}
    unplanned = sorted({f"{d.device_id} {d.kind}: {d.message}" for d in detect(scenario, start)
                        if (d.device_id, d.kind) not in planted})
    assert not unplanned


def test_normal_signals_fire_no_detector_around_the_clock() -> None:
    start = shanghai(0)
    scenario = build_scenario(CONFIG, seed=4, duration_s=26 * 3600.0, window_start=start, incidents=False)
    assert scenario.incidents == () and scenario.scenes == ()
    hours = {datetime.fromtimestamp(start + m.at, TZ).hour for m in scenario.messages if m.type == "telemetry"}
    assert hours == set(range(24))
    assert {m.type for m in scenario.messages} == {"online", "telemetry", "frame"}  # nobody drops off
    assert [f"{d.device_id} {d.kind}: {d.message}" for d in detect(scenario, start)] == []


def test_street_noise_stays_under_the_zone_limit_by_day_and_by_night() -> None:
    start = shanghai(0)
    scenario = build_scenario(CONFIG, seed=4, duration_s=24 * 3600.0, window_start=start, incidents=False)
    limit = NoiseDetector(zone_class="2").limit  # the shipped monitors' zone class
    noise = [(start + m.at, v) for m in scenario.messages for n, v in m.metrics if n == "laeq"]
    assert len(noise) > 2 * 24 * 50
    assert max(v - limit(t) for t, v in noise) < 0  # not one reading over, let alone 15 minutes
    night = [v for t, v in noise if not 6 <= datetime.fromtimestamp(t, TZ).hour < 22]
    day = [v for t, v in noise if 6 <= datetime.fromtimestamp(t, TZ).hour < 22]
    assert max(night) < 50 - 3 and sum(day) / len(day) > sum(night) / len(night) + 5  # quiet nights, busy days


def test_a_stuck_monitor_is_frozen_at_a_level_normal_at_night() -> None:
    start = shanghai(11, 50)  # stuck at noon, at the daytime peak; still flat when the night limit starts
    scenario = build_scenario(CONFIG, seed=3, window_start=start, duration_s=12 * 3600.0)
    stuck = next(i for i in scenario.incidents if i.kind == "sensor_stuck")
    values = {v for m in scenario.messages if m.device_id == stuck.device_id and m.at >= stuck.start
              for _, v in m.metrics}
    assert len(values) == 1 and values.pop() < 50 - 3
