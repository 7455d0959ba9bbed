"""Decoding device payloads: the JSON contract, SenML resolution rules, frames, and every rejection."""

from __future__ import annotations

import json

import pytest

from gridsentinel.gateway.decode import (
    Limits,
    Rejection,
    SeqWindow,
    decode_frame,
    decode_status,
    decode_telemetry,
)

pytestmark = pytest.mark.unit

NOW = 1_780_000_000.0
LIMITS = Limits()


def tele(obj: object) -> list | Rejection:  # type: ignore[type-arg]
    return decode_telemetry("dev-1", json.dumps(obj).encode(), NOW, LIMITS)


def test_json_contract_epoch_and_rfc3339() -> None:
    out = tele({"ts": NOW - 10, "seq": 7, "metrics": {"water_level_m": 1.25, "battery_v": 3.6}})
    assert not isinstance(out, Rejection)
    assert [(r.metric, r.unit, r.value, r.observed_at, r.seq) for r in out] == [
        ("water_level", "m", 1.25, NOW - 10, 7), ("battery", "V", 3.6, NOW - 10, 7)]
    out = tele({"ts": "2026-05-28T20:26:30Z", "metrics": {"tilt_deg": 3}})
    assert not isinstance(out, Rejection) and out[0].observed_at == 1780000000 - 10 and out[0].seq is None


@pytest.mark.parametrize("payload, reason", [
    (b"{not json", "malformed_json"),
    (b"\xff\xfe", "malformed_json"),
    (b'{"ts": 1780000000, "metrics": {"water_level_m": NaN}}', "not_finite"),
    (b'{"ts": 1780000000, "metrics": {"water_level_m": Infinity}}', "not_finite"),
    (b'{"metrics": {"water_level_m": 1}}', "missing_field"),
    (b'{"ts": 1780000000}', "missing_field"),
    (b'{"ts": 1780000000, "metrics": {}}', "missing_field"),
    (b'{"ts": 1780000000, "metrics": {"water_level_m": "1.2"}}', "wrong_type"),
    (b'{"ts": 1780000000, "metrics": {"water_level_m": true}}', "wrong_type"),
    (b'{"ts": 1780000000, "metrics": [1]}', "wrong_type"),
    (b'{"ts": 1780000000, "seq": -1, "metrics": {"water_level_m": 1}}', "wrong_type"),
    (b'{"ts": 1780000000, "seq": "3", "metrics": {"water_level_m": 1}}', "wrong_type"),
    (b'{"ts": "yesterday", "metrics": {"water_level_m": 1}}', "bad_timestamp"),
    (b'{"ts": "2026-05-28T20:26:30", "metrics": {"water_level_m": 1}}', "bad_timestamp"),
    (b'{"ts": 1780009999, "metrics": {"water_level_m": 1}}', "timestamp_future"),
    (b'{"ts": 1000000000, "metrics": {"water_level_m": 1}}', "timestamp_too_old"),
    (b'{"ts": 1780000000, "metrics": {"voltage": 1}}', "unknown_metric"),
    (b'{"ts": 1780000000, "metrics": {"water_level_m": 99999}}', "out_of_range"),
    (b'"hello"', "wrong_type"),
    (b'{"ts": 1780000000, "metrics": {"water_level_m": 1' + b"0" * 400 + b"}}", "out_of_range"),
    (b'{"ts": 1' + b"0" * 400 + b', "metrics": {"water_level_m": 1}}', "out_of_range"),
    (b'{"ts": 1780000000, "seq": 9223372036854775808, "metrics": {"water_level_m": 1}}', "out_of_range"),
])
def test_json_rejections(payload: bytes, reason: str) -> None:
    out = decode_telemetry("dev-1", payload, NOW, LIMITS)
    assert isinstance(out, Rejection), out
    assert out.reason == reason, out.detail
    assert out.detail


def test_oversize_payload() -> None:
    out = decode_telemetry("d", b"{" + b" " * 70000 + b"}", NOW, LIMITS)
    assert isinstance(out, Rejection) and out.reason == "oversize"


