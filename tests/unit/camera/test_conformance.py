"""One suite over every registered camera detector (style.md: "Detectors")."""

from __future__ import annotations

import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from gridsentinel.core.records import SEVERITIES, Detection
from gridsentinel.detectors.camera import CAMERA_DETECTORS

pytestmark = pytest.mark.unit

_spec = importlib.util.spec_from_file_location("camera_events", Path(__file__).with_name("events.py"))
assert _spec and _spec.loader
events = importlib.util.module_from_spec(_spec)
sys.modules["camera_events"] = events
_spec.loader.exec_module(events)

NAMES = sorted(CAMERA_DETECTORS)
FPS = 5.0


def run(det, frames, start=0, fps=FPS, transform=None, onset=math.inf):
    found: list[tuple[float, Detection]] = []
    for i, f in enumerate(frames[start:], start):
        ts = 1000.0 + i / fps
        t = i / fps
        frame = transform(f, t - onset) if transform is not None and t >= onset else f
        found.extend((t, d) for d in det.update(frame, ts))
    return found


def test_every_config_field_has_a_detector():
    assert set(NAMES) == {"tamper", "static_object", "crowd", "fire_smoke", "waterlogging"}
    assert set(NAMES) == set(events.EVENTS) == set(events.QUIET)


@pytest.mark.parametrize("name", NAMES)
def test_planted_event_fires_with_well_formed_detection(name, long_vtest):
    ev = events.EVENTS[name]
    det = CAMERA_DETECTORS[name](ev.config)
    found = run(det, long_vtest, transform=ev.transform, onset=ev.onset)
    assert found, f"{name}: planted event not detected"
    t, d = found[0]
    assert isinstance(d, Detection)
    assert d.source == "camera" and d.severity in SEVERITIES and d.detector == det.name
    assert d.observed_at == pytest.approx(1000.0 + t)
    assert ev.onset <= t <= ev.onset + ev.max_delay, f"{name}: detected after {t - ev.onset:.1f} s"
    for v in (d.score, d.value):
        assert v is None or math.isfinite(v)
    Detection.from_json(d.to_json())  # JSON-clean evidence


@pytest.mark.parametrize("name", NAMES)
def test_quiet_on_real_footage(name, long_vtest, long_tree):
    for clip in (long_vtest, long_tree):
        det = CAMERA_DETECTORS[name](events.QUIET[name])
        assert run(det, clip) == []


@pytest.mark.parametrize("name", NAMES)
def test_silent_during_warm_up(name, long_vtest):
    ev = events.EVENTS[name]
    det = CAMERA_DETECTORS[name](ev.config)
    warm = ev.config.warmup_s
    found = run(det, long_vtest, transform=ev.transform, onset=0.0)
    assert all(t >= warm for t, _ in found)


@pytest.mark.parametrize("name", NAMES)
def test_state_round_trip(name, long_vtest):
    ev = events.EVENTS[name]
    cut = int((ev.onset + 1.0) * FPS)
    a = CAMERA_DETECTORS[name](ev.config)
    run(a, long_vtest[:cut], transform=ev.transform, onset=ev.onset)
    b = CAMERA_DETECTORS[name](ev.config)
    b.set_state(a.get_state())
    rest_a = run(a, long_vtest, start=cut, transform=ev.transform, onset=ev.onset)
    rest_b = run(b, long_vtest, start=cut, transform=ev.transform, onset=ev.onset)
    assert rest_a, "the event should fire after the cut"
    assert [d.detection_id for _, d in rest_a] == [d.detection_id for _, d in rest_b]


@pytest.mark.parametrize("name", NAMES)
def test_rate_independent(name, long_vtest):
    """Fed at half the frame rate, the same event fires with about the same delay."""
    ev = events.EVENTS[name]
    full = run(CAMERA_DETECTORS[name](ev.config), long_vtest, transform=ev.transform, onset=ev.onset)
    half = run(
        CAMERA_DETECTORS[name](ev.config), long_vtest[::2], fps=FPS / 2, transform=ev.transform, onset=ev.onset
    )
    assert full and half
    assert abs(full[0][0] - half[0][0]) <= 1.5


@pytest.mark.parametrize("name", NAMES)
def test_frames_faster_than_analysis_rate_are_skipped(name, vtest_clip):
    det = CAMERA_DETECTORS[name](events.EVENTS[name].config)
    det.update(vtest_clip[0], 10.0)
    before = det.get_state()
    assert det.update(vtest_clip[1], 10.0 + 0.5 / det.config.analysis_fps) == []
    assert det.get_state() == before


@pytest.mark.parametrize("name", NAMES)
def test_accepts_grey_and_rejects_non_images(name, vtest_clip):
    det = CAMERA_DETECTORS[name](events.EVENTS[name].config)
    grey = np.ascontiguousarray(vtest_clip[0][:, :, 1])
    assert det.update(grey, 1.0) == []
    with pytest.raises(TypeError):
        det.update(vtest_clip[0].astype(np.float32), 2.0)
    with pytest.raises(ValueError):
        det.update(np.zeros((4, 4, 3), np.uint8), 3.0)


@pytest.mark.parametrize("name", NAMES)
def test_long_gap_restarts_warm_up(name, vtest_clip):
    det = CAMERA_DETECTORS[name](events.EVENTS[name].config)
    for i, f in enumerate(vtest_clip):
        det.update(f, i / FPS)
    det.update(vtest_clip[0], 10_000.0)
    assert not det.warmed_up or det.config.warmup_s == 0
