"""The event records every stage shares (the contracts of docs/design.md).

Plain frozen dataclasses, so pure code (detectors, case rules) can use them without importing Faust or
Kafka. Times are Unix seconds (float, UTC); event time always comes from the device.
"""

from __future__ import annotations

import copy
import json
import math
from dataclasses import Field, asdict, dataclass, field, fields, is_dataclass
from typing import Any, ClassVar, Literal, Self

Source = Literal["sensor", "camera", "citizen", "inspector", "hotline"]
SOURCES: tuple[str, ...] = ("sensor", "camera", "citizen", "inspector", "hotline")

# Ordered from least to most urgent; compare with SEVERITIES.index().
Severity = Literal["advisory", "warning", "alarm", "critical"]
SEVERITIES: tuple[str, ...] = ("advisory", "warning", "alarm", "critical")


class RecordError(ValueError):
    """A serialized record does not match its schema."""


_FIELD_NAMES: dict[type, frozenset[str]] = {}


def _field_names(cls: type) -> frozenset[str]:
    """A record class's field names, computed once (``dataclasses.fields`` is slow per decode)."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = frozenset(f.name for f in fields(cls))
    return names


_ATOMS = frozenset({str, int, float, bool, type(None)})


def plain(value: Any) -> Any:
    """``asdict``'s copy of a field value, without its per-value ``deepcopy`` for the strings, numbers,
    dicts, lists and tuples records hold (the hot path: a detection is copied into every row it touches).

    >>> evidence = {"fill": [0.5, {"n": 1}], "at": (1, 2), "ok": None}
    >>> copied = plain(evidence); copied == evidence, copied["fill"][1] is evidence["fill"][1]
    (True, False)
    """
    kind = type(value)
    if kind in _ATOMS:
        return value
    if kind is dict:
        return {plain(k): plain(v) for k, v in value.items()}
    if kind is list:
        return [plain(v) for v in value]
    if kind is tuple:
        return tuple(plain(v) for v in value)
    if is_dataclass(value) and not isinstance(value, type):
        return asdict(value)
    return copy.deepcopy(value)


_FIELD_ORDER: dict[type, tuple[str, ...]] = {}


def plain_fields(record: Any) -> dict[str, Any]:
    """A dataclass instance as ``asdict`` gives it (fields in order, values copied), faster: see :func:`plain`."""
    cls = type(record)
    names = _FIELD_ORDER.get(cls)
    if names is None:
        names = _FIELD_ORDER[cls] = tuple(f.name for f in fields(cls))
    return {name: plain(getattr(record, name)) for name in names}


class _Record:
    """JSON round trip shared by the records below."""

    _required: ClassVar[tuple[str, ...]] = ()
    # Set by @dataclass on every subclass; declared so that asdict() and fields() type-check here.
    __dataclass_fields__: ClassVar[dict[str, Field[Any]]]

    def to_dict(self) -> dict[str, Any]:
        return plain_fields(self)

    def to_json(self) -> bytes:
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False).encode()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        if not isinstance(data, dict):
            raise RecordError(f"{cls.__name__}: expected an object, got {type(data).__name__}")
        names = _field_names(cls)
        missing = [n for n in cls._required if n not in data]
        if missing:
            raise RecordError(f"{cls.__name__}: missing field(s) {', '.join(missing)}")
        if data.keys() <= names:  # the usual case: no unknown keys to drop
            return cls(**data)
        return cls(**{k: v for k, v in data.items() if k in names})

    @classmethod
    def from_json(cls, raw: bytes | str) -> Self:
        try:
            data = json.loads(raw)
        except ValueError as exc:
            raise RecordError(f"{cls.__name__}: not JSON ({exc})") from exc
        return cls.from_dict(data)


@dataclass(frozen=True, slots=True)
class Reading(_Record):
    """One normalized sensor value: what the gateway produces to ``gs.readings`` (key: device id)."""

    device_id: str
    metric: str  # canonical metric name, e.g. "water_level"
    unit: str  # SenML unit symbol, e.g. "m", "Cel", "deg", "dB"
    value: float
    observed_at: float  # event time from the device, Unix seconds
    seq: int | None = None
    received_at: float = 0.0  # when the gateway accepted it, Unix seconds
    kind: str = ""  # device kind from the registry, e.g. "drain_level"
    grid_code: str = ""  # 15-digit unit-grid code

    _required: ClassVar[tuple[str, ...]] = ("device_id", "metric", "unit", "value", "observed_at")

    def __post_init__(self) -> None:
        if not isinstance(self.value, (int, float)) or isinstance(self.value, bool):
            raise RecordError(f"Reading.value must be a number, got {self.value!r}")
        if not math.isfinite(self.value):
            raise RecordError(f"Reading.value must be finite, got {self.value!r}")


@dataclass(frozen=True, slots=True)
class Frame:
    """One camera frame on ``gs.frames`` (key: camera id). The JPEG travels as the Kafka value and the
    metadata as headers, so a frame is never base64-inflated."""

    camera_id: str
    observed_at: float
    seq: int | None
    jpeg: bytes
    received_at: float = 0.0
    grid_code: str = ""

    def headers(self) -> list[tuple[str, bytes]]:
        meta = {"ts": self.observed_at, "seq": self.seq, "received_at": self.received_at,
                "grid_code": self.grid_code}
        return [("gs-frame", json.dumps(meta).encode())]

    @classmethod
    def from_kafka(cls, key: bytes | str, value: bytes, headers: list[tuple[str, bytes]] | None) -> Frame:
        meta: dict[str, Any] = {}
        for name, raw in headers or []:
            if name == "gs-frame":
                meta = json.loads(raw)
        if "ts" not in meta:
            raise RecordError("Frame: missing gs-frame header with ts")
        camera = key.decode() if isinstance(key, bytes) else key
        return cls(camera_id=camera, observed_at=float(meta["ts"]), seq=meta.get("seq"), jpeg=value,
                   received_at=float(meta.get("received_at") or 0.0), grid_code=meta.get("grid_code") or "")


@dataclass(frozen=True, slots=True)
class DeviceStatus(_Record):
    """``online`` / ``offline`` from a device's retained status topic or its last will."""

    device_id: str
    status: Literal["online", "offline"]
    received_at: float

    _required: ClassVar[tuple[str, ...]] = ("device_id", "status", "received_at")


