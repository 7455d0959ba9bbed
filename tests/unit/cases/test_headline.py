"""A case's headline follows its current state, with the drainage detector's real messages."""

from __future__ import annotations

import asyncio
from dataclasses import replace

import pytest

from gridsentinel.cases.batch import apply_detections
from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.core.records import Detection, Reading
from gridsentinel.detectors.base import Finding
from gridsentinel.detectors.detection import to_detection
from gridsentinel.detectors.drainage import DrainageLevelDetector

from .conftest import CELL, MONDAY_10H

pytestmark = pytest.mark.unit


def drain_detections() -> list[Detection]:
    """A manhole filling in the rain: warning, then alarm, then critical (surcharge)."""
    detector = DrainageLevelDetector(depth_m=2.0, hold_samples=2)
    detector.update(Reading("drain-1", "rain_rate", "mm/h", 12.0, MONDAY_10H))
    findings: list[Finding] = []
    for i, level in enumerate([1.1, 1.15, 1.2, 1.22, 1.24, 1.5, 1.75, 1.85, 2.05]):
        findings += detector.update(Reading("drain-1", "water_level", "m", level,
                                            MONDAY_10H + 300.0 * (i + 1))).findings
    return [to_detection(f, device_id="drain-1", detector="drainage_level", detector_version="1",
                         grid_code=CELL, category_code="0103", category_standard="GB/T 30428.2-2013")
            for f in findings]


def test_the_headline_is_the_latest_detection_at_the_case_s_severity(catalog: Catalog) -> None:
    warning, alarm, critical = drain_detections()
    assert (warning.severity, alarm.severity, critical.severity) == ("warning", "alarm", "critical")
    assert "full" in warning.message and "surcharging" in critical.message

    async def scenario() -> MemoryCaseStore:
        store = MemoryCaseStore()
        for d in (warning, alarm, critical):
            await apply_detection(d, store, catalog, {}, now=d.observed_at)
        # Older, or less severe than the case: evidence, but the headline stays.
        late = replace(alarm, detection_id="late", message="drain 90% full (late copy)")
        await apply_detection(late, store, catalog, {}, now=critical.observed_at + 1)
        return store

    case = asyncio.run(scenario()).all_cases()[0]
    assert case.detection_count == 4 and case.severity == "critical"
    assert case.title == warning.message  # the first
    assert case.headline == critical.message  # the current state


def test_a_lower_severity_detection_does_not_replace_the_headline(catalog: Catalog) -> None:
    _, alarm, critical = drain_detections()
    # Later but less severe than the (critical) case: drain_overflow's floor makes a warning an alarm.
    lower = replace(alarm, detection_id="lower", observed_at=critical.observed_at + 600,
                    message="drain 81% full (freeboard 0.38 m)")

    async def scenario() -> MemoryCaseStore:
        store = MemoryCaseStore()
        for d in (critical, lower):
            await apply_detection(d, store, catalog, {}, now=d.observed_at)
        return store

    case = asyncio.run(scenario()).all_cases()[0]
    assert case.headline == critical.message and case.detection_count == 2


def test_the_batch_path_sets_the_same_headline(catalog: Catalog) -> None:
    detections = drain_detections()

    async def scenario() -> MemoryCaseStore:
        store = MemoryCaseStore()
        await apply_detections(detections, store, catalog, {}, now=detections[-1].observed_at)
        return store

    case = asyncio.run(scenario()).all_cases()[0]
    assert (case.title, case.headline) == (detections[0].message, detections[-1].message)
