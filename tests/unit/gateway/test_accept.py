"""What the gateway makes of one MQTT message (``Acceptor.accept``): records, or a rejection and its dead
letter. Pure: the clock is the ``now`` passed in, and no broker is needed."""

from __future__ import annotations

import base64
import json

import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridsentinel.core.devices import Device, Location, Registry
from gridsentinel.core.records import DeadLetter, DeviceStatus, Frame
from gridsentinel.core.topics import Topics
from gridsentinel.gateway.accept import Accepted, Acceptor, Rejected
from gridsentinel.gateway.decode import REASONS

pytestmark = pytest.mark.unit

NOW = 1_780_000_000.0
CELL = "320582004001001"
TOPICS = Topics("t.")
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4 + b"\xff\xd9"


def registry() -> Registry:
    where = Location(lat=31.0, lon=120.0)
    return Registry([Device(id="drain-1", kind="drain_level", location=where, grid_code=CELL),
                     Device(id="rain-1", kind="rain_gauge", location=where),
                     Device(id="cam-1", kind="camera", location=where, grid_code=CELL)])


def acceptor(fast: bool = True) -> Acceptor:
    return Acceptor(registry(), TOPICS, fast=fast)


def telemetry(ts: object = NOW - 1, seq: int | None = 5, **metrics: object) -> bytes:
    body: dict[str, object] = {"ts": ts, "metrics": metrics or {"water_level_m": 0.5}}
    if seq is not None:
        body["seq"] = seq
    return json.dumps(body).encode()


def props(content_type: str | None = None, **user: str) -> Properties:
    p = Properties(PacketTypes.PUBLISH)
    if content_type:
        p.ContentType = content_type
    if user:
        p.UserProperty = list(user.items())
    return p


def accepted(result: Accepted | Rejected) -> Accepted:
    assert isinstance(result, Accepted), result
    return result


def rejected(result: Accepted | Rejected) -> Rejected:
    assert isinstance(result, Rejected), result
    return result


def test_plain_telemetry_becomes_one_reading_per_metric_keyed_by_device() -> None:
    result = accepted(acceptor().accept(b"gs/v1/drain-1/telemetry", telemetry(water_level_m=0.5, battery_v=3.6),
                                        None, NOW))
    assert result.origin == "gs/v1/drain-1/telemetry" and result.seq == ("drain-1", 5)
    assert [(topic, key, headers) for topic, key, _, headers in result.records] == [
        ("t.gs.readings", "drain-1", None)] * 2
    first = json.loads(result.records[0][2])
    assert first == {"device_id": "drain-1", "metric": "water_level", "unit": "m", "kind": "drain_level",
                     "grid_code": CELL, "value": 0.5, "observed_at": NOW - 1, "seq": 5, "received_at": NOW}
    assert json.loads(result.records[1][2])["metric"] == "battery"


@pytest.mark.parametrize("payload", [
    telemetry(), telemetry(seq=None), telemetry(water_level_m=1, battery_v=3.6),
    telemetry(ts="2026-05-28T20:26:39Z"),  # RFC 3339: the general decoder
    b'{"seq": 9, "metrics": {"water_level_m": 2.5}, "ts": 1779999990.5}',
])
def test_the_fast_decoder_makes_the_records_of_the_general_one(payload: bytes) -> None:
    now = 1_780_000_000.25
    for topic in (b"gs/v1/drain-1/telemetry", "gs/v1/drain-1/telemetry"):
        fast = accepted(acceptor().accept(topic, payload, None, now))
        general = accepted(acceptor(fast=False).accept(topic, payload, None, now))
        assert (fast.origin, fast.records, fast.seq) == (general.origin, general.records, general.seq)


def test_senml_is_decoded_by_shape_or_by_content_type_with_units_converted() -> None:
    pack = b'[{"bn": "drain-1:", "n": "water_level", "u": "cm", "v": 120}]'
    result = accepted(acceptor().accept("gs/v1/drain-1/telemetry", pack, None, NOW))
    assert json.loads(result.records[0][2])["value"] == 1.2 and result.seq is None
    # Declared SenML, a JSON object is not a pack: the fast decoder must not take it.
    why = rejected(acceptor().accept("gs/v1/drain-1/telemetry", telemetry(), props("application/senml+json"), NOW))
    assert why.reason == "bad_senml"


def test_a_repeated_seq_is_a_duplicate_but_a_broker_resend_is_produced_again() -> None:
    acc = acceptor()
    accepted(acc.accept(b"gs/v1/drain-1/telemetry", telemetry(seq=7), None, NOW))
    dup = rejected(acc.accept(b"gs/v1/drain-1/telemetry", telemetry(seq=7), None, NOW))
    assert (dup.reason, dup.device_id, dup.why.detail) == ("duplicate_seq", "drain-1",
                                                           "seq 7 from drain-1 was already accepted")
    accepted(acc.accept(b"gs/v1/drain-1/telemetry", telemetry(seq=7), None, NOW, dup=True))
    # The general decoder checks the same window.
    assert rejected(acc.accept("gs/v1/drain-1/telemetry", telemetry(ts="2026-05-28T20:26:39Z", seq=7),
                               None, NOW)).reason == "duplicate_seq"
    acc.forget_seq("drain-1", 7)  # Kafka failed its record: the broker's resend is no duplicate
    accepted(acc.accept(b"gs/v1/drain-1/telemetry", telemetry(seq=7), None, NOW))


