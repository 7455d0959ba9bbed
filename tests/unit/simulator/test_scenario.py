"""The simulator's script: deterministic, realistic and consistent with its ground truth."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gridsentinel.core.metrics import METRICS
from gridsentinel.errors import ConfigError
from gridsentinel.gateway.decode import Limits, decode_telemetry
from gridsentinel.settings import REPO_ROOT
from gridsentinel.simulator.clock import SimClock
from gridsentinel.simulator.command import ground_truth
from gridsentinel.simulator.footage import render
from gridsentinel.simulator.publisher import telemetry_payload
from gridsentinel.simulator.scenario import build_scenario, min_duration_s

from ...conftest import decode_image

pytestmark = pytest.mark.unit
CONFIG = REPO_ROOT / "config"
START = 1_767_225_600.0  # 2026-01-01 08:00 local


@pytest.fixture(scope="module")
def scenario():
    return build_scenario(CONFIG, seed=5, window_start=START)


def _cell_corners() -> dict[str, set[tuple[float, float]]]:
    grid = json.loads((CONFIG / "grid.geojson").read_text())
    return {f["properties"]["code"]: {tuple(p) for p in f["geometry"]["coordinates"][0]}
            for f in grid["features"]}


def test_same_seed_same_script_other_seed_other_noise(scenario) -> None:
    assert build_scenario(CONFIG, seed=5, window_start=START) == scenario
    other = build_scenario(CONFIG, seed=6, window_start=START)
    assert other.messages != scenario.messages
    assert [i.kind for i in other.incidents] == [i.kind for i in scenario.incidents]


def test_every_incident_kind_with_its_category(scenario) -> None:
    got = {(i.kind, i.category) for i in scenario.incidents}
    assert got == {("drain_overflow", "component:0103"), ("cover_lifted", "component:0102"),
                   ("sensor_stuck", "event:L007"), ("device_offline", "event:L007"),
                   ("camera_covered", "event:L006"), ("left_object", "event:0103")}
    keys = [(i.grid_code, i.category) for i in scenario.incidents]
    assert len(keys) == len(set(keys))  # one case per incident is possible: no two share cell and category
    assert all(len(i.grid_code) == 15 and i.grid_code.isdigit() for i in scenario.incidents)
    assert all(0 <= i.start < i.end <= scenario.duration_s for i in scenario.incidents)


def test_storm_fills_drains_in_neighbouring_cells(scenario) -> None:
    drains = [i for i in scenario.incidents if i.kind == "drain_overflow"]
    assert len(drains) >= 3
    corners = _cell_corners()
    cells = [i.grid_code for i in drains]
    for c in cells:  # each storm cell touches another storm cell
        assert any(len(corners[c] & corners[o]) >= 2 for o in cells if o != c)
    for inc in drains:
        levels = [(m.at, m.metrics[0][1]) for m in scenario.messages
                  if m.device_id == inc.device_id and m.type == "telemetry"]
        rim_at = next(t for t, v in levels if v >= 0.98 * max(v for _, v in levels))
        low_at = max(t for t, v in levels if t < rim_at and v <= 0.25 * max(v for _, v in levels))
        assert 10 * 60 <= rim_at - low_at <= 60 * 60
    others = [m for m in scenario.messages if m.type == "telemetry" and m.metrics[0][0] == "water_level"
              and m.device_id not in {i.device_id for i in drains}]
    assert max(m.metrics[0][1] for m in others) < 0.45 * 2.5  # the rest stay well under any warning


def test_signals_are_plausible_and_diurnal(scenario) -> None:
    for m in scenario.messages:
        for name, value in m.metrics:
            assert METRICS[name].lo <= value <= METRICS[name].hi
    rain = [v for m in scenario.messages for n, v in m.metrics if n == "rain_rate"]
    assert 0 < max(rain) < 50  # a storm, under the gauges' heavy-rain threshold
    noise = [(m.at, v) for m in scenario.messages if m.device_id == "noise-001" for _, v in m.metrics]
    assert max(v for _, v in noise) < 60 and max(v for _, v in noise) - min(v for _, v in noise) > 4


def test_stuck_sensor_flat_offline_device_silent(scenario) -> None:
    stuck = next(i for i in scenario.incidents if i.kind == "sensor_stuck")
    values = {v for m in scenario.messages if m.device_id == stuck.device_id and m.at >= stuck.start
              for _, v in m.metrics}
    assert len(values) == 1
    off = next(i for i in scenario.incidents if i.kind == "device_offline")
    after = [m for m in scenario.messages if m.device_id == off.device_id and m.at > off.start]
    assert [m.type for m in after] == ["offline"]


def test_camera_scenes_stream_frames_with_the_incident_drawn(scenario) -> None:
    covered = next(i for i in scenario.incidents if i.kind == "camera_covered")
    frames = [m for m in scenario.messages if m.device_id == covered.device_id and m.type == "frame"
              and covered.start - 30 <= m.at <= covered.end]
    assert len(frames) > 100 and {m.frame[1] for m in frames} == {"", "covered"}
    normal = decode_image(render(3, ""), grayscale=True)
    dark = decode_image(render(3, "covered"), grayscale=True)
    boxed = decode_image(render(3, "object"), grayscale=True)
    assert dark.mean() < 0.3 * normal.mean() and dark.std() < 0.2 * normal.std()
    changed = np.abs(boxed.astype(int) - normal.astype(int)) > 20
    assert 0.005 < changed.mean() < 0.05  # a box of about 1 % of the view


def test_payloads_decode_at_the_gateway(scenario) -> None:
    devices = {d.id: d for d in scenario.devices}
    clock = SimClock(scenario.duration_s, 60, [(s.start, s.end) for s in scenario.scenes], 2, START)
    seen = set()
    for m in scenario.messages:
        if m.type != "telemetry" or m.device_id in seen:
            continue
        seen.add(m.device_id)
        body, ctype = telemetry_payload(devices[m.device_id], clock.event_time(m.at), 1, m.metrics)
        readings = decode_telemetry(m.device_id, body, clock.real_at(m.at), Limits(), ctype)
        assert isinstance(readings, list), readings
        assert {r.metric for r in readings} == {n for n, _ in m.metrics}


def test_window_ends_at_now_and_never_runs_ahead(scenario) -> None:
    clock = SimClock(scenario.duration_s, 120, [(s.start, s.end) for s in scenario.scenes], 2, START)
    for m in scenario.messages[:: max(1, len(scenario.messages) // 500)]:
        assert clock.event_time(m.at) <= clock.real_at(m.at) + 1e-6
    assert clock.event_time(scenario.duration_s) == pytest.approx(clock.real_at(scenario.duration_s))
    assert START - clock.window_start < 7 * 86400  # the oldest event is inside the gateway's window
    truth = ground_truth(scenario, clock, 120)
    assert all(i["expected_delay_s"] > 0 and i["start"] >= clock.window_start for i in truth["incidents"])


def test_a_window_too_short_for_the_script_is_refused() -> None:
    with pytest.raises(ConfigError, match="too short"):
        build_scenario(CONFIG, seed=1, duration_s=min_duration_s(CONFIG) - 60)


def test_id_prefix_runs_a_private_copy(tmp_path: Path) -> None:
    import shutil

    import yaml

    cfg = tmp_path / "config"
    shutil.copytree(CONFIG, cfg)
    data = yaml.safe_load((cfg / "devices.yaml").read_text())
    for d in data["devices"]:
        d["id"] = "t1-" + d["id"]
    (cfg / "devices.yaml").write_text(yaml.safe_dump(data))
    s = build_scenario(cfg, seed=5, window_start=START, id_prefix="t1-")
    assert all(m.device_id.startswith("t1-") for m in s.messages)
    assert all(i.device_id.startswith("t1-") for i in s.incidents)


def test_a_pinned_window_plays_in_the_past_inside_the_gateway_limits(scenario) -> None:
    from gridsentinel.gateway.decode import check_time
    from gridsentinel.simulator.clock import parse_start

    now = START + 10 * 3600.0  # 2026-01-01 18:00 local: the latest 21:40 with a window before it is the 31st
    start = parse_start("21:40", scenario.duration_s, now)
    assert now - 86400 < start + scenario.duration_s <= now
    clock = SimClock(scenario.duration_s, 240, [(s.start, s.end) for s in scenario.scenes], 2, now, start)
    assert clock.window_start == start
    for m in scenario.messages[:: max(1, len(scenario.messages) // 500)]:
        assert check_time(clock.event_time(m.at), clock.real_at(m.at), Limits()) is None


def test_a_pinned_window_ahead_of_the_clock_or_too_old_is_refused() -> None:
    with pytest.raises(ValueError, match="ahead of the wall clock"):
        SimClock(3600.0, 60, real_start=START, window_start=START - 3000.0)
    with pytest.raises(ValueError, match="older than 7 days"):
        SimClock(3600.0, 60, real_start=START, window_start=START - 7 * 86400.0)
