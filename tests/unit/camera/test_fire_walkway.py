"""The fire/smoke detector on the simulator's camera scenes (issue 14 follow-up: test_city_in_a_box opened
"possible fire" and "possible smoke" cases on them).

The input is what the frames stage gets from a simulated camera: the real walkway footage the simulator
streams (``gridsentinel/simulator/footage``), its frames chosen by event time (2.5 frames/s footage
played forward and back), sent 0.5 s apart, re-encoded as JPEG (quality 80) and decoded by the frames
stage's own decoder; before a scene, the camera's idle frames come 120 s apart, the last one 20 s before
the scene (``gridsentinel/simulator/scenario.py``: ``_camera``).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gridsentinel.detectors.camera.fire_smoke import MAX_FRAME_WEIGHT_S, FireSmokeConfig, FireSmokeDetector
from gridsentinel.detectors.frames_stage import decode_jpeg
from gridsentinel.simulator import footage

pytestmark = pytest.mark.unit

FOOTAGE_FPS = 2.5  # the footage's own rate (scenario._camera)
STEP_S = 0.5  # frame spacing inside a scene (build_scenario's frame_interval_s)
SCENE_AT = 12600.0  # the city test's tamper scene, as an offset into its window (TAMPER_SCENE_AT)


def _frame(at: float) -> np.ndarray:
    """The decoded frame the simulated camera sends at offset ``at``."""
    n = len(footage.frames())
    cycle = 2 * (n - 1)
    k = int(at * FOOTAGE_FPS) % cycle
    image = decode_jpeg(footage.render(k if k < n else cycle - k, ""))
    assert not isinstance(image, str)
    return image


def _scene(det: FireSmokeDetector, seconds: float, *, lone_frame_before_s: float | None = None) -> list[dict[str, Any]]:
    """Feed a scene (and, before it, one idle frame); return the detector's evidence per scene frame."""
    if lone_frame_before_s is not None:
        assert not det.update(_frame(SCENE_AT - lone_frame_before_s), SCENE_AT - lone_frame_before_s)
    out = []
    for i in range(int(seconds / STEP_S)):
        at = SCENE_AT + i * STEP_S
        found = det.update(_frame(at), at)
        out.append({"t": i * STEP_S, "found": [d.evidence.get("what") for d in found], **det.last_evidence})
    return out


def test_people_walking_past_a_yellow_sign_are_not_flames():
    """At 2 frames/s, people passing in front of the walkway's small yellow sign change the brightness of
    its half-covered, still flame-coloured pixels by 10-13 grey levels: as much as flames flicker. The
    walkway around them changes as much; flames flicker in front of a still background."""
    cfg = FireSmokeConfig()
    seen = _scene(FireSmokeDetector(cfg), 60.0)
    worst = max(seen, key=lambda e: e["flame_area"])
    assert worst["flame_area"] < cfg.min_flame_area, worst
    assert not [e for e in seen if e["found"]]


def test_a_lone_frame_before_a_gap_is_not_a_warm_up():
    """The idle frame 20 s before the scene (a gap under max_gap_s, so no reset) is one frame, not 20 s of
    background: smoke is not judged until warmup_s of frames were seen."""
    cfg = FireSmokeConfig()
    seen = _scene(FireSmokeDetector(cfg), cfg.warmup_s, lone_frame_before_s=20.0)
    # the gap stands for MAX_FRAME_WEIGHT_S of frames, the scene's frames for the rest of the warm-up
    warm = [e for e in seen if e["t"] < cfg.warmup_s - MAX_FRAME_WEIGHT_S]
    assert len(warm) >= 16
    assert all(e["smoke_cells"] == 0 for e in warm), [(e["t"], e["smoke_cells"]) for e in warm]


def test_people_in_the_warm_up_leave_no_smoke_ghost():
    """People on the walkway while the smoke background is learnt: where they stood, the empty ground must
    not look lighter than the background afterwards (smoke) once they have walked on."""
    cfg = FireSmokeConfig()
    seen = _scene(FireSmokeDetector(cfg), 90.0, lone_frame_before_s=20.0)
    worst = max(seen, key=lambda e: e["smoke_cells"])
    assert worst["smoke_cells"] < cfg.min_cells, worst
    assert not [e for e in seen if e["found"]]
