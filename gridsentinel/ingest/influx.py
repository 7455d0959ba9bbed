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

import numpy as np
from influxdb_client import InfluxDBClient, WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS
from influxdb_client.rest import ApiException

from gridsentinel.core.records import Reading

from .lines import reading_line

log = logging.getLogger(__name__)


def to_line(r: Reading) -> str:
    """One reading as InfluxDB line protocol (µs precision): ``lines.reading_line``."""
    return reading_line(r)


class LatencyHistogram:
    """Event time -> written-to-InfluxDB latency, in 1 ms buckets up to 10 s (plus overflow).

    A batch is added at once (numpy: one bincount per batch instead of a Python call per point).

    >>> h = LatencyHistogram()
    >>> h.add(0.0034); h.add_batch(10.0, [9.9985, 9.9985, -5.0])
    >>> [(ms, n) for ms, n in enumerate(h.counts) if n]
    [(1, 2), (3, 1), (10000, 1)]
    """

    BUCKETS = 10_000

    def __init__(self) -> None:
        self._counts = np.zeros(self.BUCKETS + 1, dtype=np.int64)

    @property
    def counts(self) -> list[int]:
        return [int(n) for n in self._counts]

    def add(self, latency_s: float) -> None:
        self._counts[min(self.BUCKETS, max(0, int(latency_s * 1000)))] += 1

    def add_batch(self, now: float, times: Sequence[float]) -> None:
        """Add ``now - t`` for every ``t`` in ``times`` (a later ``t`` than now counts as 0 ms; a later
        than 10 s as the overflow)."""
        if not len(times):
            return
        ms = ((now - np.asarray(times, dtype=np.float64)) * 1000).astype(np.int64)
        np.clip(ms, 0, self.BUCKETS, out=ms)
        self._counts += np.bincount(ms, minlength=self.BUCKETS + 1)


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
        refused = self.write_lines([to_line(r) for r in readings], should_stop)
        if refused is None:
            return None
        bad = {i for i, _ in refused}
        self.written([r.observed_at for i, r in enumerate(readings) if i not in bad],
                     [r.received_at for i, r in enumerate(readings) if i not in bad])
        return [Refused(readings[i], reason) for i, reason in refused]

    def write_lines(self, lines: Sequence[str],
                    should_stop: Callable[[], bool] = lambda: False) -> list[tuple[int, str]] | None:
        """Write points given as line protocol; blocks (retrying) until InfluxDB has answered for each.

        Returns the points InfluxDB refused for good as (index in ``lines``, InfluxDB's reason), in order
        (empty when all were written), or None when told to stop before everything was answered. Counts
        ``points_written`` and ``points_refused``; the caller adds the latencies (``written``).
        """
        refused: list[tuple[int, str]] = []
        todo = [(0, len(lines))] if lines else []
        while todo:
            lo, hi = todo.pop()
            answer = self._write_lines(lines[lo:hi], should_stop)
            if answer is _STOPPED:
                return None
            if answer is None:
                self.points_written += hi - lo
            elif hi - lo == 1:
                refused.append((lo, str(answer)))
                self.points_refused += 1
                log.warning("InfluxDB refused the point %.200s: %s", lines[lo], answer, extra={"stage": "ingest"})
            else:
                # InfluxDB's verdict is for the whole request (a partial write may have stored some of
                # it: points are idempotent, so writing them again is harmless): split it until the
                # refused points stand alone. Left half first, so points keep their order.
                mid = (lo + hi) // 2
                todo += [(mid, hi), (lo, mid)]
        return refused

    def written(self, observed_at: Sequence[float], received_at: Sequence[float]) -> None:
        """Add written points to the latency histograms: event time and gateway time -> now."""
        done = time.time()
        self.latency.add_batch(done, observed_at)
        self.latency_since_gateway.add_batch(done, [t for t in received_at if t])

    def _write_lines(self, lines: Sequence[str], should_stop: Callable[[], bool]) -> str | _Stopped | None:
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
