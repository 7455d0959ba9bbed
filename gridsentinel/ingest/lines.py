"""Readings' Kafka values (the ``Reading`` JSON) straight to InfluxDB line protocol, a batch at a time.

What the ingest consumer does per record, so it is the hot path: msgspec decodes the JSON into a typed
struct in C (unknown keys ignored, wrong types refused with the JSON path), the tag set of each
(device, metric, unit, kind, grid) is formatted once and cached, and only the numbers are formatted per
reading. A whole batch is first decoded in one call (the values joined as a JSON array); a batch with a
bad record in it is decoded again record by record, so the bad one gets its own reason.

The lines are exactly :func:`gridsentinel.ingest.influx.to_line` of the same reading (a unit test holds
the two together), so a reading written by either path is the same point.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

import msgspec

from gridsentinel.core.records import Reading

MEASUREMENT = "reading"
MAX_HEADS = 100_000  # cached tag sets; cleared when full (a fleet this size has ~10 metrics per device)


class WireReading(msgspec.Struct, gc=False):
    """The ``Reading`` JSON as the gateway writes it (``core.records.Reading``), typed for decoding.

    ``gc=False``: its fields are strings and numbers, it can be in no reference cycle, so the garbage
    collector need not track it. Tracked, the 5,000 structs of each batch set off collections that walk
    the worker's whole heap (Faust's objects included): that was most of the stage's decoding time.
    """

    device_id: str
    metric: str
    unit: str
    value: float
    observed_at: float
    seq: int | None = None
    received_at: float = 0.0
    kind: str = ""
    grid_code: str = ""


_one = msgspec.json.Decoder(WireReading)
_many = msgspec.json.Decoder(list[WireReading])


def decode_reading(value: bytes) -> WireReading:
    """One Kafka value as a reading; ``msgspec.DecodeError`` (``ValidationError`` included) when it is not one."""
    return _one.decode(value)


def escape_tag(value: str) -> str:
    r"""A tag value (or key) escaped for line protocol.

    >>> escape_tag("a b,c=d")
    'a\\ b\\,c\\=d'
    """
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def head(device_id: str, metric: str, unit: str, kind: str, grid_code: str) -> str:
    """Measurement and sorted tag set of a reading's point.

    >>> head("d1", "water_level", "m", "drain_level", "320582004001001")
    'reading,community=320582004001,device=d1,district=320582,grid=320582004001001,kind=drain_level,metric=water_level,street=320582004,unit=m'
    """
    tags = [f"device={escape_tag(device_id)}", f"metric={escape_tag(metric)}", f"unit={escape_tag(unit)}"]
    if kind:
        tags.append(f"kind={escape_tag(kind)}")
    if grid_code:
        g = grid_code
        tags += [f"grid={g}", f"district={g[:6]}", f"street={g[:9]}", f"community={g[:12]}"]
    tags.sort()  # InfluxDB recommends sorted tags for write performance
    return f"{MEASUREMENT},{','.join(tags)}"


def line(head_: str, value: float, seq: int | None, observed_at: float) -> str:
    """One point: head, fields, event time in µs.

    >>> line("reading,device=d1", 1.5, 7, 1780000000.123)
    'reading,device=d1 value=1.5,seq=7i 1780000000123000'
    """
    if seq is None:
        return f"{head_} value={value!r} {round(observed_at * 1_000_000)}"
    return f"{head_} value={value!r},seq={seq}i {round(observed_at * 1_000_000)}"


def reading_line(r: Reading) -> str:
    """A ``Reading`` as a line (the tests' and ``InfluxSink.write``'s way in)."""
    return line(head(r.device_id, r.metric, r.unit, r.kind, r.grid_code), float(r.value),
                None if r.seq is None else int(r.seq), r.observed_at)


@dataclass
class Converted:
    """A batch of Kafka values as points: ``lines[i]`` came from ``values[index[i]]``; ``bad`` holds the
    values that are no reading, each with the reason (their index in the batch, the reason)."""

    lines: list[str] = field(default_factory=list)
    index: list[int] = field(default_factory=list)
    observed_at: list[float] = field(default_factory=list)
    received_at: list[float] = field(default_factory=list)
    bad: list[tuple[int, str]] = field(default_factory=list)


class LineConverter:
    """Kafka values of ``gs.readings`` -> line protocol, with the tag sets cached."""

    def __init__(self) -> None:
        self._heads: dict[tuple[str, str, str, str, str], str] = {}

    def convert(self, values: Sequence[bytes | None]) -> Converted:
        out = Converted()
        try:
            # one C call for the batch; None (a tombstone) or any bad record sends it to the slow path
            readings: Sequence[WireReading | None] = _many.decode(b"[" + b",".join(values) + b"]")  # type: ignore[arg-type]
        except (msgspec.DecodeError, TypeError):
            readings = [self._one(value, i, out) for i, value in enumerate(values)]
        if len(readings) != len(values):  # a value holding two JSON values separated by a comma
            readings = [self._one(value, i, out) for i, value in enumerate(values)]
        heads = self._heads
        lines, index, observed, received = out.lines, out.index, out.observed_at, out.received_at
        for i, r in enumerate(readings):
            if r is None:
                continue
            value = r.value
            if not math.isfinite(value):  # msgspec refuses NaN and 1e999 already; kept as the contract
                out.bad.append((i, f"Reading.value must be finite, got {value!r}"))
                continue
            key = (r.device_id, r.metric, r.unit, r.kind, r.grid_code)
            h = heads.get(key)
            if h is None:
                if len(heads) >= MAX_HEADS:
                    heads.clear()
                h = heads[key] = head(*key)
            seq = r.seq
            observed_at = r.observed_at
            if seq is None:
                lines.append(f"{h} value={value!r} {round(observed_at * 1_000_000)}")
            else:
                lines.append(f"{h} value={value!r},seq={seq}i {round(observed_at * 1_000_000)}")
            index.append(i)
            observed.append(observed_at)
            received.append(r.received_at)
        out.bad.sort()
        return out

    @staticmethod
    def _one(value: bytes | None, i: int, out: Converted) -> WireReading | None:
        try:
            return _one.decode(value)  # type: ignore[arg-type]  # None is caught below
        except msgspec.ValidationError as exc:
            out.bad.append((i, f"Reading: {exc}"))
        except msgspec.DecodeError as exc:
            out.bad.append((i, f"Reading: not JSON ({exc})"))
        except TypeError:
            out.bad.append((i, "Reading: no value (a tombstone)"))
        return None
