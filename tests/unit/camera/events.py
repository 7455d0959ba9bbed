"""Planted events for the camera detector tests: per detector, a config and a frame transform."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from gridsentinel.detectors.camera import synthetic
from gridsentinel.detectors.camera.crowd import CrowdConfig
from gridsentinel.detectors.camera.fire_smoke import FireSmokeConfig
from gridsentinel.detectors.camera.static_object import StaticObjectConfig, StaticRegion
from gridsentinel.detectors.camera.tamper import TamperConfig
from gridsentinel.detectors.camera.waterlogging import WaterloggingConfig, WaterRegion

ROAD = [(0.45, 0.45), (0.95, 0.45), (0.95, 0.75), (0.45, 0.75)]  # open tarmac in vtest


@dataclass
class Event:
    config: Any
    transform: Callable[[np.ndarray, float], np.ndarray]  # (frame, seconds since onset) -> frame
    onset: float
    max_delay: float


def _paste(frame: np.ndarray, t: float) -> np.ndarray:
    h, w = frame.shape[:2]
    patch = np.zeros((h // 8, w // 8, 3), np.uint8)
    patch[:] = (40, 90, 200)  # a dumped orange-brown sack
    patch[::4] = (30, 60, 150)
    return synthetic.paste(frame, patch, int(w * 0.6), int(h * 0.6))


EVENTS: dict[str, Event] = {
    "tamper": Event(TamperConfig(), lambda f, t: synthetic.cover(f), 10.0, 5.0),
    "static_object": Event(
        StaticObjectConfig(regions=[StaticRegion(name="road", dwell_s=5.0)]), _paste, 8.0, 5.0 + 2.0
    ),
    "crowd": Event(
        CrowdConfig(
            medium_enter=2, medium_exit=1, high_enter=60, high_exit=50, min_duration_s=2.0, smooth_n=1
        ),
        lambda f, t: f,
        0.0,
        6.0,
    ),
    "fire_smoke": Event(FireSmokeConfig(), lambda f, t: synthetic.smoke(f, t, origin=(0.6, 0.9)), 12.0, 15.0),
    "waterlogging": Event(
        WaterloggingConfig(
            enabled=True, regions=[WaterRegion(name="road", polygon=ROAD)], warmup_s=5.0, duration_s=5.0
        ),
        lambda f, t: synthetic.puddle(f, ROAD),
        8.0,
        8.0,
    ),
}

QUIET: dict[str, Any] = {  # default-ish configs that must stay silent on real footage
    "tamper": TamperConfig(),
    "static_object": StaticObjectConfig(regions=[StaticRegion(name="all", dwell_s=20.0)]),
    "crowd": CrowdConfig(),
    "fire_smoke": FireSmokeConfig(),
    "waterlogging": WaterloggingConfig(
        enabled=True, regions=[WaterRegion(name="road", polygon=ROAD)], warmup_s=5.0, duration_s=10.0
    ),
}
