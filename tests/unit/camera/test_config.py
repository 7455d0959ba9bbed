from __future__ import annotations

from pathlib import Path

import pytest

from gridsentinel.cases.categories import load_catalog
from gridsentinel.detectors.camera import CameraStack, load_cameras, parse_cameras
from gridsentinel.detectors.camera.config import CamerasFile
from gridsentinel.detectors.camera.crowd import CrowdConfig
from gridsentinel.errors import ConfigError

pytestmark = pytest.mark.unit

EXAMPLE = Path(__file__).resolve().parents[3] / "config" / "cameras.yaml"


def test_example_config_validates_and_builds_stacks():
    cams = load_cameras(EXAMPLE)
    assert [c.camera_id for c in cams.cameras] == ["cam-0001", "cam-0002"]
    category_of = load_catalog(EXAMPLE.parent).category_of
    stacks = [CameraStack(c, category_of=category_of, config_version=cams.version) for c in cams.cameras]
    assert set(stacks[0].detectors) == {"tamper", "static_object", "crowd", "fire_smoke", "waterlogging"}
    assert "crowd" not in stacks[1].detectors
    assert stacks[0].identity.config_version == cams.version


def test_unknown_key_names_path_and_value(tmp_path):
    p = tmp_path / "cameras.yaml"
    p.write_text("cameras:\n  - camera_id: c1\n    tamper:\n      persist: 3\n")
    with pytest.raises(ConfigError) as exc:
        load_cameras(p)
    msg = str(exc.value)
    assert str(p) in msg and "cameras.0.tamper.persist" in msg and "3" in msg


def test_a_category_in_a_camera_config_says_where_it_moved():
    with pytest.raises(ConfigError, match=r"cameras\.0\.tamper.*config/categories\.yaml"):
        parse_cameras({"cameras": [{"camera_id": "c", "tamper": {"category_code": "0103"}}]})


def test_out_of_bounds_and_bad_polygon():
    with pytest.raises(ConfigError, match=r"cameras\.0\.tamper\.persist_s"):
        parse_cameras({"cameras": [{"camera_id": "c", "tamper": {"persist_s": -1}}]})
    with pytest.raises(ConfigError, match=r"static_object\.regions\.0\.polygon"):
        parse_cameras(
            {
                "cameras": [
                    {
                        "camera_id": "c",
                        "static_object": {"regions": [{"name": "r", "polygon": [[0, 0], [1.5, 0], [1, 1]]}]},
                    }
                ]
            }
        )


def test_crowd_thresholds_must_nest():
    with pytest.raises(ValueError, match="medium_exit < medium_enter"):
        CrowdConfig(medium_enter=5, medium_exit=6)


def test_duplicate_cameras_and_bad_grid_code():
    with pytest.raises(ConfigError, match="duplicate camera_id"):
        parse_cameras({"cameras": [{"camera_id": "a"}, {"camera_id": "a"}]})
    with pytest.raises(ConfigError, match="grid_code"):
        parse_cameras({"cameras": [{"camera_id": "a", "grid_code": "123"}]})


def test_unreadable_and_invalid_yaml(tmp_path):
    with pytest.raises(ConfigError, match="cannot read"):
        load_cameras(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("cameras: [\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_cameras(bad)


def test_every_field_is_described():
    schema = CamerasFile.model_json_schema()

    def walk(node, path):
        for name, prop in node.get("properties", {}).items():
            if "$ref" not in prop and "allOf" not in prop:
                assert prop.get("description"), f"{path}.{name} has no description"
        for name, sub in node.get("$defs", {}).items():
            walk(sub, name)

    walk(schema, "CamerasFile")


def test_union_fields_and_registry_name_the_same_detectors():
    from typing import get_args

    from pydantic import TypeAdapter

    from gridsentinel.detectors.camera.config import DETECTOR_KEYS, CameraConfig, CameraDetectorConfig
    from gridsentinel.detectors.camera.stack import CAMERA_DETECTORS

    assert list(DETECTOR_KEYS) == list(CAMERA_DETECTORS)
    assert [k for k in CameraConfig.model_fields if k in CAMERA_DETECTORS] == list(DETECTOR_KEYS)
    for key, cls in CAMERA_DETECTORS.items():
        assert CameraConfig.model_fields[key].annotation is cls.config_type
        assert cls.config_type in get_args(get_args(CameraDetectorConfig)[0])
    cfg = TypeAdapter(CameraDetectorConfig).validate_python({"detector": "crowd", "medium_enter": 12})
    assert isinstance(cfg, CrowdConfig) and cfg.medium_enter == 12
    assert [c.detector for c in CameraConfig(camera_id="c").detector_configs()] == list(DETECTOR_KEYS)


def test_a_section_may_not_claim_another_detector():
    with pytest.raises(ConfigError, match=r"cameras\.0\.tamper\.detector"):
        parse_cameras({"cameras": [{"camera_id": "c", "tamper": {"detector": "crowd"}}]})
