"""Readings as the JSON of the ``gs.readings`` topic, on the gateway's hot path."""

from __future__ import annotations

import json

from gridsentinel.core.records import Reading

_json_str = json.JSONEncoder(ensure_ascii=True).encode


class ReadingEncoder:
    """Readings as JSON (the ``Reading`` schema plus the registry's kind and grid code), on the hot path.

    The string fields of a (device, metric) pair are encoded once and cached; per reading only the
    numbers are formatted (``repr`` of a finite float is valid JSON).

    >>> enc = ReadingEncoder()
    >>> r = Reading("d1", "water_level", "m", 0.5, 1780000000.25, 7, 1780000000.5)
    >>> json.loads(enc.encode(r, "drain_level", "320582004001001"))["seq"]
    7
    """

    def __init__(self) -> None:
        self._heads: dict[tuple[str, str, str, str, str], str] = {}

    def head(self, device_id: str, metric: str, unit: str, kind: str, grid_code: str) -> str:
        """The JSON text of a reading up to its numbers."""
        key = (device_id, metric, unit, kind, grid_code)
        head = self._heads.get(key)
        if head is None:
            if len(self._heads) > 100_000:
                self._heads.clear()
            head = self._heads[key] = (
                f'{{"device_id":{_json_str(device_id)},"metric":{_json_str(metric)},'
                f'"unit":{_json_str(unit)},"kind":{_json_str(kind)},"grid_code":{_json_str(grid_code)},')
        return head

    def encode(self, r: Reading, kind: str, grid_code: str) -> bytes:
        head = self.head(r.device_id, r.metric, r.unit, kind, grid_code)
        return tail(head, float(r.value), float(r.observed_at), r.seq, float(r.received_at))


def tail(head: str, value: float, observed_at: float, seq: int | None, received_at: float) -> bytes:
    """A reading's JSON: its head (``ReadingEncoder.head``) and numbers (``repr`` of a finite float is JSON)."""
    seq_text = "null" if seq is None else int(seq)
    return (f'{head}"value":{value!r},"observed_at":{observed_at!r},"seq":{seq_text},'
            f'"received_at":{received_at!r}}}').encode()


def reading_json(r: Reading, kind: str, grid_code: str) -> bytes:
    """A Reading as JSON, with the registry's kind and grid code."""
    return ReadingEncoder().encode(r, kind, grid_code)
