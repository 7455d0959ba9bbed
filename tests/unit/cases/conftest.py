"""Shared fixtures for the alerts unit tests: the repository's config and a detection factory."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from gridsentinel.cases.categories import Catalog, load_catalog
from gridsentinel.core.records import Detection

from ...conftest import drain_detection

CONFIG_DIR = Path(__file__).resolve().parents[3] / "config"
CELL = "320582110152102"
# Monday 2025-06-09 10:00 Asia/Shanghai, inside working hours.
MONDAY_10H = 1749434400.0

MakeDetection = Callable[..., Detection]


def detection(detection_id: str = "d1", **overrides: Any) -> Detection:
    return drain_detection(detection_id, **{"grid_code": CELL, "observed_at": MONDAY_10H, **overrides})


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(CONFIG_DIR)


@pytest.fixture
def make_detection() -> MakeDetection:
    return detection
