"""Shared pytest setup: integration tests get the real stack, started once per session."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridsentinel.ingest.records import Detection

if TYPE_CHECKING:
    import numpy as np


def drain_detection(detection_id: str, **fields: Any) -> Detection:
    """A drain-overflow detection for tests; ``fields`` override any of its values."""
    base: dict[str, Any] = {
        "detection_id": detection_id, "source": "sensor", "detector": "drain_level", "detector_version": "1",
        "kind": "drain_overflow", "category_code": "0103", "category_standard": "GB/T 30428.2-2013",
        "severity": "alarm", "device_id": "dev-1",
    }
    return Detection(**{**base, **fields})


def read_image(path: Path) -> np.ndarray:
    """A BGR image from a fixture file; the test fails naming the file if OpenCV cannot read it."""
    import cv2

    image = cv2.imread(str(path))
    assert image is not None, f"cannot read image {path}"
    return image


def decode_image(data: bytes, grayscale: bool = False) -> np.ndarray:
    """An image from encoded bytes (JPEG, PNG); the test fails if OpenCV cannot decode them."""
    import cv2
    import numpy as np

    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE if grayscale else cv2.IMREAD_COLOR)
    assert image is not None, f"cannot decode {len(data)} bytes as an image"
    return image
