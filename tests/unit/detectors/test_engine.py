"""DetectionEngine: event-time order within lateness, too-late readings, state round trips, rain routing,
dropout for silent devices, reconfiguration."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from shapely.geometry import box

from gridsentinel.cases.categories import load_catalog
from gridsentinel.core.devices import Device, DeviceKind, Location, Registry
from gridsentinel.core.grid import GridMap
from gridsentinel.core.records import Detection, Reading
from gridsentinel.detectors.config import DetectorConfig
from gridsentinel.detectors.engine import SKEW_S, DetectionEngine

pytestmark = pytest.mark.unit

CELL_A, CELL_B, CELL_FAR = "320582110152101", "320582110152102", "320582110152109"
# config/categories.yaml labels detections (the worker passes its catalog's category_of the same way)
CATEGORY_OF = load_catalog(Path(__file__).resolve().parents[3] / "config").category_of

CONFIG = {
    "version": "v1",
    "lateness_s": 120,
    "idle_flush_s": 5,
    "kinds": {
        "cover_tilt": {"metrics": ["tilt"],
                       "detectors": {"cover_tilt": {"alarm_deg": 10.0, "hold_s": 2.0, "cooldown_s": 600},
                                     "dropout": {"expected_interval_s": 3600, "misses": 3}}},
        "drain_level": {"metrics": ["water_level", "rain_rate"],
                        "detectors": {"drainage_level": {"depth_m": 3.0, "hold_samples": 2},
                                      "dropout": {"expected_interval_s": 300, "misses": 3}}},
        "rain_gauge": {"metrics": ["rain_rate"],
                       "detectors": {"threshold": {"enter": 50.0, "exit": 30.0, "kind": "heavy_rain"}}},
    },
}


def _grid() -> GridMap:
    # A and B share an edge; FAR is two cells away
    return GridMap({CELL_A: box(120.0, 31.0, 120.01, 31.01), CELL_B: box(120.01, 31.0, 120.02, 31.01),
                    CELL_FAR: box(120.05, 31.0, 120.06, 31.01)})


def _device(device_id: str, kind: DeviceKind, cell: str, interval: float = 60.0, **install: float) -> Device:
    return Device(id=device_id, kind=kind, location=Location(lat=31.005, lon=120.005), grid_code=cell,
                  expected_interval_s=interval, install=install)


def _registry() -> Registry:
    return Registry([_device("cover-1", "cover_tilt", CELL_A, 30.0),
                     _device("drain-1", "drain_level", CELL_A, 60.0, depth_m=2.0),
                     _device("rain-near", "rain_gauge", CELL_B),
                     _device("rain-far", "rain_gauge", CELL_FAR),
                     _device("cam-1", "camera", CELL_A)], _grid())


def _engine(skew_s: float = SKEW_S, **changes: object) -> DetectionEngine:
    return DetectionEngine(DetectorConfig.model_validate({**CONFIG, **changes}), _registry(), category_of=CATEGORY_OF,
                           skew_s=skew_s)


def _tilt(t: float, deg: float, seq: int) -> Reading:
    return Reading("cover-1", "tilt", "deg", deg, t, seq=seq)


def _tilt_incident() -> list[Reading]:
    """A cover knocked to 30°, then flipped past 90°, then set back, with calm readings around."""
    angles = [1, 1, 30, 30, 30, 30, 120, 120, 2, 1, 1, 1]
    return [_tilt(1000.0 + 20 * i, float(a), i) for i, a in enumerate(angles)]


def _ids(dets: list[Detection]) -> list[tuple[str, str, str]]:
    return [(d.detection_id, d.kind, d.severity) for d in dets]


def _run(engine: DetectionEngine, readings: list[Reading]) -> list[Detection]:
    out: list[Detection] = []
    for r in readings:
        out += engine.process(r, now=0.0)
    return out + engine.flush()


def test_incident_opens_and_escalates_once() -> None:
    found = _run(_engine(), _tilt_incident())
    assert [(d.kind, d.severity) for d in found] == [("cover_tilt", "alarm"), ("cover_tilt", "critical")]
    assert len({d.evidence["incident_started_at"] for d in found}) == 1
    assert all(d.device_id == "cover-1" and d.grid_code == CELL_A and d.detector_version == "v1"
               for d in found)


def test_out_of_order_within_lateness_gives_the_same_detections() -> None:
    in_order = _ids(_run(_engine(), _tilt_incident()))
    rng = random.Random(7)
    for _ in range(20):
        shuffled = _tilt_incident()
        # swap disjoint neighbours at random: each reading at most 20 s (< 120 s lateness) out of place
        for i in range(rng.randrange(2), len(shuffled) - 1, 2):
            if rng.random() < 0.5:
                shuffled[i], shuffled[i + 1] = shuffled[i + 1], shuffled[i]
        engine = _engine()
        assert _ids(_run(engine, shuffled)) == in_order
        assert engine.take_rejected() == []


def test_reading_older_than_watermark_minus_lateness_is_rejected_as_too_late() -> None:
    engine = _engine()
    readings = _tilt_incident()
    for r in readings:
        engine.process(r)
    late = _tilt(readings[-1].observed_at - 121.0 - 0.5, 45.0, 99)
    assert engine.process(late) == []
    rejected = engine.take_rejected()
    assert [(x.reason, x.reading) for x in rejected] == [("too_late", late)]
    assert engine.counts["too_late"] == 1 and engine.take_rejected() == []


def test_duplicate_reading_is_applied_once() -> None:
    readings = _tilt_incident()
    doubled = [r for pair in zip(readings, readings, strict=True) for r in pair]
    assert _ids(_run(_engine(), doubled)) == _ids(_run(_engine(), readings))


def test_state_round_trip_mid_incident_neither_re_alerts_nor_forgets() -> None:
    readings = _tilt_incident()
    whole = _ids(_run(_engine(), readings))
    for cut in range(1, len(readings)):
        first = _engine()
        out = [d for r in readings[:cut] for d in first.process(r, now=0.0)]
        state = json.loads(json.dumps(first.export_state("cover-1")))  # through JSON, like the table
        second = _engine()
        second.import_state("cover-1", state)
        out += _run(second, readings[cut:])
        assert _ids(out) == whole, f"cut at {cut}"


def test_idle_device_is_flushed_by_check() -> None:
    engine = _engine()
    assert engine.process(_tilt(1000.0, 120.0, 1), now=5000.0) == []  # held in the reorder buffer
    assert engine.check(5002.0, ["cover-1"]) == []  # not quiet long enough yet
    found = engine.check(5006.0, ["cover-1"])
    assert [(d.kind, d.severity) for d in found if d.kind == "cover_tilt"] == [("cover_tilt", "critical")]


def test_device_that_never_reported_goes_offline_with_the_registry_interval() -> None:
    engine = _engine()
    assert engine.check(10_000.0) == []  # first look: counting starts
    # cover-1 reports every 30 s per the registry (the kind's 3600 s is overridden): 3 misses = 90 s
    found = engine.check(10_100.0)
    assert [(d.device_id, d.kind) for d in found] == [("cover-1", "device_offline")]
    found = engine.check(10_200.0)
    assert ("drain-1", "device_offline") in [(d.device_id, d.kind) for d in found]
    assert "cam-1" not in {d.device_id for d in engine.check(20_000.0)}  # no detectors for cameras
    # offline once, not again on every tick
    assert [d for d in engine.check(30_000.0) if d.device_id == "cover-1"] == []


def test_check_only_the_devices_asked_for() -> None:
    engine = _engine()
    engine.check(0.0, ["drain-1"])
    assert {d.device_id for d in engine.check(10_000.0, ["drain-1"])} == {"drain-1"}


def _drain_rising(with_rain_from: str | None) -> list[Detection]:
    engine = _engine()
    out: list[Detection] = []
    if with_rain_from is not None:
        out += engine.process(Reading(with_rain_from, "rain_rate", "mm/h", 15.0, 900.0), now=0.0)
    # 2 m deep: 62 % full is under the dry warn level (80 %) but over the rain warn level (60 %)
    for i in range(4):
        out += engine.process(Reading("drain-1", "water_level", "m", 1.24, 1000.0 + 60 * i), now=0.0)
    out += engine.flush()
    return [d for d in out if d.device_id == "drain-1"]


def test_rain_in_a_neighbouring_cell_makes_the_drain_warn_earlier() -> None:
    assert _drain_rising(None) == []
    assert _drain_rising("rain-far") == []
    near = _drain_rising("rain-near")
    assert [(d.kind, d.severity) for d in near] == [("drain_overflow", "warning")]
    assert near[0].evidence["raining"] is True


def test_rain_shared_between_engines_reaches_the_drain() -> None:
    gauge_side, drain_side = _engine(), _engine()
    gauge_side.process(Reading("rain-near", "rain_rate", "mm/h", 15.0, 900.0))
    for cell in drain_side.rain_cells("drain-1"):
        drain_side.note_rain(cell, gauge_side.rain_for(cell))
    out: list[Detection] = []
    for i in range(4):
        out += drain_side.process(Reading("drain-1", "water_level", "m", 1.24, 1000.0 + 60 * i))
    out += drain_side.flush()
    assert [(d.kind, d.severity) for d in out] == [("drain_overflow", "warning")]
    assert drain_side.rain_cells("drain-1") == [CELL_A, CELL_B]


def test_rain_does_not_count_as_the_drain_reporting() -> None:
    engine = _engine()
    engine.check(0.0, ["drain-1"])
    for i in range(10):
        engine.process(Reading("rain-near", "rain_rate", "mm/h", 5.0, 100.0 * i), now=100.0 * i)
        engine.check(100.0 * i + 10, ["rain-near"])
    engine.process(Reading("drain-1", "water_level", "m", 0.1, 1000.0), now=1000.0)
    # the drain stayed silent for 1000 s (> 3 × 60 s): its own reading is what ends the silence
    found = [d for d in engine.check(1010.0, ["drain-1"]) if d.kind == "device_offline"]
    assert found == []
    assert engine.export_state("drain-1")["bank"]["detectors"]["dropout"]["last_seen"] == {"water_level": 1000.0}


def test_unknown_device_is_rejected() -> None:
    engine = _engine()
    r = Reading("ghost", "tilt", "deg", 1.0, 1.0)
    assert engine.process(r) == []
    assert [x.reason for x in engine.take_rejected()] == ["unknown_device"]


def test_reconfigure_keeps_state_of_unchanged_detectors() -> None:
    engine = _engine()
    readings = _tilt_incident()
    before = [d for r in readings[:6] for d in engine.process(r, now=0.0)] + engine.flush()
    assert [(d.kind, d.severity) for d in before] == [("cover_tilt", "alarm")]
    same = engine.reconfigure(DetectorConfig.model_validate(CONFIG), "v2")
    assert same == set()
    rest = _run(engine, readings[6:])
    # the incident continues: escalation only, stamped with the new version, no second open
    assert [(d.severity, d.detector_version) for d in rest] == [("critical", "v2")]

    changed_cfg = json.loads(json.dumps(CONFIG))
    changed_cfg["kinds"]["cover_tilt"]["detectors"]["cover_tilt"]["alarm_deg"] = 20.0
    assert engine.reconfigure(DetectorConfig.model_validate(changed_cfg), "v3") == {"cover-1"}
    assert engine.export_state("cover-1")["params"]["cover_tilt"]["alarm_deg"] == 20.0
    # the dropout detector kept its state (its settings did not change)
    assert engine.export_state("cover-1")["bank"]["detectors"]["dropout"]["last_seen"]


def test_import_state_drops_detectors_whose_settings_changed() -> None:
    engine = _engine()
    for r in _tilt_incident()[:6]:
        engine.process(r)
    engine.flush()
    state = engine.export_state("cover-1")
    changed_cfg = json.loads(json.dumps(CONFIG))
    changed_cfg["kinds"]["cover_tilt"]["detectors"]["cover_tilt"]["alarm_deg"] = 20.0
    other = DetectionEngine(DetectorConfig.model_validate(changed_cfg), _registry(), category_of=CATEGORY_OF)
    other.import_state("cover-1", state)
    assert other.export_state("cover-1")["bank"]["detectors"]["cover_tilt"]["last_t"] is None
    assert other.export_state("cover-1")["bank"]["detectors"]["dropout"]["last_seen"]


def test_same_input_same_output() -> None:
    readings = _tilt_incident()
    assert _ids(_run(_engine(), readings)) == _ids(_run(_engine(), readings))
    assert _engine().export_state("nobody") == {}


def test_buffered_readings_survive_the_state_round_trip_in_either_row_form() -> None:
    readings = _tilt_incident()
    whole = _ids(_run(_engine(), readings))
    first = _engine(skew_s=120.0)
    out = [d for r in readings[:4] for d in first.process(r, now=0.0)]  # all four held (skew 120 s)
    state = json.loads(json.dumps(first.export_state("cover-1")))
    assert len(state["buffer"]) == 4
    # the earlier form of a buffered reading, [arrived, reading dict], as older changelogs hold it
    older = {**state, "buffer": [[row[0], Reading("cover-1", *row[1:]).to_dict()] for row in state["buffer"]]}
    for saved in (state, older):
        second = _engine(skew_s=120.0)
        second.import_state("cover-1", saved)
        assert _ids(out + _run(second, readings[4:])) == whole


def test_the_engine_follows_registry_changes_new_moved_and_retired() -> None:
    from gridsentinel.core.device_feed import DeviceChange

    engine = _engine()
    registry = engine.registry
    # a device registered on the feed mid-run: its readings are taken, its silence is judged
    new = _device("drain-9", "drain_level", CELL_A, 60.0)
    assert engine.process(Reading("drain-9", "water_level", "m", 0.1, 1000.0), now=1000.0) == []
    assert [r.reason for r in engine.take_rejected()] == ["unknown_device"]
    registry.apply(DeviceChange(device=new, state="active", revision=1, changed_at=1000.0))
    engine.process(Reading("drain-9", "water_level", "m", 0.1, 1001.0), now=1001.0)
    engine.flush()
    assert engine.take_rejected() == []
    # moved to another cell: its detections carry the new grid code, its detectors keep their state
    registry.apply(DeviceChange(device=new.model_copy(update={"grid_code": CELL_B}), state="active", revision=2,
                                changed_at=1100.0))
    offline = [d for d in engine.check(2000.0) if d.kind == "device_offline" and d.device_id == "drain-9"]
    assert [d.grid_code for d in offline] == [CELL_B]
    # retired: no dropout/offline any more, and its readings are rejected
    registry.apply(DeviceChange(device=new, state="retired", revision=3, changed_at=2100.0))
    assert all(d.device_id != "drain-9" for d in engine.check(9000.0))
    assert all(d.device_id != "drain-9" for d in engine.check(9000.0, ["drain-9"]))
    assert not engine.known("drain-9")