def test_a_frame_of_a_camera_becomes_one_record_with_its_metadata_in_headers() -> None:
    result = accepted(acceptor().accept("gs/v1/cam-1/frame", JPEG, props(ts=str(NOW - 2), seq="3"), NOW))
    ((topic, key, value, headers),) = result.records
    assert (topic, key, value) == ("t.gs.frames", "cam-1", JPEG)
    frame = Frame.from_kafka(key, value, headers)
    assert (frame.observed_at, frame.seq, frame.received_at, frame.grid_code) == (NOW - 2, 3, NOW, CELL)


def test_status_becomes_a_device_status_record() -> None:
    result = accepted(acceptor().accept(b"gs/v1/rain-1/status", b" Online\n", None, NOW))
    ((topic, key, value, _),) = result.records
    assert (topic, key) == ("t.gs.device-status", "rain-1")
    assert DeviceStatus.from_json(value) == DeviceStatus(device_id="rain-1", status="online", received_at=NOW)


@pytest.mark.parametrize(("topic", "payload", "properties", "reason", "device_id"), [
    ("gs/v1/drain-1/humidity", telemetry(), None, "bad_topic", None),
    ("gs/v2/drain-1/telemetry", telemetry(), None, "bad_topic", None),
    (b"gs/v1/\xff/telemetry", telemetry(), None, "unknown_device", "\ufffd"),
    ("gs/v1/stranger/telemetry", telemetry(), None, "unknown_device", "stranger"),
    ("gs/v1/drain-1/telemetry", b'{"ts": 1, "metrics": {', None, "malformed_json", "drain-1"),
    ("gs/v1/drain-1/telemetry", b'{"ts": 1780000000, "metrics": {"water_level_m": NaN}}', None, "not_finite",
     "drain-1"),
    ("gs/v1/drain-1/telemetry", telemetry(water_level_m="high"), None, "wrong_type", "drain-1"),
    ("gs/v1/drain-1/telemetry", json.dumps({"ts": NOW}).encode(), None, "missing_field", "drain-1"),
    ("gs/v1/drain-1/telemetry", b"[]", None, "bad_senml", "drain-1"),
    ("gs/v1/drain-1/telemetry", telemetry(flux_capacitance=1.21), None, "unknown_metric", "drain-1"),
    ("gs/v1/drain-1/telemetry", b'[{"n": "water_level", "u": "kg", "v": 1}]', None, "bad_unit", "drain-1"),
    ("gs/v1/drain-1/telemetry", telemetry(water_level_m=999.0), None, "out_of_range", "drain-1"),
    ("gs/v1/drain-1/telemetry", b'{"pad": "' + b"x" * (70 * 1024) + b'"}', None, "oversize", "drain-1"),
    ("gs/v1/drain-1/telemetry", telemetry(ts=NOW + 3600), None, "timestamp_future", "drain-1"),
    ("gs/v1/drain-1/telemetry", telemetry(ts=NOW - 30 * 86400), None, "timestamp_too_old", "drain-1"),
    ("gs/v1/drain-1/telemetry", telemetry(ts="yesterday"), None, "bad_timestamp", "drain-1"),
    ("gs/v1/drain-1/frame", JPEG, props(ts=str(NOW)), "wrong_device_kind", "drain-1"),
    ("gs/v1/cam-1/frame", b"GIF89a", props(ts=str(NOW)), "not_jpeg", "cam-1"),
    ("gs/v1/cam-1/frame", JPEG, None, "missing_field", "cam-1"),
    ("gs/v1/cam-1/frame", JPEG, props(ts=str(NOW), seq="x"), "wrong_type", "cam-1"),
    ("gs/v1/rain-1/status", b"sleepy", None, "bad_status", "rain-1"),
])
def test_bad_input_is_rejected_with_its_reason_and_dead_lettered(topic: bytes | str, payload: bytes,
                                                                 properties: Properties | None, reason: str,
                                                                 device_id: str | None) -> None:
    for fast in (True, False):
        why = rejected(acceptor(fast).accept(topic, payload, properties, NOW))
        assert why.reason == reason and reason in REASONS
        assert why.device_id == device_id and why.seq is None
        ((dl_topic, key, value, headers),) = why.records
        assert (dl_topic, key, headers) == ("t.gs.deadletter", device_id or "", None)
        letter = DeadLetter.from_json(value)
        origin = topic if isinstance(topic, str) else topic.decode("utf-8", "replace")
        assert (letter.reason, letter.detail, letter.origin, letter.received_at, letter.device_id) == (
            reason, why.why.detail, origin, NOW, device_id)
        if origin.endswith("/frame"):
            assert letter.payload_b64 == "" and letter.payload_bytes == len(payload)  # never a frame's pixels
        elif len(payload) < 64 * 1024:
            assert base64.b64decode(letter.payload_b64) == payload


def test_a_rejected_message_leaves_no_seq_behind() -> None:
    acc = acceptor()
    rejected(acc.accept(b"gs/v1/drain-1/telemetry", telemetry(seq=3, water_level_m=999.0), None, NOW))
    accepted(acc.accept(b"gs/v1/drain-1/telemetry", telemetry(seq=3), None, NOW))


def test_the_time_is_the_one_passed_in() -> None:
    acc = acceptor()
    for now in (NOW, NOW + 10.5):
        result = accepted(acc.accept(b"gs/v1/drain-1/telemetry", telemetry(seq=None), None, now))
        assert json.loads(result.records[0][2])["received_at"] == now
    assert rejected(acc.accept(b"gs/v1/drain-1/telemetry", telemetry(ts=NOW + 1000), None, NOW)).reason == \
        "timestamp_future"
    accepted(acc.accept(b"gs/v1/drain-1/telemetry", telemetry(ts=NOW + 1000, seq=None), None, NOW + 1000))
