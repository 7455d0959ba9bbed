"""paho's client with buffered socket reads, for a gateway receiving tens of thousands of messages/s.

paho reads each packet with several small ``recv()`` calls (command byte, each length byte, body) and
goes back to ``select()`` after each packet; at high rates those system calls dominate. This subclass
serves paho's reads from one large ``recv()`` and keeps reading while the buffer holds data. It relies
on two private hooks of paho-mqtt 2.x (``_sock_recv``, ``_reset_sockets``), pinned in constraints.txt.
"""

from __future__ import annotations

from typing import Any

import paho.mqtt.client as mqtt

RECV_CHUNK = 256 * 1024


class BufferedClient(mqtt.Client):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._rbuf = b""
        self._rpos = 0
        super().__init__(*args, **kwargs)

    def _sock_recv(self, bufsize: int) -> bytes:
        if self._rpos >= len(self._rbuf):
            data = super()._sock_recv(RECV_CHUNK)  # raises BlockingIOError when nothing is there
            if not data:
                return data  # connection closed
            self._rbuf, self._rpos = data, 0
        chunk = self._rbuf[self._rpos:self._rpos + bufsize]
        self._rpos += len(chunk)
        return chunk

    def buffered(self) -> int:
        return len(self._rbuf) - self._rpos

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        # select() cannot see bytes already in our buffer: drain it before going back to select().
        rc = super().loop_read(max_packets)
        while rc == mqtt.MQTT_ERR_SUCCESS and self._sock is not None and self.buffered():
            rc = super().loop_read(max_packets)
        return rc

    def _reset_sockets(self, sockpair_only: bool = False) -> None:
        if not sockpair_only:
            self._rbuf, self._rpos = b"", 0  # bytes of a closed connection must not leak into the next
        super()._reset_sockets(sockpair_only)
