"""Shared pytest setup: integration tests get the real stack, started once per session."""

from __future__ import annotations

from typing import Any

from gridsentinel.ingest.records import Detection


def drain_detection(detection_id: str, **fields: Any) -> Detection:
    """A drain-overflow detection for tests; ``fields`` override any of its values."""
    base: dict[str, Any] = {
        "detection_id": detection_id, "source": "sensor", "detector": "drain_level", "detector_version": "1",
        "kind": "drain_overflow", "category_code": "0103", "category_standard": "GB/T 30428.2-2013",
        "severity": "alarm", "device_id": "dev-1",
    }
    return Detection(**{**base, **fields})
