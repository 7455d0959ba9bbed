"""Decoding device payloads into records — pure: no I/O, the clock is passed in.

Bad input is data, not an exception: every decoder returns either records or a ``Rejection`` with a
stable reason code and a sentence saying what was wrong and what was expected.
"""

from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import msgspec

from gridsentinel.core.metrics import JSON_KEYS, METRICS, Metric, convert
from gridsentinel.core.records import Frame, Reading

SENML_RELATIVE_LIMIT = 2**28
MAX_SEQ = 2**63 - 1  # stored as an InfluxDB integer field  # RFC 8428: times below this are relative to now
JPEG_MAGIC = b"\xff\xd8\xff"
JPEG_END = b"\xff\xd9"

REASONS = (
    "malformed_json", "wrong_type", "not_finite", "missing_field", "bad_senml", "unknown_metric",
    "bad_unit", "out_of_range", "oversize", "not_jpeg", "unknown_device", "wrong_device_kind",
    "timestamp_future", "timestamp_too_old", "bad_timestamp", "duplicate_seq", "bad_topic", "bad_status",
    "device_retired",  # retired on the registry's change feed (gs.devices): the detail says when
    "kafka_refused",  # not the device's input as such: Kafka refused its record for good (e.g. too big for the topic)
)


@dataclass(frozen=True, slots=True)
class Rejection:
    reason: str  # one of REASONS
    detail: str


@dataclass(frozen=True, slots=True)
class Limits:
    max_payload_bytes: int = 64 * 1024
    max_frame_bytes: int = 2 * 1024 * 1024
    max_future_s: float = 300.0
    max_age_s: float = 7 * 86400.0


def parse_time(value: Any, now: float) -> float | Rejection:
    """RFC 3339 string or epoch seconds -> epoch seconds."""
    if isinstance(value, bool):
        return Rejection("wrong_type", f"ts must be RFC 3339 text or epoch seconds, got {value!r}")
    if isinstance(value, (int, float)):
        return _number("ts", value)
    if isinstance(value, str):
        text = value.strip()
        if text.endswith(("Z", "z")):
            text = text[:-1] + "+00:00"
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return Rejection("bad_timestamp", f"ts {value!r} is not RFC 3339 (e.g. 2026-11-27T02:00:00Z)")
        if parsed.tzinfo is None:
            return Rejection("bad_timestamp", f"ts {value!r} has no UTC offset; RFC 3339 requires one")
        return parsed.timestamp()
    return Rejection("wrong_type", f"ts must be RFC 3339 text or epoch seconds, got {type(value).__name__}")


def check_time(ts: float, now: float, limits: Limits) -> Rejection | None:
    if ts > now + limits.max_future_s:
        return Rejection("timestamp_future", f"event time {ts:.3f} is {ts - now:.0f}s in the future "
                         f"(limit {limits.max_future_s:.0f}s); check the device clock")
    if ts < now - limits.max_age_s:
        return Rejection("timestamp_too_old", f"event time {ts:.3f} is {now - ts:.0f}s old "
                         f"(limit {limits.max_age_s:.0f}s)")
    return None


def _number(name: str, value: Any) -> float | Rejection:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return Rejection("wrong_type", f"{name} must be a number, got {value!r}")
    try:
        number = float(value)  # an int beyond the float range overflows here
    except OverflowError:
        return Rejection("out_of_range", f"{name} is an integer of {len(str(value))} digits, beyond any "
                         "float")
    if not math.isfinite(number):
        return Rejection("not_finite", f"{name} must be finite, got {value!r}")
    return number


def _loads(payload: bytes) -> Any | Rejection:
    try:
        # json.loads accepts NaN/Infinity literals; refuse them here so they are named as such.
        return json.loads(payload, parse_constant=_reject_constant)
    except _NonFinite as exc:
        return Rejection("not_finite", f"JSON contains {exc.args[0]}; values must be finite numbers")
    except (ValueError, UnicodeDecodeError) as exc:
        return Rejection("malformed_json", f"payload is not valid UTF-8 JSON: {exc}")


class _NonFinite(ValueError):
    pass


def _reject_constant(name: str) -> float:
    raise _NonFinite(name)


