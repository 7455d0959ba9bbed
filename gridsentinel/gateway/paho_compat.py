"""Every workaround of paho-mqtt's internals, in one module: a client with a fast receive path, for a
gateway taking tens of thousands of messages/s. Nothing else in GridSentinel touches paho's private parts.

paho reads each packet with several small ``recv()`` calls and builds a ``Properties`` object, an
``MQTTMessage`` and a few dicts per PUBLISH; sending a PUBACK queues one packet and writes one wake-up
byte to a socket pair. At gateway rates that Python work is the bottleneck. This subclass:

- reads the socket in large chunks and frames packets itself;
- decodes QoS 0/1 PUBLISH packets without properties (the common telemetry case) into a small
  ``FastMessage`` and calls ``on_message`` directly, or, when ``on_fast_publish`` is set, hands it the
  raw topic and payload with no object made at all;
- hands every other packet (CONNACK, SUBACK, PINGRESP, DISCONNECT, QoS 2, PUBLISH with properties) to
  paho's own handler, so connect, subscribe, keepalive and reconnect stay paho's;
- sends many PUBACKs as one queued write (``ack_many``).

It relies on private parts of paho-mqtt 2.x (``_sock_recv``, ``_packet_handle``, ``_in_packet``,
``_packet_queue``, ``_loop_rc_handle``, ``_reset_sockets``, ...), pinned in constraints.txt and covered by
tests/unit/gateway/test_paho_compat.py. ``check_paho`` (run by every ``BufferedClient``) refuses a paho-mqtt
version these were not tested with, or one that lacks any of them: to upgrade paho, run those tests with
the new version, then add it to ``TESTED_PAHO_VERSIONS`` and to constraints.txt.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

import paho.mqtt
import paho.mqtt.client as mqtt
from paho.mqtt.client import MQTTErrorCode
from paho.mqtt.enums import MQTTProtocolVersion

from ..errors import GridSentinelError

if TYPE_CHECKING:
    from paho.mqtt.client import _InPacket  # declared for type checkers only

RECV_CHUNK = 256 * 1024
PUBLISH = 0x30
PUBACK = 0x40
_PUBACK_WORD = (PUBACK << 24) | (2 << 16)  # a PUBACK without reason code, as a big-endian uint32 before its mid

# paho-mqtt versions whose internals this module was tested with (constraints.txt pins one of them).
TESTED_PAHO_VERSIONS = ("2.2.0",)
# The private parts of paho this module uses: methods of mqtt.Client, and attributes of a client.
_PRIVATE_METHODS = ("_sock_recv", "_packet_handle", "_loop_rc_handle", "_reset_sockets", "_packet_queue",
                    "_send_puback", "_handle_on_message", "_easy_log")
_PRIVATE_ATTRIBUTES = ("_sock", "_in_packet", "_msgtime_mutex", "_last_bytes_received", "_protocol",
                       "_on_message_filtered", "_in_callback_mutex", "_userdata", "_manual_ack")


def check_paho(version: str | None = None) -> None:
    """Raise ``GridSentinelError`` when paho-mqtt (``version``: the installed one) is not a version this
    module's workarounds were tested with, or lacks a private method they use."""
    version = version or paho.mqtt.__version__
    if version not in TESTED_PAHO_VERSIONS:
        raise GridSentinelError(
            f"paho-mqtt {version} is installed, but the gateway's fast MQTT path (gridsentinel/gateway/"
            f"paho_compat.py) uses paho internals tested only with {', '.join(TESTED_PAHO_VERSIONS)}; install "
            "the version pinned in constraints.txt (pip install -c constraints.txt -e .), or run "
            "tests/unit/gateway/test_paho_compat.py with this one and add it to TESTED_PAHO_VERSIONS")
    missing = [name for name in _PRIVATE_METHODS if not hasattr(mqtt.Client, name)]
    if missing:
        raise GridSentinelError(f"paho-mqtt {version} lacks {', '.join(missing)}, used by "
                                "gridsentinel/gateway/paho_compat.py")


class FastMessage:
    """What ``on_message`` gets from the fast path: the attributes of ``MQTTMessage`` a consumer reads."""

    __slots__ = ("topic", "payload", "mid", "qos", "dup", "retain", "properties")

    def __init__(self, topic: str, payload: bytes, mid: int, qos: int, dup: bool, retain: bool) -> None:
        self.topic = topic
        self.payload = payload
        self.mid = mid
        self.qos = qos
        self.dup = dup
        self.retain = retain
        self.properties: Any = None  # the fast path only takes PUBLISH packets without properties

    def __repr__(self) -> str:
        return f"FastMessage(topic={self.topic!r}, mid={self.mid}, qos={self.qos}, {len(self.payload)} bytes)"


def _fresh_in_packet() -> _InPacket:
    return {"command": 0, "have_remaining": 0, "remaining_count": [], "remaining_mult": 1,
            "remaining_length": 0, "packet": bytearray(b""), "to_process": 0, "pos": 0}