def test_senml_base_fields_and_relative_time() -> None:
    pack = [
        {"bn": "urn:dev:gs:dev-1:", "bt": NOW - 60, "bu": "m", "n": "water_level", "v": 1.0},
        {"n": "water_level", "t": 30, "v": 1.5},
        {"n": "water_level", "u": "cm", "t": 45, "v": 170},
        {"bn": "", "bt": -5, "n": "tilt", "u": "deg", "v": 2.0},  # bt < 2**28: relative to now
    ]
    out = decode_telemetry("dev-1", json.dumps(pack).encode(), NOW, LIMITS)
    assert not isinstance(out, Rejection), out
    assert [(r.metric, r.value, r.observed_at) for r in out] == [
        ("water_level", 1.0, NOW - 60), ("water_level", 1.5, NOW - 30), ("water_level", 1.7, NOW - 15),
        ("tilt", 2.0, NOW - 5)]


def test_senml_base_value_is_added() -> None:
    out = decode_telemetry("d", json.dumps([{"bv": 10, "n": "laeq", "u": "dB", "v": 45}]).encode(), NOW, LIMITS)
    assert not isinstance(out, Rejection) and out[0].value == 55


def test_senml_by_content_type_object_is_rejected() -> None:
    out = decode_telemetry("d", b'{"n": "tilt", "v": 1}', NOW, LIMITS, "application/senml+json")
    assert isinstance(out, Rejection) and out.reason == "bad_senml"


@pytest.mark.parametrize("pack, reason", [
    ([], "bad_senml"),
    ([1, 2], "bad_senml"),
    ([{"n": "tilt", "v": 1, "vs": "x"}], "bad_senml"),  # two value fields
    ([{"n": "tilt"}], "bad_senml"),  # no value
    ([{"n": "tilt", "v": 1, "foo_": 1}], "bad_senml"),  # must-understand label
    ([{"bn": 5, "n": "tilt", "v": 1}], "bad_senml"),
    ([{"n": "tilt", "vs": "up"}], "wrong_type"),
    ([{"n": "tilt", "u": "furlong", "v": 1}], "bad_unit"),
    ([{"n": "speed", "u": "m/s", "v": 1}], "unknown_metric"),
    ([{"n": "tilt", "t": 10_000, "v": 1}], "timestamp_future"),
    ([{"bt": "now", "n": "tilt", "v": 1}], "bad_senml"),
])
def test_senml_rejections(pack: object, reason: str) -> None:
    out = decode_telemetry("d", json.dumps(pack).encode(), NOW, LIMITS)
    assert isinstance(out, Rejection) and out.reason == reason, out


JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 100 + b"\xff\xd9"


def test_frame_ok_and_rejections() -> None:
    frame = decode_frame("cam", JPEG, {"ts": str(NOW - 1), "seq": "4"}, NOW, LIMITS)
    assert not isinstance(frame, Rejection) and frame.seq == 4 and frame.observed_at == NOW - 1
    assert decode_frame("cam", b"\x89PNG....", {"ts": str(NOW)}, NOW, LIMITS).reason == "not_jpeg"  # type: ignore[union-attr]
    assert decode_frame("cam", JPEG[:-2], {"ts": str(NOW)}, NOW, LIMITS).reason == "not_jpeg"  # type: ignore[union-attr]
    assert decode_frame("cam", JPEG, {}, NOW, LIMITS).reason == "missing_field"  # type: ignore[union-attr]
    small = Limits(max_frame_bytes=50)
    assert decode_frame("cam", JPEG, {"ts": str(NOW)}, NOW, small).reason == "oversize"  # type: ignore[union-attr]
    assert decode_frame("cam", JPEG, {"ts": str(NOW), "seq": "x"}, NOW, LIMITS).reason == "wrong_type"  # type: ignore[union-attr]


def test_status_and_seq_window() -> None:
    assert decode_status(b"online") == "online"
    assert isinstance(decode_status(b"maybe"), Rejection)
    window = SeqWindow(size=2)
    assert not window.seen("d", 1) and window.seen("d", 1)
    window.forget("d", 1)
    assert not window.seen("d", 1)
    window.seen("d", 2)
    window.seen("d", 3)  # evicts 1
    assert not window.seen("d", 1)
