"""What a dead letter keeps of a rejected message: never a camera frame's pixels."""

from __future__ import annotations

import base64
import hashlib

from gridsentinel.core.records import DeadLetter
from gridsentinel.gateway.accept import DEADLETTER_KEEP_BYTES, dead_letter
from gridsentinel.gateway.decode import Rejection

NOW = 1_780_000_000.0
JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 40 + b"\xff\xd9"


def test_a_rejected_frame_keeps_reason_size_and_hash_but_no_pixels() -> None:
    why = Rejection("timestamp_future", "ts is 3600 s ahead of the gateway's clock")
    letter = DeadLetter.from_json(dead_letter("gs/v1/cam-1/frame", JPEG, NOW, why, "cam-1").to_json())
    assert letter.payload_b64 == ""
    assert letter.payload_bytes == len(JPEG)
    assert letter.payload_sha256 == hashlib.sha256(JPEG).hexdigest()
    assert (letter.reason, letter.device_id, letter.origin) == ("timestamp_future", "cam-1", "gs/v1/cam-1/frame")


def test_a_frame_from_an_unknown_device_keeps_no_pixels_either() -> None:
    letter = dead_letter("gs/v1/stranger/frame", JPEG, NOW, Rejection("unknown_device", "not registered"))
    assert letter.payload_b64 == "" and letter.payload_bytes == len(JPEG)


def test_telemetry_is_kept_whole_and_an_oversize_one_truncated_with_its_size_and_hash() -> None:
    small = b'{"ts": 1, "metrics": {'
    letter = dead_letter("gs/v1/d1/telemetry", small, NOW, Rejection("malformed_json", "x"), "d1")
    assert base64.b64decode(letter.payload_b64) == small and letter.payload_bytes is None
    big = b"x" * (DEADLETTER_KEEP_BYTES + 10)
    letter = dead_letter("gs/v1/d1/telemetry", big, NOW, Rejection("oversize", "too big"), "d1")
    assert base64.b64decode(letter.payload_b64) == big[:DEADLETTER_KEEP_BYTES]
    assert letter.payload_bytes == len(big) and letter.payload_sha256 == hashlib.sha256(big).hexdigest()
