"""The InfluxDB sink: readings as idempotent points, written in batches; transient failures are retried
until the points land, points InfluxDB refuses for good are handed back with its reason.

Layout (one measurement, tags for every way dispatchers and engineers slice the data):

    reading,device=<id>,metric=<name>,unit=<u>,kind=<kind>,grid=<15 digits>,district=<6>,street=<9>,
            community=<12> value=<float>[,seq=<int>i] <event time, µs>

A point's identity is (measurement, tag set, time): a replayed reading overwrites itself, so
at-least-once delivery from Kafka becomes exactly-once in InfluxDB.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from gridsentinel.core.records import Reading

log = logging.getLogger(__name__)
MEASUREMENT = "reading"


def _escape_tag(value: str) -> str:
    return value.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ")


def to_line(r: Reading) -> str:
    """One reading as InfluxDB line protocol (µs precision)."""
    tags = [f"device={_escape_tag(r.device_id)}", f"metric={_escape_tag(r.metric)}",
            f"unit={_escape_tag(r.unit)}"]
    if r.kind:
        tags.append(f"kind={_escape_tag(r.kind)}")
    if r.grid_code:
        g = r.grid_code
        tags += [f"grid={g}", f"district={g[:6]}", f"street={g[:9]}", f"community={g[:12]}"]
    tags.sort()  # InfluxDB recommends sorted tags for write performance
    fields = f"value={float(r.value)!r}"
    if r.seq is not None:
        fields += f",seq={int(r.seq)}i"
    return f"{MEASUREMENT},{','.join(tags)} {fields} {round(r.observed_at * 1_000_000)}"


class LatencyHistogram:
    """Event time -> written-to-InfluxDB latency, in 1 ms buckets up to 10 s (plus overflow)."""

    BUCKETS = 10_000

    def __init__(self) -> None:
        self.counts = [0] * (self.BUCKETS + 1)

    def add(self, latency_s: float) -> None:
        self.counts[min(self.BUCKETS, max(0, int(latency_s * 1000)))] += 1


# What InfluxDB answers for points it will never take, however often they are sent: line protocol it
# cannot parse (400), a point too large (413), a field type conflict (422, a partial write). Everything
# else (connection errors, timeouts, 408, 429, 5xx, and 401/403/404: a token or bucket problem that an
# operator fixes) is retried: the readings wait in Kafka.
REFUSED_FOR_GOOD = frozenset({400, 413, 422})


@dataclass(frozen=True, slots=True)
class Refused:
    """A reading InfluxDB refused for good, with InfluxDB's reason."""

    reading: Reading
    reason: str


class _Stopped:
    """Told to stop while retrying."""


_STOPPED = _Stopped()


class InfluxSink:
    """Writes batches of readings; transient failures are retried with exponential backoff until the
    points land, and points InfluxDB refuses for good are singled out (the batch is split in halves
    until the refused points stand alone) and returned, so the rest of the batch is still written."""

    def __init__(self, url: str, token: str, org: str, bucket: str, *, max_backoff_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.bucket = bucket
        self.org = org
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=30_000)
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self.points_written = 0
        self.points_refused = 0
        self.failures = 0
        self.latency = LatencyHistogram()  # event time (device clock) -> written
        self.latency_since_gateway = LatencyHistogram()  # accepted by the gateway -> written

    def write(self, readings: Sequence[Reading],
              should_stop: Callable[[], bool] = lambda: False) -> list[Refused] | None:
        """Write the readings; blocks (retrying) until InfluxDB has answered for every one of them.

        Returns the readings InfluxDB refused for good, each with its reason (empty when all were
        written), or None when told to stop before everything was answered.
        """
        lines = [to_line(r) for r in readings]
        refused: list[Refused] = []
        todo = [(0, len(lines))] if lines else []
        while todo:
            lo, hi = todo.pop()
            answer = self._write_lines(lines[lo:hi], should_stop)
            if answer is _STOPPED:
                return None
            if answer is None:
                self._written(readings[lo:hi])
            elif hi - lo == 1:
                refused.append(Refused(readings[lo], str(answer)))
                self.points_refused += 1
                log.warning("InfluxDB refused the reading of %s/%s at %s: %s", readings[lo].device_id,
                            readings[lo].metric, readings[lo].observed_at, answer,
                            extra={"stage": "ingest", "device_id": readings[lo].device_id})
            else:
                # InfluxDB's verdict is for the whole request (a partial write may have stored some of
                # it: points are idempotent, so writing them again is harmless): split it until the
                # refused points stand alone. Left half first, so points keep their order.
                mid = (lo + hi) // 2
                todo += [(mid, hi), (lo, mid)]
        return refused

    def _written(self, readings: Sequence[Reading]) -> None:
        self.points_written += len(readings)
        done = time.time()
        for r in readings:
            self.latency.add(done - r.observed_at)
            if r.received_at:
                self.latency_since_gateway.add(done - r.received_at)

    def _write_lines(self, lines: list[str], should_stop: Callable[[], bool]) -> str | _Stopped | None:
        """One request, retried while the failure is transient: None when written, InfluxDB's reason
        when it refused the request for good, ``_STOPPED`` when told to stop."""
        attempt = 0
        while True:
            try:
                # influxdb-client annotates write_precision as WritePrecision, whose constants are plain str
                self._write.write(bucket=self.bucket, org=self.org, record="\n".join(lines),
                                  write_precision=WritePrecision.US)  # type: ignore[arg-type]
                if attempt:
                    log.warning("InfluxDB write succeeded after %d retries", attempt)
                return None
            except ApiException as exc:
                if exc.status in REFUSED_FOR_GOOD:
                    return f"InfluxDB {exc.status}: {exc.message}"
                error: Exception = exc
            except Exception as exc:  # urllib3's connection errors and timeouts: not written yet
                error = exc
            self.failures += 1
            delay = min(self.max_backoff_s, 0.25 * 2**attempt)
            attempt += 1
            log.warning("InfluxDB write of %d points failed (%s); retry %d in %.1fs",
                        len(lines), _short(error), attempt, delay, extra={"stage": "ingest"})
            if should_stop():
                return _STOPPED
            self._sleep(delay)

    def close(self) -> None:
        self._client.close()


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"
