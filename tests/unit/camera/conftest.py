"""Real-footage fixtures (small derived clips committed under tests/fixtures/vision/)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from ...conftest import read_image

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "vision"


def _read_dir(name: str) -> list[np.ndarray]:
    frames = [read_image(p) for p in sorted((FIXTURES / name).glob("*.jpg"))]
    assert frames, f"fixture {name} missing"
    return frames


@pytest.fixture(scope="session")
def vtest_clip() -> list[np.ndarray]:
    """12 s of pedestrians at 5 frames/s, 320x240."""
    return _read_dir("vtest_clip")


@pytest.fixture(scope="session")
def tree_clip() -> list[np.ndarray]:
    """A tree in the wind, ~4.5 s at 5 frames/s, 320x240."""
    return _read_dir("tree_clip")


@pytest.fixture(scope="session")
def people_frames() -> list[tuple[np.ndarray, int]]:
    counts = json.loads((FIXTURES / "vtest_counts.json").read_text())["counts"]
    return [
        (read_image(p), int(counts[str(int(p.stem))]))
        for p in sorted((FIXTURES / "vtest_people").glob("*.jpg"))
    ]


def pingpong(frames: list[np.ndarray], n: int) -> list[np.ndarray]:
    """``n`` frames playing the clip forward and back (no jump at the seam)."""
    cycle = frames + frames[-2:0:-1]
    return [cycle[i % len(cycle)] for i in range(n)]


@pytest.fixture(scope="session")
def long_vtest(vtest_clip: list[np.ndarray]) -> list[np.ndarray]:
    """40 s of real pedestrian footage at 5 frames/s (the clip played forward and back)."""
    return pingpong(vtest_clip, 200)


@pytest.fixture(scope="session")
def long_tree(tree_clip: list[np.ndarray]) -> list[np.ndarray]:
    """40 s of a tree in the wind at 5 frames/s (the clip played forward and back)."""
    return pingpong(tree_clip, 200)