def decode_telemetry(device_id: str, payload: bytes, now: float, limits: Limits,
                     content_type: str | None = None) -> list[Reading] | Rejection:
    """A telemetry payload (the JSON contract or a SenML pack) -> readings, all or nothing."""
    if len(payload) > limits.max_payload_bytes:
        return Rejection("oversize", f"telemetry payload is {len(payload)} bytes; limit "
                         f"{limits.max_payload_bytes}")
    data = _loads(payload)
    if isinstance(data, Rejection):
        return data
    if isinstance(data, list) or (content_type or "").startswith("application/senml"):
        return decode_senml(device_id, data, now, limits)
    if not isinstance(data, dict):
        return Rejection("wrong_type", f"telemetry must be a JSON object or a SenML array, got "
                         f"{type(data).__name__}")
    for name in ("ts", "metrics"):
        if name not in data:
            return Rejection("missing_field", f"telemetry lacks {name!r}; expected "
                             '{"ts": ..., "seq": ..., "metrics": {...}}')
    ts = parse_time(data["ts"], now)
    if isinstance(ts, Rejection):
        return ts
    late = check_time(ts, now, limits)
    if late:
        return late
    seq = data.get("seq")
    if seq is not None and (isinstance(seq, bool) or not isinstance(seq, int) or seq < 0):
        return Rejection("wrong_type", f"seq must be a non-negative integer, got {seq!r}")
    if seq is not None and seq > MAX_SEQ:
        return Rejection("out_of_range", f"seq {seq} is beyond {MAX_SEQ} (a 64-bit signed integer)")
    metrics = data["metrics"]
    if not isinstance(metrics, dict) or not metrics:
        return Rejection("wrong_type" if not isinstance(metrics, dict) else "missing_field",
                         "metrics must be a non-empty object of name -> number")
    readings = []
    for key, raw in metrics.items():
        metric = JSON_KEYS.get(key)
        if metric is None:
            return Rejection("unknown_metric", f"unknown metric {key!r}; known: {', '.join(sorted(JSON_KEYS))}")
        value = _number(f"metrics.{key}", raw)
        if isinstance(value, Rejection):
            return value
        if not metric.lo <= value <= metric.hi:
            return Rejection("out_of_range", f"metrics.{key} = {value} is outside the plausible range "
                             f"[{metric.lo}, {metric.hi}] {metric.unit}")
        readings.append(Reading(device_id=device_id, metric=metric.name, unit=metric.unit, value=value,
                                observed_at=ts, seq=seq, received_at=now))
    return readings


class _PlainTelemetry(msgspec.Struct):
    """The JSON contract's common shape, for the gateway's fast path (``decode_plain_telemetry``)."""

    ts: float
    metrics: dict[str, float]
    seq: int | None = None


_plain_decoder = msgspec.json.Decoder(_PlainTelemetry)


def decode_plain_telemetry(payload: bytes, now: float,
                           limits: Limits) -> tuple[float, int | None, list[tuple[Metric, float]]] | None:
    """The gateway's fast path: a JSON-contract payload that ``decode_telemetry`` would accept with epoch
    seconds as ``ts``, decoded about ten times faster: ``(ts, seq, [(metric, value), ...])``.

    None means "not this simple case": anything else (RFC 3339 ``ts``, SenML, and every payload to be
    rejected) is for ``decode_telemetry``, which gives the reading or the reason. Accepting exactly
    what ``decode_telemetry`` accepts, with the same values, is checked by tests/unit/gateway.

    >>> decode_plain_telemetry(b'{"ts":1780000000,"seq":4,"metrics":{"water_level_m":0.5}}', 1780000001.0,
    ...                        Limits())
    (1780000000.0, 4, [(Metric(name='water_level', unit='m', json_keys=('water_level_m', 'water_level'), \
lo=-1.0, hi=50.0), 0.5)])
    >>> decode_plain_telemetry(b'{"ts":"2026-11-27T02:00:00Z","metrics":{"water_level_m":0.5}}', 0.0, Limits())
    """
    if len(payload) > limits.max_payload_bytes:
        return None
    try:
        data = _plain_decoder.decode(payload)
    except msgspec.DecodeError:  # malformed, another shape, or a value msgspec refuses (NaN, 1e999, bool)
        return None
    ts, seq, metrics = data.ts, data.seq, data.metrics
    if not now - limits.max_age_s <= ts <= now + limits.max_future_s:
        return None
    if seq is not None and not 0 <= seq <= MAX_SEQ or not metrics:
        return None
    out = []
    for key, value in metrics.items():
        metric = JSON_KEYS.get(key)
        if metric is None or not metric.lo <= value <= metric.hi:
            return None
        out.append((metric, value))
    return ts, seq, out