class BufferedClient(mqtt.Client):
    """paho's client, with the fast receive path and batched PUBACKs described above."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._rbuf = b""
        # Set, it takes every fast-path PUBLISH instead of ``on_message``, as
        # ``(topic bytes, payload, mid, qos, dup)``, and acks are its business: no object per message.
        # It runs on the network thread without paho's callback lock, and must not raise.
        self.on_fast_publish: Callable[[bytes, bytes, int, int, bool], None] | None = None
        check_paho()
        super().__init__(*args, **kwargs)
        missing = [name for name in _PRIVATE_ATTRIBUTES if not hasattr(self, name)]
        if missing:
            raise GridSentinelError(f"paho-mqtt {paho.mqtt.__version__}'s client lacks {', '.join(missing)}, "
                                    "used by gridsentinel/gateway/paho_compat.py")

    def buffered(self) -> int:
        """Bytes received but not yet framed into a whole packet."""
        return len(self._rbuf)

    def loop_read(self, max_packets: int = 1) -> MQTTErrorCode:
        if self._sock is None:
            return MQTTErrorCode.MQTT_ERR_NO_CONN
        try:
            data = self._sock_recv(RECV_CHUNK)
        except BlockingIOError:
            return MQTTErrorCode.MQTT_ERR_SUCCESS
        except OSError as err:
            self._easy_log(mqtt.MQTT_LOG_ERR, "failed to receive on socket: %s", err)
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        if not data:
            return self._loop_rc_handle(MQTTErrorCode.MQTT_ERR_CONN_LOST)
        with self._msgtime_mutex:
            self._last_bytes_received = mqtt.time_func()
        buf = self._rbuf + data if self._rbuf else data
        self._rbuf = b""
        rc, used = self.feed(buf)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            return self._loop_rc_handle(rc)
        if self._sock is not None:  # a callback may have disconnected: then the rest is stale
            self._rbuf = buf[used:]
        return MQTTErrorCode.MQTT_ERR_SUCCESS

    def feed(self, buf: bytes) -> tuple[MQTTErrorCode, int]:
        """Handle every whole packet in ``buf``; returns the result and how many bytes were used."""
        n = len(buf)
        pos = 0
        fast = self._protocol == MQTTProtocolVersion.MQTTv5
        sock = self._sock
        while n - pos >= 2:
            cmd = buf[pos]
            length = 0
            shift = 0
            i = pos + 1
            while True:
                if i >= n:
                    return MQTTErrorCode.MQTT_ERR_SUCCESS, pos  # length bytes not all here yet
                byte = buf[i]
                i += 1
                length |= (byte & 127) << shift
                shift += 7
                if not byte & 128:
                    break
                if shift >= 28:
                    return MQTTErrorCode.MQTT_ERR_PROTOCOL, pos
            end = i + length
            if end > n:
                return MQTTErrorCode.MQTT_ERR_SUCCESS, pos  # body not all here yet
            if fast and cmd & 0xF0 == PUBLISH and not cmd & 0x04 and self._fast_publish(cmd, buf, i, end):
                pass
            else:
                rc = self._slow_packet(cmd, buf[i:end])
                if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                    return rc, end
            pos = end
            if self._sock is not sock:  # disconnected by a callback: the rest belongs to a dead connection
                break
        return MQTTErrorCode.MQTT_ERR_SUCCESS, pos

    def _fast_publish(self, cmd: int, buf: bytes, start: int, end: int) -> bool:
        """A QoS 0/1 v5 PUBLISH without properties; False (nothing done) for anything else."""
        qos = (cmd >> 1) & 3
        tlen = (buf[start] << 8) | buf[start + 1]
        p = start + 2 + tlen
        mid = 0
        if qos:
            if p + 2 > end:
                return False
            mid = (buf[p] << 8) | buf[p + 1]
            p += 2
        if p >= end or buf[p] != 0:  # properties present (or a malformed packet): paho decides
            return False
        hook = self.on_fast_publish
        if hook is not None:
            hook(buf[start + 2:start + 2 + tlen], buf[p + 1:end], mid, qos, bool(cmd & 0x08))
            return True
        try:
            topic = buf[start + 2:start + 2 + tlen].decode()
        except UnicodeDecodeError:
            return False
        msg = FastMessage(topic, buf[p + 1:end], mid, qos, bool(cmd & 0x08), bool(cmd & 0x01))
        if self._on_message_filtered._root._children:  # message_callback_add() users: let paho route it
            self._handle_on_message(msg)  # type: ignore[arg-type]  # FastMessage has what paho reads of one
        else:
            on_message = self.on_message
            if on_message is not None:
                with self._in_callback_mutex:
                    try:
                        on_message(self, self._userdata, msg)  # type: ignore[arg-type]  # duck-typed MQTTMessage
                    except Exception as err:
                        self._easy_log(mqtt.MQTT_LOG_ERR, "Caught exception in on_message: %s", err)
                        if not self.suppress_exceptions:
                            raise
        if qos == 1 and not self._manual_ack:
            self._send_puback(mid)
        return True

    def _slow_packet(self, cmd: int, body: bytes) -> MQTTErrorCode:
        self._in_packet = {**_fresh_in_packet(), "command": cmd, "have_remaining": 1,
                           "remaining_length": len(body), "packet": bytearray(body)}
        try:
            rc = self._packet_handle()
        except mqtt.MalformedPacket as exc:
            self._easy_log(mqtt.MQTT_LOG_DEBUG, "Received malformed packet: %s", exc)
            rc = MQTTErrorCode.MQTT_ERR_PROTOCOL
        finally:
            self._in_packet = _fresh_in_packet()
        return rc

    def ack_many(self, mids: Iterable[int]) -> None:
        """PUBACK (success) for many QoS 1 messages, queued as one write with one wake-up."""
        # a PUBACK is 4 bytes, 0x40 0x02 and the mid: one big-endian uint32 each, packed in one call
        words = [_PUBACK_WORD | mid for mid in mids]
        blob = struct.pack(f">{len(words)}I", *words)
        if blob:  # queued while disconnected, it is dropped by paho at reconnect (the broker resends)
            self._packet_queue(PUBACK, blob, 0, 0)

    def _reset_sockets(self, sockpair_only: bool = False) -> None:
        if not sockpair_only:
            self._rbuf = b""  # bytes of a closed connection must not leak into the next
        super()._reset_sockets(sockpair_only)
