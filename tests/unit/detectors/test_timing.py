"""Event time for the detect stage: watermark release (a busy device's alarm does not wait for the
reorder window), the partition clock ticks are applied on (a backlog never looks like silence, a silent
device is still found), never-heard devices timed on event time, and the detections counter."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from gridsentinel.cases.categories import load_catalog
from gridsentinel.core.devices import Device, Location, Registry
from gridsentinel.core.records import Detection, Reading
from gridsentinel.detectors.config import DetectorConfig
from gridsentinel.detectors.engine import DetectionEngine, PartitionClock

pytestmark = pytest.mark.unit

CELL = "320582110152101"
WALL0 = 1_767_225_600.0  # 2026-01-01 00:00 UTC: every time here is pinned, none read from the clock
# config/categories.yaml labels detections (the worker passes its catalog's category_of the same way)
CATEGORY_OF = load_catalog(Path(__file__).resolve().parents[3] / "config").category_of
CONFIG = {
    "version": "v1",
    "lateness_s": 120,
    "idle_flush_s": 5,
    "kinds": {"cover_tilt": {"metrics": ["tilt"],
                             "detectors": {"cover_tilt": {"alarm_deg": 10.0, "hold_s": 2.0, "cooldown_s": 600},
                                           "dropout": {"expected_interval_s": 60, "misses": 3}}}},
}


def _registry(*ids: str) -> Registry:
    return Registry([Device(id=d, kind="cover_tilt", location=Location(lat=31.005, lon=120.005), grid_code=CELL,
                            expected_interval_s=60.0) for d in ids])


def _engine(*ids: str) -> DetectionEngine:
    return DetectionEngine(DetectorConfig.model_validate(CONFIG), _registry(*ids), category_of=CATEGORY_OF)


def _tilt(device: str, t: float, deg: float, seq: int) -> Reading:
    return Reading(device, "tilt", "deg", deg, t, seq=seq)


def _offline(found: list[Detection]) -> list[Detection]:
    return [d for d in found if d.kind == "device_offline"]


# -- watermark release ----------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", range(5))
def test_a_busy_cover_s_tilt_is_released_within_five_seconds_of_event_time(seed: int) -> None:
    """A cover reporting every 2-5 s is never quiet for the idle flush: its readings must be released by
    the watermark, not after the whole reorder window (lateness 120 s)."""
    rng = random.Random(seed)
    engine = _engine("cover-1")
    t, lifted_at, released_at = 1000.0, None, None
    for seq in range(100):
        deg = 95.0 if seq >= 40 else 1.0
        lifted_at = t if seq == 40 else lifted_at
        found = engine.process(_tilt("cover-1", t, deg, seq), now=t)
        if any(d.kind == "cover_tilt" and d.severity == "critical" for d in found):
            released_at = t
            break
        t += rng.uniform(2.0, 5.0)
    assert lifted_at is not None and released_at is not None
    assert released_at - lifted_at <= 5.0
    assert engine.take_rejected() == []


def test_reading_older_than_what_the_device_released_is_too_late_and_a_redelivery_is_applied_once() -> None:
    engine = _engine("cover-1")
    readings = [_tilt("cover-1", 1000.0 + 3 * i, 1.0, i) for i in range(5)]
    for r in readings:
        engine.process(r, now=r.observed_at)
    assert engine.counts["released"] == 4  # the newest is within the 2 s skew of itself
    # 4 s out of place but within lateness: its successor was released, it cannot be put in order
    late = _tilt("cover-1", 1008.0, 45.0, 99)
    assert engine.process(late, now=1013.0) == []
    assert [(x.reason, x.reading) for x in engine.take_rejected()] == [("too_late", late)]
    # a redelivery of the reading released last is neither applied again nor dead-lettered
    engine.process(readings[3], now=1013.0)
    assert engine.take_rejected() == [] and engine.counts["released"] == 4


def test_idle_flushed_detections_are_counted_once() -> None:
    engine = _engine("cover-1")
    assert engine.process(_tilt("cover-1", 1000.0, 120.0, 1), now=1000.0) == []  # held by the watermark
    found = engine.check(1010.0, ["cover-1"])  # quiet for 10 s: flushed
    assert [(d.kind, d.severity) for d in found] == [("cover_tilt", "critical")]
    offline = engine.check(1300.0, ["cover-1"])  # silent for 5 intervals of 60 s
    assert [d.kind for d in offline] == ["device_offline"]
    assert engine.counts["detections"] == len(found) + len(offline) == 2


# -- the partition clock ticks are applied on -------------------------------------------------------------

class Partition:
    """One readings partition driven like the stage drives it: readings read at some wall speed, ticks
    made every 2 s of wall time and applied (perhaps much later) on the partition's clock."""

    def __init__(self, engine: DetectionEngine, devices: list[str]) -> None:
        self.engine, self.devices, self.clock = engine, devices, PartitionClock()
        self.found: list[Detection] = []

    def read(self, reading: Reading, wall: float) -> None:
        self.clock.observe(0, reading.observed_at, wall)
        self.found += self.engine.process(reading, now=self.clock.arrival(0, wall))

    def tick(self, made: float, caught_up: bool) -> float | None:
        now = self.clock.now(0, made, caught_up, lag=self.engine.config.lateness_s)
        if now is not None:
            self.found += self.engine.check(now, self.devices)
        return now