_SENML_VALUE_FIELDS = ("v", "vs", "vb", "vd")


def decode_senml(device_id: str, pack: Any, now: float, limits: Limits) -> list[Reading] | Rejection:
    """A SenML pack (RFC 8428) resolved record by record (base name/time/unit/value, relative times)."""
    if not isinstance(pack, list) or not pack:
        return Rejection("bad_senml", "a SenML pack must be a non-empty JSON array of records")
    bn, bt, bu, bv = "", 0.0, None, 0.0
    readings = []
    for i, rec in enumerate(pack):
        if not isinstance(rec, dict):
            return Rejection("bad_senml", f"record {i} is not an object")
        for label in rec:
            if label.endswith("_"):
                return Rejection("bad_senml", f"record {i} has label {label!r}: labels ending in '_' "
                                 "must be understood, and this one is not (RFC 8428 §4.4)")
        if "bver" in rec and (not isinstance(rec["bver"], int) or isinstance(rec["bver"], bool)):
            return Rejection("bad_senml", f"record {i}: bver must be an integer")
        if "bn" in rec:
            if not isinstance(rec["bn"], str):
                return Rejection("bad_senml", f"record {i}: bn must be a string")
            bn = rec["bn"]
        if "bt" in rec:
            got = _number(f"record {i} bt", rec["bt"])
            if isinstance(got, Rejection):
                return Rejection("bad_senml", got.detail) if got.reason == "wrong_type" else got
            bt = got
        if "bu" in rec:
            if not isinstance(rec["bu"], str):
                return Rejection("bad_senml", f"record {i}: bu must be a string")
            bu = rec["bu"]
        if "bv" in rec:
            got = _number(f"record {i} bv", rec["bv"])
            if isinstance(got, Rejection):
                return Rejection("bad_senml", got.detail) if got.reason == "wrong_type" else got
            bv = got
        value_fields = [f for f in _SENML_VALUE_FIELDS if f in rec]
        if not value_fields and "s" not in rec:
            if any(k in rec for k in ("n", "t", "u")):
                return Rejection("bad_senml", f"record {i} has no value (one of v, vs, vb, vd)")
            continue  # a record carrying only base fields
        if len(value_fields) > 1:
            return Rejection("bad_senml", f"record {i} has {len(value_fields)} value fields "
                             f"({', '.join(value_fields)}); exactly one is allowed")
        name = rec.get("n", "")
        if not isinstance(name, str):
            return Rejection("bad_senml", f"record {i}: n must be a string")
        full = bn + name
        if not full:
            return Rejection("bad_senml", f"record {i} has no name (bn + n is empty)")
        # Our devices name metrics plainly; a base name such as "urn:dev:...:" is a device prefix.
        metric_name = full.rsplit(":", 1)[-1].rsplit("/", 1)[-1]
        metric = METRICS.get(metric_name)
        if metric is None:
            return Rejection("unknown_metric", f"record {i}: unknown metric {metric_name!r}; known: "
                             f"{', '.join(sorted(METRICS))}")
        if value_fields != ["v"]:
            return Rejection("wrong_type", f"record {i}: {metric_name} needs a numeric value 'v', got "
                             f"{value_fields[0] if value_fields else 's'}")
        raw = _number(f"record {i} v", rec["v"])
        if isinstance(raw, Rejection):
            return raw
        if "t" in rec:
            t = _number(f"record {i} t", rec["t"])
            if isinstance(t, Rejection):
                return Rejection("bad_senml", t.detail) if t.reason == "wrong_type" else t
        else:
            t = 0.0
        ts = bt + t
        if ts < SENML_RELATIVE_LIMIT:
            ts = now + ts  # relative to now (negative = past)
        late = check_time(ts, now, limits)
        if late:
            return late
        unit = rec.get("u", bu)
        if unit is None:
            unit = metric.unit
        if not isinstance(unit, str):
            return Rejection("bad_senml", f"record {i}: u must be a string")
        value = convert(bv + raw, unit, metric)
        if value is None:
            return Rejection("bad_unit", f"record {i}: unit {unit!r} cannot be converted to {metric.unit!r} "
                             f"for {metric_name}")
        if not metric.lo <= value <= metric.hi:
            return Rejection("out_of_range", f"record {i}: {metric_name} = {value} is outside "
                             f"[{metric.lo}, {metric.hi}] {metric.unit}")
        readings.append(Reading(device_id=device_id, metric=metric.name, unit=metric.unit, value=value,
                                observed_at=ts, seq=None, received_at=now))
    if not readings:
        return Rejection("bad_senml", "the SenML pack holds no records with values")
    return readings


