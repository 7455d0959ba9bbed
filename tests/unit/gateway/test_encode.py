"""The readings' JSON (gateway/encode.py): msgspec formats the numbers; every float must come back exactly."""

from __future__ import annotations

import json
import random
import struct

import pytest

from gridsentinel.core.records import Reading
from gridsentinel.gateway.encode import ReadingEncoder, tail

pytestmark = pytest.mark.unit


def _floats(n: int) -> list[float]:
    """Finite floats of every size: random bit patterns, device-like values, times, small and huge ones."""
    rnd = random.Random(15)
    out = [0.0, -0.0, 1e-05, 2.5e-05, 1.5e-07, 1e16, -1e22, 5e-324, 1.7976931348623157e308, 0.1, 1780000000.123]
    while len(out) < n:
        x = struct.unpack("<d", rnd.randbytes(8))[0]
        if x == x and abs(x) != float("inf"):
            out += [x, rnd.uniform(-1.0, 50.0), round(rnd.uniform(0, 10), 3), rnd.uniform(1.7e9, 1.9e9)]
    return out


def test_every_number_reads_back_exactly_in_the_readings_json() -> None:
    head = ReadingEncoder().head("d-1", "water_level", "m", "drain_level", "320582004001001")
    values = _floats(4000)
    for i, value in enumerate(values):
        seq = None if i % 7 == 0 else i
        record = json.loads(tail(head, value, values[-1 - i], seq, 1780000000.5 + i))
        assert (record["value"], record["observed_at"], record["seq"], record["received_at"]) == \
            (value, values[-1 - i], seq, 1780000000.5 + i)
        assert list(record) == ["device_id", "metric", "unit", "kind", "grid_code", "value", "observed_at", "seq",
                                "received_at"]


def test_the_encoder_writes_the_reading_with_the_registrys_kind_and_grid() -> None:
    reading = Reading("d\"1", "water_level", "m", 0.000025, 1780000000.25, 7, 1780000000.5)
    record = json.loads(ReadingEncoder().encode(reading, "drain_level", "320582004001001"))
    assert record == {"device_id": "d\"1", "metric": "water_level", "unit": "m", "kind": "drain_level",
                      "grid_code": "320582004001001", "value": 0.000025, "observed_at": 1780000000.25, "seq": 7,
                      "received_at": 1780000000.5}