def _backlog(devices: list[str], start: float, hours: float, stop: dict[str, float]) -> list[Reading]:
    """Every device every 60 s from ``start``, interleaved in event order; ``stop``: a device's last."""
    out = []
    for i in range(int(hours * 60)):
        t = start + 60.0 * i
        out += [_tilt(d, t + j, 1.0, i) for j, d in enumerate(devices) if t <= stop.get(d, float("inf"))]
    return out


def test_a_backlog_of_hours_read_at_high_speed_gives_no_dropout_but_finds_the_silent_device() -> None:
    devices = ["cover-1", "cover-2", "cover-3", "cover-quiet", "cover-never"]
    part = Partition(_engine(*devices), devices)
    start = WALL0 - 6 * 3600.0  # six hours behind the wall clock
    quiet_last = start + 3600.0
    readings = _backlog(devices[:4], start, 5.0, {"cover-quiet": quiet_last})
    # ticks made while nothing was read yet (the worker starting; a tick topic seen late) mean nothing
    assert part.tick(WALL0, caught_up=False) is None
    assert part.tick(WALL0, caught_up=True) is None
    made = [WALL0 + 0.5 * i for i in range(200)]  # ticks made meanwhile, applied between readings
    for n, r in enumerate(readings):
        part.read(r, WALL0 + n / 1000)  # read at 1000 readings/s: five hours of event time in a second
        if n % 8 == 0:  # about two minutes of event time
            part.tick(made.pop(0), caught_up=False)
    for m in made:  # applied once caught up, though made before the last readings were read
        part.tick(m, caught_up=True)
    offline = _offline(part.found)
    assert {d.device_id for d in offline} == {"cover-quiet", "cover-never"}
    newest = readings[-1].observed_at
    quiet = next(d for d in offline if d.device_id == "cover-quiet")
    # judged on event time: three intervals after its last reading, not at the wall clock
    assert quiet_last + 180.0 <= quiet.observed_at <= quiet_last + 180.0 + 120.0
    never = next(d for d in offline if d.device_id == "cover-never")
    assert start + 180.0 <= never.observed_at <= start + 180.0 + 600.0  # counted from the first event time
    assert all(d.observed_at <= newest for d in offline)

    # live from here: the reporting covers go on, cover-1 falls silent; found within the dropout timeout
    for k in range(1, 200):
        wall = WALL0 + 10 + k
        if k % 60 == 0:
            for j, d in enumerate(["cover-2", "cover-3"]):
                part.read(_tilt(d, newest + k + j, 1.0, 10_000 + k), wall)
        part.tick(wall, caught_up=True)
    late = [d for d in _offline(part.found) if d.device_id == "cover-1"]
    assert len(late) == 1 and late[0].observed_at <= newest + 3 * 60 + 5
    assert {d.device_id for d in _offline(part.found)} == {"cover-quiet", "cover-never", "cover-1"}


def test_a_caught_up_partition_follows_the_workers_newest_event_time_less_the_lateness() -> None:
    clock = PartitionClock()
    clock.observe(0, 1000.0, wall=WALL0)  # partition 0 read up to event time 1000, then nothing
    clock.observe(1, 5000.0, wall=WALL0)  # partition 1 went on to 5000
    assert clock.now(0, WALL0, caught_up=False, lag=120.0) == 1000.0  # unread readings: its own time
    assert clock.now(0, WALL0, caught_up=True, lag=120.0) == 4880.0
    assert clock.now(2, WALL0, caught_up=True, lag=120.0) == 4880.0  # a partition nothing was read on
    assert clock.now(2, WALL0 + 60.0, caught_up=True, lag=120.0) == 4940.0  # moves on at wall speed
    assert clock.now(3, WALL0, caught_up=False, lag=120.0) is None
    clock.observe(4, WALL0 + 3600.0, wall=WALL0)  # a device clock an hour fast is capped at the wall
    assert clock.now(4, WALL0, caught_up=True) == WALL0


def test_a_restarted_partition_starts_from_its_devices_saved_event_time() -> None:
    clock = PartitionClock()
    clock.seed(0, 1000.0, wall=WALL0)
    clock.seed(0, 9000.0, wall=WALL0)  # seeding does not override what is known
    assert clock.now(0, WALL0 + 60.0, caught_up=False) == 1000.0
    assert clock.now(0, WALL0 + 60.0, caught_up=True) == 1060.0
    clock.seed(1, None, wall=WALL0)
    assert not clock.known(1)