@dataclass(frozen=True, slots=True)
class Detection(_Record):
    """What every detector emits to ``gs.detections`` (key: dedup region).

    ``detection_id`` is deterministic (same input, same id) so replays are idempotent.
    """

    detection_id: str
    source: str  # one of SOURCES
    detector: str  # detector name
    detector_version: str  # config version the detector ran with
    kind: str  # e.g. "drain_overflow", "cover_tilt", "camera_tamper"
    category_code: str  # component/event code
    category_standard: str  # the standard the code belongs to, e.g. "GB/T 30428.2-2013"
    severity: str  # one of SEVERITIES
    grid_code: str
    observed_at: float  # event time, Unix seconds
    device_id: str | None = None
    lat: float | None = None
    lon: float | None = None
    value: float | None = None
    score: float | None = None
    evidence: dict[str, Any] = field(default_factory=dict)
    message: str = ""  # English
    messages: dict[str, str] = field(default_factory=dict)  # the message in other languages: {"zh-CN": ...}

    _required: ClassVar[tuple[str, ...]] = (
        "detection_id", "source", "detector", "detector_version", "kind", "category_code",
        "category_standard", "severity", "grid_code", "observed_at",
    )

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise RecordError(f"Detection.source must be one of {SOURCES}, got {self.source!r}")
        if self.severity not in SEVERITIES:
            raise RecordError(f"Detection.severity must be one of {SEVERITIES}, got {self.severity!r}")


@dataclass(frozen=True, slots=True)
class DeadLetter(_Record):
    """Anything the system could not accept, with the reason; raw payload kept (base64 when binary)."""

    reason: str  # a stable reason code, e.g. "malformed_json", "unknown_device"
    detail: str  # a human sentence: what was wrong and what was expected
    origin: str  # where it came from: an MQTT topic or a Kafka topic
    received_at: float
    payload_b64: str  # raw bytes, base64 ("" for a camera frame: its pixels are never kept)
    device_id: str | None = None
    payload_bytes: int | None = None  # the raw payload's size, when payload_b64 does not hold all of it
    payload_sha256: str | None = None  # and its hash (hex), to match it with the device's own copy

    _required: ClassVar[tuple[str, ...]] = ("reason", "detail", "origin", "received_at", "payload_b64")
