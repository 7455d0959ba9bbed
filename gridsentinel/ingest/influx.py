"""The InfluxDB sink: readings as idempotent points, written in batches, retried until they land.

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

from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from .records import Reading

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


class InfluxSink:
    """Writes batches of readings; on failure retries with exponential backoff until they land."""

    def __init__(self, url: str, token: str, org: str, bucket: str, *, max_backoff_s: float = 30.0,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.bucket = bucket
        self.org = org
        self.max_backoff_s = max_backoff_s
        self._sleep = sleep
        self._client = InfluxDBClient(url=url, token=token, org=org, timeout=30_000)
        self._write = self._client.write_api(write_options=SYNCHRONOUS)
        self.points_written = 0
        self.failures = 0
        self.latency = LatencyHistogram()  # event time (device clock) -> written
        self.latency_since_gateway = LatencyHistogram()  # accepted by the gateway -> written

    def write(self, readings: Sequence[Reading], should_stop: Callable[[], bool] = lambda: False) -> bool:
        """Write all readings; blocks (retrying) until InfluxDB accepts them. False if told to stop."""
        lines = [to_line(r) for r in readings]
        if not lines:
            return True
        body = "\n".join(lines)
        attempt = 0
        while True:
            try:
                # influxdb-client annotates write_precision as WritePrecision, whose constants are plain str
                self._write.write(bucket=self.bucket, org=self.org, record=body,
                                  write_precision=WritePrecision.US)  # type: ignore[arg-type]
                self.points_written += len(lines)
                done = time.time()
                for r in readings:
                    self.latency.add(done - r.observed_at)
                    if r.received_at:
                        self.latency_since_gateway.add(done - r.received_at)
                if attempt:
                    log.warning("InfluxDB write succeeded after %d retries", attempt)
                return True
            except Exception as exc:  # urllib3 and ApiException both mean "not written yet"
                self.failures += 1
                delay = min(self.max_backoff_s, 0.25 * 2**attempt)
                attempt += 1
                log.warning("InfluxDB write of %d points failed (%s); retry %d in %.1fs",
                            len(lines), _short(exc), attempt, delay)
                if should_stop():
                    return False
                self._sleep(delay)

    def close(self) -> None:
        self._client.close()


def _short(exc: Exception) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0][:200] if text else ''}"
