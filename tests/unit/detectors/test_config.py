from __future__ import annotations

import json
from pathlib import Path

import pytest

from gridsentinel.cases.categories import load_catalog
from gridsentinel.core.records import Reading
from gridsentinel.detectors.bank import DeviceDetectors
from gridsentinel.detectors.config import DetectorConfig, json_schema, settings_for, validate_file
from gridsentinel.errors import ConfigError

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "config" / "detectors.yaml"
CATEGORY_OF = load_catalog(ROOT / "config").category_of  # config/categories.yaml labels detections

BASE = """
version: "t1"
kinds:
  drain_level:
    metrics: [water_level]
    detectors:
      drainage_level: {depth_m: 3.0, warn_fill: 0.8}
      dropout: {expected_interval_s: 300}
  cover_tilt:
    metrics: [tilt]
    detectors:
      cover_tilt: {alarm_deg: 10}
grid_overrides:
  "3205":
    drain_level:
      drainage_level: {warn_fill: 0.75}
  "320582":
    drain_level:
      drainage_level: {warn_fill: 0.7}
device_overrides:
  drain-9:
    drainage_level: {depth_m: 2.0}
    dropout: {enabled: false}
"""


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "detectors.yaml"
    p.write_text(text)
    return p


def _config(tmp_path: Path) -> DetectorConfig:
    import yaml
    return DetectorConfig.model_validate(yaml.safe_load(BASE))


def test_shipped_config_is_valid() -> None:
    assert validate_file(SHIPPED) == []


def test_shipped_schema_is_up_to_date() -> None:
    on_disk = json.loads((ROOT / "config" / "detectors.schema.json").read_text())
    assert on_disk == json_schema()


def test_overrides_apply_longest_prefix_then_device(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    plain = settings_for(cfg, "drain-1", "drain_level", "110000001001001")
    assert plain.detectors["drainage_level"]["warn_fill"] == 0.8
    street = settings_for(cfg, "drain-1", "drain_level", "320582110152102")
    assert street.detectors["drainage_level"]["warn_fill"] == 0.7
    device = settings_for(cfg, "drain-9", "drain_level", "320582110152102")
    assert device.detectors["drainage_level"]["depth_m"] == 2.0
    assert device.detectors["drainage_level"]["warn_fill"] == 0.7
    assert "dropout" not in device.detectors
    assert device.version == "t1"


def test_a_category_in_detectors_yaml_says_where_it_moved(tmp_path: Path) -> None:
    old = BASE.replace("    metrics: [tilt]\n", '    metrics: [tilt]\n    category: {code: "0103", standard: "s"}\n')
    errors = validate_file(_write(tmp_path, old))
    assert len(errors) == 1 and "kinds.cover_tilt" in errors[0]
    assert "config/categories.yaml" in errors[0]


def test_unknown_kind_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="noise"):
        settings_for(_config(tmp_path), "n-1", "noise", "1")


@pytest.mark.parametrize(("patch", "expected"), [
    ("warn_fill: 0.8", "warn_fill: 1.8"),
    ("depth_m: 3.0,", "depth_m: 3.0, colour: red,"),
    ("alarm_deg: 10", "alarm_deg: ten"),
])
def test_errors_name_file_key_value_and_expectation(tmp_path: Path, patch: str, expected: str) -> None:
    p = _write(tmp_path, BASE.replace(patch, expected))
    errors = validate_file(p)
    assert len(errors) == 1, errors
    msg = errors[0]
    assert msg.startswith(f"{p}: kinds.")
    assert "got " in msg and "expected " in msg
    assert "Traceback" not in msg


def test_error_messages_in_detail(tmp_path: Path) -> None:
    p = _write(tmp_path, BASE.replace("warn_fill: 0.8", "warn_fill: 1.8")
               .replace("alarm_deg: 10", "alarm_deg: 10, colour: red"))
    assert sorted(validate_file(p)) == [
        f"{p}: kinds.cover_tilt.detectors.cover_tilt.colour: got 'red'; expected no such key here",
        f"{p}: kinds.drain_level.detectors.drainage_level.warn_fill: got 1.8; "
        "expected less than or equal to 1",
    ]


def test_override_that_breaks_merged_settings_is_reported(tmp_path: Path) -> None:
    text = BASE.replace("cover_tilt: {alarm_deg: 10}",
                        "cover_tilt: {alarm_deg: 10}\n      threshold: {enter: 5.0, exit: 4.0}")
    text += "  cover-1:\n    threshold: {exit: 6.0}\n"
    errors = validate_file(_write(tmp_path, text))
    assert len(errors) == 1
    assert "device_overrides.cover-1 (merged onto kinds.cover_tilt): threshold" in errors[0]
    assert "exit (6.0) must not be past enter (5.0)" in errors[0]


def test_missing_file_and_bad_yaml(tmp_path: Path) -> None:
    assert "cannot read" in validate_file(tmp_path / "nope.yaml")[0]
    assert "not valid YAML at line" in validate_file(_write(tmp_path, "version: [\n"))[0]
    assert "expected a mapping" in validate_file(_write(tmp_path, "- 1\n"))[0]


def test_bank_turns_readings_into_detections_and_round_trips_state(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    settings = settings_for(cfg, "drain-1", "drain_level", "320582110152102")
    bank = DeviceDetectors(settings, CATEGORY_OF, since=0.0)
    assert bank.check(100.0) == []
    offline = bank.check(1000.0)
    assert [d.kind for d in offline] == ["device_offline"]
    saved = json.loads(json.dumps(bank.state(), allow_nan=False))
    again = DeviceDetectors(settings, CATEGORY_OF, since=0.0)
    again.restore(saved)
    levels = [2.5, 2.6, 2.7, 2.8]
    rows = [Reading("drain-1", "water_level", "m", v, 1200 + 300 * i) for i, v in enumerate(levels)]
    a = [d for r in rows for d in bank.update(r)]
    b = [d for r in rows for d in again.update(r)]
    assert a == b
    assert {d.kind for d in a} == {"drain_overflow"}
    assert all(d.detector_version == "t1" and d.grid_code == "320582110152102" for d in a)
