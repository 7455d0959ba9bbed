"""Every detection kind a shipped detector can emit becomes a case category (none is dead-lettered).

A 56 mm/h ``heavy_rain`` detection of a rain gauge was dead-lettered as ``unknown_category``. The kinds
come from the detectors themselves (``Detector.kinds``, which the conformance suite holds them to; a
camera detector's ``kind`` and the kinds its config may choose), and each is resolved by
``Catalog.resolve``, the function the case stage uses, on the detection the detector bank would build.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel

from gridsentinel.cases.categories import Catalog, UnknownCategory
from gridsentinel.core.records import Detection
from gridsentinel.detectors.base import Finding
from gridsentinel.detectors.camera.stack import CAMERA_DETECTORS
from gridsentinel.detectors.config import DetectorConfig, DetectorSet, DeviceSettings, load_file, settings_for
from gridsentinel.detectors.detection import to_detection
from gridsentinel.detectors.registry import DETECTORS, create

pytestmark = pytest.mark.unit

CONFIG = Path(__file__).resolve().parents[3] / "config"
CELL = "320582110152102"
T0 = 1_749_434_400.0


def _resolutions(config: DetectorConfig, kind: str) -> Iterator[DeviceSettings]:
    """The kind's settings as its devices get them: plain, under each grid override, per device override."""
    yield settings_for(config, "probe", kind, CELL)
    for prefix in config.grid_overrides:
        yield settings_for(config, "probe", kind, prefix.ljust(15, "0"))
    for device in config.device_overrides:
        yield settings_for(config, device, kind, CELL)


def _defaults(name: str) -> dict[str, Any]:
    if name not in DetectorSet.model_fields:  # registered but not configurable: its constructor's defaults
        return {}
    model = next(a for a in get_args(DetectorSet.model_fields[name].annotation) if a is not type(None))
    return dict(model().model_dump(exclude={"enabled"}))


def sensor_cases() -> list[tuple[str, str, str, DeviceSettings]]:
    """(device kind, detector, finding kind, settings) for every registered detector under every kind."""
    config = load_file(CONFIG / "detectors.yaml")
    out: dict[tuple[str, str, str], DeviceSettings] = {}
    for kind in config.kinds:
        for settings in _resolutions(config, kind):
            for name in DETECTORS:  # configured or not: an engineer may switch any of them on
                detector = create(name, **settings.detectors.get(name, _defaults(name)))
                for finding_kind in detector.kinds:
                    out.setdefault((kind, name, finding_kind), settings)
    return [(*key, s) for key, s in sorted(out.items())]


def _literal_kinds(model: type[BaseModel]) -> set[str]:
    """Values a config may give a field called ``kind`` anywhere in ``model`` (e.g. per watched region)."""
    found: set[str] = set()
    for field_name, info in model.model_fields.items():
        todo: list[Any] = [info.annotation]
        while todo:
            ann = todo.pop()
            if isinstance(ann, type) and issubclass(ann, BaseModel):
                found |= _literal_kinds(ann)
            elif get_origin(ann) is Literal and field_name == "kind":
                found |= {a for a in get_args(ann) if isinstance(a, str)}
            else:
                todo += [a for a in get_args(ann) if a is not type(None)]
    return found


def camera_cases() -> list[tuple[str, str]]:
    out = set()
    for name, cls in CAMERA_DETECTORS.items():
        for kind in {cls.kind} | _literal_kinds(cls.config_type):
            out.add((name, kind))
    return sorted(out)


def _sensor_detection(settings: DeviceSettings, detector: str, kind: str) -> Detection:
    cat = settings.category_for(kind)
    finding = Finding(kind, "open", "warning", T0, T0 + 60.0, 1.0, 2.0, "probe")
    return to_detection(finding, device_id=settings.device_id, detector=detector,
                        detector_version=settings.version, grid_code=CELL, category_code=cat.code,
                        category_standard=cat.standard)


def test_the_walk_finds_the_kinds_that_were_lost() -> None:
    kinds = {(k, f) for k, _, f, _ in sensor_cases()} | {f for _, f in camera_cases()}
    assert {("rain_gauge", "heavy_rain"), ("air_quality", "outlier"), "road_obstruction"} <= kinds


@pytest.mark.parametrize(("device_kind", "detector", "kind", "settings"), sensor_cases(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_sensor_detection_kind_maps_to_a_category(catalog: Catalog, device_kind: str, detector: str,
                                                        kind: str, settings: DeviceSettings) -> None:
    try:
        resolved = catalog.resolve(_sensor_detection(settings, detector, kind))
    except UnknownCategory as exc:
        pytest.fail(f"{device_kind}/{detector} emits {kind!r}, which has no category: {exc}")
    assert resolved.policy.key in catalog.policies


@pytest.mark.parametrize(("detector", "kind"), camera_cases())
def test_every_camera_detection_kind_maps_to_a_category(catalog: Catalog, detector: str, kind: str) -> None:
    cls = CAMERA_DETECTORS[detector]
    d = Detection(detection_id="probe", source="camera", detector=detector, detector_version="v1", kind=kind,
                  category_code=cls.default_category,
                  category_standard=cls.config_type().category_standard,
                  severity="warning", grid_code=CELL, observed_at=T0, device_id="cam-1")
    try:
        catalog.resolve(d)
    except UnknownCategory as exc:
        pytest.fail(f"camera detector {detector} emits {kind!r}, which has no category: {exc}")


def test_heavy_rain_is_a_rain_case(catalog: Catalog) -> None:
    config = load_file(CONFIG / "detectors.yaml")
    rain = _sensor_detection(settings_for(config, "rain-3", "rain_gauge", CELL), "threshold", "heavy_rain")
    resolved = catalog.resolve(rain)
    assert "rain" in resolved.policy.spec.name
    assert catalog.department_for(resolved.policy.key, CELL) == "drainage"

