"""The frames stage without Faust: bad and corrupt frames dead-lettered, the analysis rate gate, and
detector state saved to the table and restored by the next worker."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import cv2
import numpy as np
import pytest

from gridsentinel.cases.categories import load_catalog
from gridsentinel.core.devices import Registry
from gridsentinel.core.records import DeadLetter, Detection, Frame
from gridsentinel.detectors.camera.config import load_cameras
from gridsentinel.detectors.frames_stage import EvidenceStore, FrameProcessor

pytestmark = pytest.mark.unit

CONFIG = Path(__file__).resolve().parents[3] / "config"
T0 = 1_780_000_000.0


def jpeg(level: int = 90) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((64, 96, 3), level, np.uint8))
    assert ok
    return bytes(buf.tobytes())


def processor(table: dict[str, bytes], tmp_path: Path, letters: list[tuple[str, bytes | None]]) -> FrameProcessor:
    async def dead_letter(letter: DeadLetter, key: bytes | None) -> None:
        letters.append((letter.reason, key))

    async def send(found: list[Detection]) -> None:
        pass

    return FrameProcessor(load_cameras(CONFIG / "cameras.yaml"), Registry.load(CONFIG), cast(Any, None),
                          EvidenceStore(tmp_path / "evidence", retention_days=0), table=table, send=send,
                          dead_letter=dead_letter, category_of=load_catalog(CONFIG).category_of,
                          origin="t.gs.frames")


async def frame(proc: FrameProcessor, ts: float, payload: bytes) -> None:
    f = Frame("cam-test", ts, 1, payload)
    await proc.on_frame(b"cam-test", payload, f.headers(), 2)


def test_frames_are_gated_dead_lettered_and_their_state_survives_a_new_worker(tmp_path: Path) -> None:
    table: dict[str, bytes] = {}
    letters: list[tuple[str, bytes | None]] = []

    async def play() -> tuple[FrameProcessor, FrameProcessor]:
        proc = processor(table, tmp_path, letters)
        await proc.on_frame(b"cam-test", jpeg(), [], 2)  # no gs-frame header
        await frame(proc, T0, jpeg()[:-40])  # truncated
        await frame(proc, T0 + 1.0, jpeg())
        await frame(proc, T0 + 1.001, jpeg())  # far above any analysis rate: not even decoded
        await frame(proc, T0 + 0.5, jpeg())  # older than what the detectors have seen
        after = processor(table, tmp_path, letters)  # another worker takes the camera over
        await frame(after, T0 + 1.0, jpeg())
        return proc, after

    proc, after = asyncio.run(play())
    assert letters == [("bad_record", b""), ("corrupt_jpeg", b"cam-test")]
    assert {k: v for k, v in proc.counts.items() if v} == {
        "frames_in": 5, "dead_lettered": 2, "analysed": 1, "rate_dropped": 1, "stale_dropped": 1, "state_saves": 1}
    assert "cam-test" in table and "cam-test#1#0" in table  # the head and the chunk of generation 1
    assert after.counts["state_restores"] == 1 and after.counts["stale_dropped"] == 1
    after.revoked({2})
    assert after.live == {}
