"""Shared pytest setup: integration tests get the real stack, started once per session."""

from __future__ import annotations

import struct
from pathlib import Path
from typing import TYPE_CHECKING, Any

from paho.mqtt.properties import Properties

from gridsentinel.core.records import Detection

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


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 127, n >> 7
        out.append(byte | (128 if n else 0))
        if not n:
            return bytes(out)


def mqtt_publish(topic: str, payload: bytes, mid: int = 0, qos: int = 1, props: Properties | None = None,
            dup: bool = False, retain: bool = False) -> bytes:
    """A PUBLISH packet as the broker sends it (MQTT v5)."""
    t = topic.encode()
    body = struct.pack("!H", len(t)) + t
    if qos:
        body += struct.pack("!H", mid)
    body += props.pack() if props is not None else b"\x00"
    body += payload
    cmd = 0x30 | (qos << 1) | (0x08 if dup else 0) | (0x01 if retain else 0)
    return bytes([cmd]) + _varint(len(body)) + body


def api_token(database_url: str, role: str, name: str | None = None) -> str:
    """A new API user with ``role`` in the case database at ``database_url`` (migrated if needed), and the
    secret of its token: how tests get a token now that none ships (gridsentinel/api/users.py)."""
    import asyncio

    from gridsentinel.api.users import UserStore

    async def make() -> str:
        async with UserStore.open(database_url) as store:
            taken = await store.users()
            user = name or f"t-{role}-{len(taken) + 1}"
            return (await store.create_user(user, role, actor="test")).secret

    return asyncio.run(make())
