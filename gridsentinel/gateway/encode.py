"""Readings as the JSON of the ``gs.readings`` topic, on the gateway's hot path."""

from __future__ import annotations

import json

import msgspec

from gridsentinel.core.records import Reading

_json_str = json.JSONEncoder(ensure_ascii=True).encode


class _Numbers(msgspec.Struct, gc=False):
    """A reading's numbers, in the order and with the names of the ``Reading`` JSON's last four keys."""

    value: float
    observed_at: float
    seq: int | None
    received_at: float


_encode_numbers = msgspec.json.Encoder().encode


class ReadingEncoder:
    """Readings as JSON (the ``Reading`` schema plus the registry's kind and grid code), on the hot path.

    The string fields of a (device, metric) pair are encoded once and cached; per reading only the
    numbers are formatted (by msgspec, in C: see ``tail``).

    >>> enc = ReadingEncoder()
    >>> r = Reading("d1", "water_level", "m", 0.5, 1780000000.25, 7, 1780000000.5)
    >>> json.loads(enc.encode(r, "drain_level", "320582004001001"))["seq"]
    7
    """

    def __init__(self) -> None:
        self._heads: dict[tuple[str, str, str, str, str], bytes] = {}

    def head(self, device_id: str, metric: str, unit: str, kind: str, grid_code: str) -> bytes:
        """The JSON text of a reading up to its numbers: ``{`` and the string keys, each followed by a comma."""
        key = (device_id, metric, unit, kind, grid_code)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) > 100_000:
                self._heads.clear()
            head = self._heads[key] = (
                f'{{"device_id":{_json_str(device_id)},"metric":{_json_str(metric)},'
                f'"unit":{_json_str(unit)},"kind":{_json_str(kind)},"grid_code":{_json_str(grid_code)},').encode()
        return head

    def encode(self, r: Reading, kind: str, grid_code: str) -> bytes:
        head = self.head(r.device_id, r.metric, r.unit, kind, grid_code)
        return tail(head, float(r.value), float(r.observed_at), r.seq, float(r.received_at))


def tail(head: bytes, value: float, observed_at: float, seq: int | None, received_at: float) -> bytes:
    """A reading's JSON: its head (``ReadingEncoder.head``) and numbers. msgspec formats the numbers in C, about
    five times faster than ``repr`` in an f-string: the same shortest round-trip digits, with exponents written
    ``1e16`` and ``1e-7``, not ``1e+16`` (and ``0.00001``, not ``1e-05``): the same JSON number.

    >>> tail(b'{"device_id":"d1",', 0.5, 1780000000.25, None, 1780000000.5)
    b'{"device_id":"d1","value":0.5,"observed_at":1780000000.25,"seq":null,"received_at":1780000000.5}'
    """
    return head + _encode_numbers(_Numbers(value, observed_at, seq, received_at))[1:]


def reading_json(r: Reading, kind: str, grid_code: str) -> bytes:
    """A Reading as JSON, with the registry's kind and grid code."""
    return ReadingEncoder().encode(r, kind, grid_code)
