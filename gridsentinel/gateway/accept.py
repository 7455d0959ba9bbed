"""Accepting one MQTT message: topic, payload and properties in; the Kafka records made from it out.

``Acceptor.accept`` is pure: no I/O, and the clock is passed in (``now``). Its state is the sequence
window that spots a device's repeats and caches of what it derives from the registry. A message gives
either ``Accepted`` (its records) or ``Rejected`` (its reason, and the dead-letter record that keeps it):
bad input from a device is data, not an exception.

The common message, telemetry of a registered device in the JSON contract's common shape, is decoded by
``decode_plain_telemetry`` (msgspec, about ten times faster); every other one, and every one to be
rejected, by the general decoders, which give the reading or the reason (the fast decoder declines, it
never rejects). The topic is parsed and the device looked up once (cached per topic), each message gives
one verdict from one decoder, and its sequence number is checked once; both ways make the same records
(tests/unit/gateway/test_accept.py, tests/integration/test_gateway_fast_path.py).
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from gridsentinel.core.device_health import VITALS
from gridsentinel.core.devices import Device, Registry
from gridsentinel.core.records import DeadLetter, DeviceStatus, Frame
from gridsentinel.core.topics import Topics

from .decode import (
    Limits,
    Rejection,
    SeqWindow,
    decode_frame,
    decode_plain_telemetry,
    decode_status,
    decode_telemetry,
)
from .encode import ReadingEncoder, tail

KINDS = ("telemetry", "frame", "status")
DEADLETTER_KEEP_BYTES = 256 * 1024  # a dead letter keeps at most this much of the raw payload

# A Kafka record: (topic, key, value, headers).
Record = tuple[str, str, bytes, Any]


class Accepted:
    """The records made from an accepted message. ``seq``: the (device, seq) it recorded in the sequence
    window, to forget if Kafka fails a record (the broker resends the message, which is no duplicate).
    ``vitals``: battery/signal values the telemetry carried (for the device's health); ``status``: the
    online/offline of a status message."""

    __slots__ = ("origin", "records", "seq", "vitals", "status")

    def __init__(self, origin: str, records: list[Record], seq: tuple[str, int] | None = None,
                 vitals: dict[str, float] | None = None, status: str | None = None) -> None:
        self.origin = origin  # the MQTT topic
        self.records = records
        self.seq = seq
        self.vitals = vitals
        self.status = status

    def __repr__(self) -> str:
        return f"Accepted({self.origin!r}, {len(self.records)} records, seq={self.seq})"


class Rejected:
    """A rejected message: why, and its dead letter as a record for the dead-letter topic."""

    __slots__ = ("origin", "why", "device_id", "records", "seq")

    def __init__(self, origin: str, why: Rejection, device_id: str | None, record: Record) -> None:
        self.origin = origin  # the MQTT topic
        self.why = why
        self.device_id = device_id
        self.records = [record]
        self.seq: tuple[str, int] | None = None  # a rejected message records no seq

    @property
    def reason(self) -> str:
        return self.why.reason

    def __repr__(self) -> str:
        return f"Rejected({self.origin!r}, {self.why.reason}: {self.why.detail})"


def dead_letter(origin: str, payload: bytes, now: float, why: Rejection, device_id: str | None = None) -> DeadLetter:
    """The dead letter of a rejected MQTT message. A camera frame (an image not blurred yet) keeps only its
    size and sha256, never its pixels; any other payload is kept whole up to ``DEADLETTER_KEEP_BYTES``.

    >>> letter = dead_letter("gs/v1/cam-1/frame", b"\\xff\\xd8 pixels", 1.0, Rejection("timestamp_future", "clock"))
    >>> (letter.payload_b64, letter.payload_bytes, letter.payload_sha256[:8])
    ('', 9, '7abaeaea')
    """
    detail = why.detail
    size = digest = None
    if origin.endswith("/frame"):
        size, digest = len(payload), hashlib.sha256(payload).hexdigest()
        payload = b""
    elif len(payload) > DEADLETTER_KEEP_BYTES:  # an oversize payload must not make an oversize record
        size, digest = len(payload), hashlib.sha256(payload).hexdigest()
        payload = payload[:DEADLETTER_KEEP_BYTES]
        detail += f" (payload_b64 holds its first {DEADLETTER_KEEP_BYTES} of {size} bytes)"
    return DeadLetter(reason=why.reason, detail=detail, origin=origin, received_at=now,
                      payload_b64=base64.b64encode(payload).decode(), device_id=device_id,
                      payload_bytes=size, payload_sha256=digest)


class _Route:
    """What the fast decoding knows of one telemetry topic of a registered device."""

    __slots__ = ("device", "topic", "heads")

    def __init__(self, device: Device, topic: str) -> None:
        self.device = device
        self.topic = topic
        self.heads: dict[str, bytes] = {}  # metric name -> ReadingEncoder.head


class Acceptor:
    """Turns MQTT messages into Kafka records or rejections (see the module's docstring).

    ``fast``: try ``decode_plain_telemetry`` first (off, the general decoders take every message: the
    tests compare both ways).

    >>> acceptor = Acceptor(Registry([]), Topics("t."))
    >>> acceptor.accept("gs/v1/nobody/telemetry", b"{}", None, 1780000000.0).reason
    'unknown_device'
    """

    def __init__(self, registry: Registry, topics: Topics, limits: Limits | None = None, *,
                 fast: bool = True) -> None:
        self.registry = registry
        self.topics = topics
        self.limits = limits or Limits()
        self.fast = fast
        self.seqs = SeqWindow()
        self._encoder = ReadingEncoder()
        self._routes: dict[bytes | str, _Route] = {}
        self._readings_topic = topics.readings
        self._version = registry.version  # the registry's version the routes were made from
        # Asked once before a device that is not in the registry is rejected: the gateway catches up with the
        # registry's feed (a device registered a moment ago is known then), answering the device or None.
        self.resolve_unknown: Callable[[str], Device | None] | None = None

    def forget_seq(self, device_id: str, seq: int) -> None:
        """Kafka failed a record of this message: the broker resends it, and it is not a duplicate then."""
        self.seqs.forget(device_id, seq)

    def accept(self, topic: bytes | str, payload: bytes, properties: Any, now: float,
               dup: bool = False) -> Accepted | Rejected:
        """One MQTT message (``properties``: paho's ``Properties`` or None; ``dup``: the broker's resend of a
        message not acked yet) -> its records, or its rejection."""
        if self.registry.version != self._version:  # a change of the registry: routes are remade on use
            self._version = self.registry.version
            self._routes.clear()
        route = self._routes.get(topic)
        if route is None:
            route = self._route(topic)
        if route is None:
            origin = topic if isinstance(topic, str) else topic.decode("utf-8", "replace")
            return self._accept_general(origin, payload, properties, now, dup)
        ctype = getattr(properties, "ContentType", None) if properties else None
        if self.fast and (ctype is None or not ctype.startswith("application/senml")):
            plain = decode_plain_telemetry(payload, now, self.limits)
            if plain is not None:
                ts, seq, values = plain
                device = route.device
                device_id = device.id
                # A DUP is the broker resending what we have not acked yet (after a reconnect): produce it
                # again (InfluxDB points are idempotent) rather than call it a device's duplicate.
                if seq is not None and self.seqs.seen(device_id, seq) and not dup:
                    return self._duplicate(route.topic, payload, now, device_id, seq)
                heads, topic_out = route.heads, self._readings_topic
                records: list[Record] = []
                vitals: dict[str, float] | None = None
                for metric, value in values:
                    if metric.name in VITALS:
                        vitals = {**(vitals or {}), metric.name: value}
                    head = heads.get(metric.name)
                    if head is None:
                        head = heads[metric.name] = self._encoder.head(device_id, metric.name, metric.unit,
                                                                       device.kind, device.grid_code or "")
                    records.append((topic_out, device_id, tail(head, value, ts, seq, now), None))
                return Accepted(route.topic, records, (device_id, seq) if seq is not None else None, vitals)
        # Declined by the fast decoder (RFC 3339 ts, SenML, anything to reject): the general one decides.
        return self._accept_device(route.topic, route.device, "telemetry", payload, properties, now, dup)

    def _route(self, topic: bytes | str) -> _Route | None:
        """The route of a telemetry topic of a registered device (cached), else None."""
        try:
            text = topic if isinstance(topic, str) else topic.decode()
        except UnicodeDecodeError:
            return None
        parts = text.split("/")
        if len(parts) != 4 or parts[0] != "gs" or parts[1] != "v1" or parts[3] != "telemetry":
            return None
        device = self.registry.get(parts[2])
        if device is None:
            return None
        if len(self._routes) > 100_000:
            self._routes.clear()
        route = self._routes[topic] = _Route(device, text)
        return route

    def _accept_general(self, origin: str, payload: bytes, properties: Any, now: float,
                        dup: bool) -> Accepted | Rejected:
        parts = origin.split("/")
        if len(parts) != 4 or parts[0] != "gs" or parts[1] != "v1" or parts[3] not in KINDS:
            return self._reject(origin, payload, now, Rejection("bad_topic", f"topic {origin!r} is not "
                                                                "gs/v1/<device>/<kind>"))
        device_id, kind = parts[2], parts[3]
        device = self.registry.get(device_id)
        if device is None and self.resolve_unknown is not None and self.registry.retirement(device_id) is None:
            device = self.resolve_unknown(device_id)
        if device is None:
            retired = self.registry.retirement(device_id)
            if retired is not None:
                when = datetime.fromtimestamp(retired.retired_at, UTC).isoformat(timespec="seconds")
                return self._reject(origin, payload, now, Rejection(
                    "device_retired", f"device {device_id!r} was retired at {when} ({retired.retired_at:.3f}, "
                    f"registry revision {retired.revision}); its messages are no longer accepted"), device_id)
            return self._reject(origin, payload, now, Rejection("unknown_device", f"device {device_id!r} is not in "
                                                                "the registry (config/devices.yaml)"), device_id)
        return self._accept_device(origin, device, kind, payload, properties, now, dup)

    def _accept_device(self, origin: str, device: Device, kind: str, payload: bytes, properties: Any, now: float,
                       dup: bool) -> Accepted | Rejected:
        """A message of a registered device, by the general decoders."""
        device_id = device.id
        if kind == "telemetry":
            ctype = getattr(properties, "ContentType", None) if properties else None
            result = decode_telemetry(device_id, payload, now, self.limits, ctype)
            if isinstance(result, Rejection):
                return self._reject(origin, payload, now, result, device_id)
            seq = result[0].seq
            # A DUP is the broker resending what we have not acked yet (after a reconnect): produce it
            # again (InfluxDB points are idempotent) rather than call it a device's duplicate.
            if seq is not None and self.seqs.seen(device_id, seq) and not dup:
                return self._duplicate(origin, payload, now, device_id, seq)
            grid = device.grid_code or ""
            encode = self._encoder.encode
            vitals = {r.metric: r.value for r in result if r.metric in VITALS} or None
            return Accepted(origin, [(self._readings_topic, device_id, encode(r, device.kind, grid), None)
                                     for r in result], (device_id, seq) if seq is not None else None, vitals)
        if kind == "frame":
            if device.kind != "camera":
                return self._reject(origin, payload, now, Rejection(
                    "wrong_device_kind", f"{device_id} is a {device.kind}, not a camera; only cameras send frames"),
                    device_id)
            props = dict(getattr(properties, "UserProperty", None) or []) if properties else {}
            frame = decode_frame(device_id, payload, props, now, self.limits)
            if isinstance(frame, Rejection):
                return self._reject(origin, payload, now, frame, device_id)
            frame = Frame(camera_id=frame.camera_id, observed_at=frame.observed_at, seq=frame.seq,
                          jpeg=frame.jpeg, received_at=now, grid_code=device.grid_code or "")
            return Accepted(origin, [(self.topics.frames, device_id, frame.jpeg, frame.headers())])
        status = decode_status(payload)
        if isinstance(status, Rejection):
            return self._reject(origin, payload, now, status, device_id)
        record = DeviceStatus(device_id=device_id, status=status, received_at=now)  # type: ignore[arg-type]
        return Accepted(origin, [(self.topics.device_status, device_id, record.to_json(), None)], status=status)

    def _duplicate(self, origin: str, payload: bytes, now: float, device_id: str, seq: int) -> Rejected:
        return self._reject(origin, payload, now, Rejection("duplicate_seq", f"seq {seq} from {device_id} was "
                                                            "already accepted"), device_id)

    def _reject(self, origin: str, payload: bytes, now: float, why: Rejection,
                device_id: str | None = None) -> Rejected:
        letter = dead_letter(origin, payload, now, why, device_id)
        return Rejected(origin, why, device_id, (self.topics.deadletter, device_id or "", letter.to_json(), None))
