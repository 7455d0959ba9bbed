"""The live shadow judges silence on event time, as the detect stage does: a backlog of hours read in seconds
never looks like every device went offline, while a device that really falls silent is still found."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from gridsentinel.detectors.config import load_file
from gridsentinel.detectors.engine import DetectionEngine
from gridsentinel.engineering.shadow import ShadowRunner
from gridsentinel.settings import Settings

pytestmark = pytest.mark.unit

CONFIG = Path(__file__).resolve().parents[3] / "config"
START = 1_780_000_000.0  # 2026-05-28, pinned: nothing here reads the hour of day


class Recorder(ShadowRunner):
    def __init__(self, settings: Settings) -> None:
        super().__init__(settings)
        self.kinds: list[tuple[str, str]] = []

    async def apply(self, detections: list[Any]) -> None:
        self.kinds += [(d.device_id, d.kind) for d in detections]


def reading(device_id: str, t: float, seq: int) -> bytes:
    return json.dumps({"device_id": device_id, "metric": "water_level_m", "unit": "m", "value": 0.4,
                       "observed_at": t, "seq": seq}).encode()


def runner() -> Recorder:
    r = Recorder(Settings(config_dir=CONFIG))
    r.engine = DetectionEngine(load_file(CONFIG / "detectors.yaml"), r.registry,
                               category_of=r.catalog.category_of)
    return r


def test_a_backlog_read_fast_is_not_silence_and_a_silent_device_still_is() -> None:
    r = runner()
    wall = [START + 3 * 3600]  # the backlog is 3 h behind the wall clock
    r.wall = lambda: wall[0]

    async def play() -> None:
        # 2 h of two drains every 60 s, read in 4 minutes of wall time, with the 2 s timer in between
        for i in range(120):
            for dev in ("drain-001", "drain-002"):
                await r.on_reading(reading(dev, START + 60 * i, i))
            wall[0] += 2.0
            await r.on_timer()
        assert not [k for k in r.kinds if k[1] == "device_offline"], r.kinds
        # live now: drain-001 keeps reporting, drain-002 has gone silent
        t = START + 60 * 120
        for i in range(120, 140):
            await r.on_reading(reading("drain-001", t, i))
            for _ in range(30):
                wall[0] += 2.0
                t += 2.0
                await r.on_timer()
        assert ("drain-002", "device_offline") in r.kinds
        assert ("drain-001", "device_offline") not in r.kinds

    asyncio.run(play())
