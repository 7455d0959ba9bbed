"""The detection stage without Faust: a batch's detections and device records, replays skipped by offset,
ticks judged on the partition's event time, rejected readings as dead letters."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from shapely.geometry import box

from gridsentinel.cases.categories import load_catalog
from gridsentinel.core.devices import Device, Location, Registry
from gridsentinel.core.grid import GridMap
from gridsentinel.core.records import Reading
from gridsentinel.detectors.config import DetectorConfig
from gridsentinel.detectors.engine import DetectionEngine
from gridsentinel.detectors.stage import DetectionProcessor, Event, tick_message

pytestmark = pytest.mark.unit

CELL = "320582110152101"
CONFIG = {
    "version": "v1",
    "lateness_s": 120,
    "idle_flush_s": 5,
    "kinds": {
        "cover_tilt": {"metrics": ["tilt"],
                       "detectors": {"cover_tilt": {"alarm_deg": 10.0, "hold_s": 2.0, "cooldown_s": 600},
                                     "dropout": {"expected_interval_s": 3600, "misses": 3}}},
    },
}
WALL = 2_000_000_000.0
# config/categories.yaml labels detections (the worker passes its catalog's category_of the same way)
CATEGORY_OF = load_catalog(Path(__file__).resolve().parents[3] / "config").category_of


def engine() -> DetectionEngine:
    grid = GridMap({CELL: box(120.0, 31.0, 120.01, 31.01)})
    cover = Device(id="cover-1", kind="cover_tilt", location=Location(lat=31.005, lon=120.005), grid_code=CELL,
                   expected_interval_s=30.0)
    return DetectionEngine(DetectorConfig.model_validate(CONFIG), Registry([cover], grid), category_of=CATEGORY_OF)


def readings(partition: int = 1) -> list[Event]:
    """A cover knocked to 30°, then flipped past 90°, then set back."""
    angles = [1, 1, 30, 30, 30, 30, 120, 120, 2, 1, 1, 1]
    return [Event(False, partition, i, Reading("cover-1", "tilt", "deg", float(a), 1000.0 + 20 * i, seq=i).to_json())
            for i, a in enumerate(angles)]


def processor(table: dict[str, Any], high: int | None = None) -> DetectionProcessor:
    return DetectionProcessor(engine(), 4, saved=table.get, shared_rain=lambda cell: None,
                              highwater=lambda p: high, wall=lambda: WALL)


def test_a_batch_gives_detections_and_one_record_per_touched_device_with_its_last_offset() -> None:
    proc = processor({}, high=12)
    done = proc.apply([*readings(), Event(True, 1, 0, tick_message(WALL + 10))])  # 10 s later: flushed, not silent
    assert [(d.kind, d.severity) for d in done.detections] == [("cover_tilt", "alarm"), ("cover_tilt", "critical")]
    partition, record = done.records["cover-1"]
    assert partition == 1 and record["offset"] == 11 and record["tick_offset"] == 0 and "engine" in record
    assert done.rain == {} and proc.counts["ticks"] == 1 and proc.caught_up(1)


def test_a_replayed_batch_is_skipped_by_the_saved_offset_and_gives_no_second_incident() -> None:
    first = processor({})
    done = first.apply(readings())
    table = {d: json.loads(json.dumps(record)) for d, (_, record) in done.records.items()}  # as the table
    again = processor(table)
    replay = again.apply(readings())
    assert replay.detections == [] and replay.records == {}
    assert again.counts["replayed_skipped"] == 12


def test_a_tick_before_any_event_time_waits_and_a_bad_record_is_counted() -> None:
    proc = processor({})
    done = proc.apply([Event(True, 2, 0, tick_message(WALL)), Event(False, 2, 0, b"{not json")])
    assert done.detections == [] and done.records == {}
    assert proc.counts["ticks_waiting"] == 1 and proc.counts["bad_records"] == 1


def test_caught_up_uses_the_consumer_position_until_a_reading_is_read() -> None:
    positions = {3: 7}
    proc = DetectionProcessor(engine(), 4, saved=lambda d: None, shared_rain=lambda c: None,
                              highwater=lambda p: 7, read_position=positions.get)
    assert proc.caught_up(3) and not proc.caught_up(0)  # partition 0: position unknown


def test_a_rejected_reading_becomes_a_dead_letter_keyed_by_its_device() -> None:
    proc = processor({})
    proc.apply([Event(False, 0, 5, Reading("ghost", "tilt", "deg", 1.0, 1.0).to_json())])
    [(letter, key)] = proc.dead_letters("t.gs.readings")
    assert (letter.reason, letter.origin, letter.device_id, key) == ("unknown_device", "t.gs.readings", "ghost",
                                                                    b"ghost")
    assert proc.dead_letters("t.gs.readings") == []
