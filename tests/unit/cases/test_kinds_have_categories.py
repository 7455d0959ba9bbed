"""Every detection kind a shipped detector can emit becomes a case category (none is dead-lettered), and
config/categories.yaml is the one file that says which.

A 56 mm/h ``heavy_rain`` detection of a rain gauge was dead-lettered as ``unknown_category``. The kinds
come from the detectors themselves (``Detector.kinds``, which the conformance suite holds them to; a
camera detector's ``kind`` and the kinds its config may choose). Each detection is labelled the way the
detector bank (or camera stack) labels it, with ``Catalog.category_of``, and resolved by
``Catalog.resolve``, the function the case stage uses: both must name the same category.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

import pytest
from pydantic import BaseModel

from gridsentinel.cases.categories import Catalog, UnknownCategory
from gridsentinel.core.records import Detection
from gridsentinel.detectors.bank import DeviceDetectors
from gridsentinel.detectors.base import Finding
from gridsentinel.detectors.camera.base import DetectorConfig as CameraDetectorConfig
from gridsentinel.detectors.camera.config import CameraConfig
from gridsentinel.detectors.camera.stack import CAMERA_DETECTORS, CameraStack
from gridsentinel.detectors.config import (
    DEVICE_KINDS,
    DetectorConfig,
    DetectorSet,
    DeviceSettings,
    KindSettings,
    load_file,
    settings_for,
)
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


COVER_CLASSES = ["0101", "0102", "0103", "0105", "0111"]


def _sensor_detection(catalog: Catalog, settings: DeviceSettings, detector: str, kind: str,
                      component_id: str | None = None) -> Detection:
    """The detection the device's bank builds for a finding of ``kind`` (labelled by the catalog)."""
    bank = DeviceDetectors(settings, catalog.category_of, component_id=component_id)
    finding = Finding(kind, "open", "warning", T0, T0 + 60.0, 1.0, 2.0, "probe")
    (detection,) = bank._detections(detector, [finding])
    return detection


def _camera_detection(catalog: Catalog, detector: str, kind: str) -> Detection:
    """The detection a camera stack sends: the detector's, labelled by the catalog."""
    stack = CameraStack(CameraConfig(camera_id="cam-1", grid_code=CELL), category_of=catalog.category_of)
    found = Detection(detection_id="probe", source="camera", detector=detector, detector_version="v1",
                      kind=kind, category_code="", category_standard="", severity="warning", grid_code=CELL,
                      observed_at=T0, device_id="cam-1")
    return stack._labelled(found)


def _carries_what_the_catalog_says(catalog: Catalog, d: Detection) -> str:
    """Resolve ``d`` as the case stage does; its category code and standard must be that category's."""
    resolved = catalog.resolve(d)
    spec = resolved.policy.spec
    assert (d.category_code, d.category_standard) == (spec.code, spec.standard), (d.kind, resolved.policy.key)
    return resolved.policy.key


def test_the_walk_finds_the_kinds_that_were_lost() -> None:
    kinds = {(k, f) for k, _, f, _ in sensor_cases()} | {f for _, f in camera_cases()}
    assert {("rain_gauge", "heavy_rain"), ("air_quality", "outlier"), "road_obstruction"} <= kinds


@pytest.mark.parametrize(("device_kind", "detector", "kind", "settings"), sensor_cases(),
                         ids=lambda v: v if isinstance(v, str) else "")
def test_every_sensor_detection_kind_maps_to_a_category(catalog: Catalog, device_kind: str, detector: str,
                                                        kind: str, settings: DeviceSettings) -> None:
    try:
        key = _carries_what_the_catalog_says(catalog, _sensor_detection(catalog, settings, detector, kind))
    except UnknownCategory as exc:
        pytest.fail(f"{device_kind}/{detector} emits {kind!r}, which has no category: {exc}")
    assert key in catalog.policies


@pytest.mark.parametrize(("detector", "kind"), camera_cases())
def test_every_camera_detection_kind_maps_to_a_category(catalog: Catalog, detector: str, kind: str) -> None:
    try:
        _carries_what_the_catalog_says(catalog, _camera_detection(catalog, detector, kind))
    except UnknownCategory as exc:
        pytest.fail(f"camera detector {detector} emits {kind!r}, which has no category: {exc}")


def test_heavy_rain_is_a_rain_case(catalog: Catalog) -> None:
    config = load_file(CONFIG / "detectors.yaml")
    rain = _sensor_detection(catalog, settings_for(config, "rain-3", "rain_gauge", CELL), "threshold",
                             "heavy_rain")
    resolved = catalog.resolve(rain)
    assert "rain" in resolved.policy.spec.name
    assert catalog.department_for(resolved.policy.key, CELL) == "drainage"



def test_categories_yaml_is_the_only_source() -> None:
    """Neither detectors.yaml nor a camera detector's config can name a category any more."""
    assert not {f for f in KindSettings.model_fields if f.startswith("category")}
    for cls in CAMERA_DETECTORS.values():
        assert not {f for f in cls.config_type.model_fields if f.startswith("category")}, cls.name
    assert not {f for f in CameraDetectorConfig.model_fields if f.startswith("category")}


def test_every_device_kind_has_a_category_for_its_generic_kinds(catalog: Catalog) -> None:
    assert set(catalog.categories_file.device_kinds) == set(DEVICE_KINDS)


@pytest.mark.parametrize(("device_kind", "key"), [
    ("air_quality", "event:L002"), ("noise", "event:L003"), ("rain_gauge", "event:L008"),
    ("drain_level", "component:0103"), ("cover_tilt", "component:0103")])
def test_generic_kinds_take_their_device_kinds_category(catalog: Catalog, device_kind: str, key: str) -> None:
    config = load_file(CONFIG / "detectors.yaml")
    settings = settings_for(config, "probe", device_kind, CELL)
    for kind in ("outlier", "threshold", "rate_of_change"):
        assert _carries_what_the_catalog_says(catalog, _sensor_detection(catalog, settings, "x", kind)) == key


@pytest.mark.parametrize("component_class", COVER_CLASSES)
def test_a_tilted_cover_carries_its_class_category(catalog: Catalog, component_class: str) -> None:
    settings = settings_for(load_file(CONFIG / "detectors.yaml"), "cover-7", "cover_tilt", CELL)
    d = _sensor_detection(catalog, settings, "cover_tilt", "cover_tilt", f"320582{component_class}000001")
    assert _carries_what_the_catalog_says(catalog, d) == f"component:{component_class}"


def test_a_kind_nothing_maps_is_labelled_empty_and_dead_lettered(catalog: Catalog) -> None:
    assert catalog.category_of("camera", "ufo", None) == ("", "")
    with pytest.raises(UnknownCategory):
        catalog.resolve(_camera_detection(catalog, "camera.tamper", "ufo"))