def decode_frame(camera_id: str, payload: bytes, props: dict[str, str], now: float,
                 limits: Limits) -> Frame | Rejection:
    """A JPEG frame with MQTT v5 user properties ``ts`` and ``seq``."""
    if len(payload) > limits.max_frame_bytes:
        return Rejection("oversize", f"frame is {len(payload)} bytes; limit {limits.max_frame_bytes}")
    if not payload.startswith(JPEG_MAGIC):
        return Rejection("not_jpeg", "frame does not start with the JPEG signature FF D8 FF")
    if not payload.rstrip(b"\x00").endswith(JPEG_END):
        return Rejection("not_jpeg", "frame is truncated: no JPEG end-of-image marker FF D9")
    if "ts" not in props:
        return Rejection("missing_field", "frame lacks the MQTT v5 user property 'ts'")
    raw_ts: Any = props["ts"]
    try:
        raw_ts = float(raw_ts)
    except ValueError:
        pass
    ts = parse_time(raw_ts, now)
    if isinstance(ts, Rejection):
        return ts
    late = check_time(ts, now, limits)
    if late:
        return late
    seq: int | None = None
    if "seq" in props:
        try:
            seq = int(props["seq"])
        except ValueError:
            return Rejection("wrong_type", f"frame user property seq must be an integer, got {props['seq']!r}")
        if not 0 <= seq <= MAX_SEQ:
            return Rejection("out_of_range", f"frame seq {seq} is outside 0..{MAX_SEQ}")
    return Frame(camera_id=camera_id, observed_at=ts, seq=seq, jpeg=payload, received_at=now)


def decode_status(payload: bytes) -> str | Rejection:
    text = payload.decode("utf-8", "replace").strip().lower()
    if text not in ("online", "offline"):
        return Rejection("bad_status", f"status must be 'online' or 'offline', got {text[:40]!r}")
    return text


class SeqWindow:
    """Remembers recent (device, seq) pairs to spot re-sent messages; bounded per device.

    An ``OrderedDict`` per device: dropping the oldest is O(1) (``popitem(last=False)``). A plain dict
    cost ~2 us a message here: deleting its first key again and again leaves deleted slots at the front,
    which ``next(iter(...))`` walked past every time (12 % of the gateway's CPU under load, py-spy).

    >>> w = SeqWindow(size=2)
    >>> [w.seen("d", s) for s in (1, 2, 1, 3, 1)]
    [False, False, True, False, False]
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._seen: dict[str, OrderedDict[int, None]] = {}

    def seen(self, device_id: str, seq: int) -> bool:
        """True when this (device, seq) was already accepted; records it otherwise."""
        window = self._seen.get(device_id)
        if window is None:
            window = self._seen[device_id] = OrderedDict()
        if seq in window:
            return True
        window[seq] = None
        if len(window) > self.size:
            window.popitem(last=False)
        return False

    def forget(self, device_id: str, seq: int) -> None:
        window = self._seen.get(device_id)
        if window is not None:
            window.pop(seq, None)
