"""What every process shares for operators: its /metrics listener (the official Prometheus client) and
the log format (human lines, or one JSON object a line with ``GS_LOG_FORMAT=json``).

Each process has its own ``CollectorRegistry`` (never the client's global one): its counters come from
the objects that already count (``GatewayStats``, the worker stages' stats) through collectors that read
them at scrape time, so the stats files and /metrics cannot disagree; histograms and the few counters
nothing else kept are prometheus_client objects in that registry. Labels are bounded: reasons, stages,
topics and partitions, never a device or a case (tests/unit/test_observability.py checks it).
"""

from __future__ import annotations

import errno
import json  # noqa: F401  (the doctest)
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, ProcessCollector, disable_created_metrics
from prometheus_client.exposition import start_http_server
from prometheus_client.metrics_core import HistogramMetricFamily, Metric
from prometheus_client.registry import Collector

from .errors import GridSentinelError

log = logging.getLogger(__name__)
disable_created_metrics()  # no ``*_created`` series beside each counter and histogram: half the lines, no use here

# Label names a metric may carry: all bounded by the code or the deployment (never a device or a case id).
BOUNDED_LABELS = frozenset({"reason", "stage", "topic", "partition", "type", "outcome", "status", "category",
                            "severity", "method", "route", "kind", "le", "what"})

# Seconds buckets for processing latencies (a batch, produce -> delivery): 1 ms .. 60 s.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
# Sizes of batches (records per batch, PUBACKs per write): 1 .. 20000.
SIZE_BUCKETS = (1, 5, 10, 50, 100, 500, 1000, 2000, 5000, 10000, 20000)


class MetricsPortInUse(GridSentinelError):
    """The /metrics port is taken (another process of the same kind on this machine, most likely)."""


def new_registry() -> CollectorRegistry:
    """A process's own registry, with process CPU, memory, open files and start time (Linux /proc)."""
    registry = CollectorRegistry(auto_describe=True)
    ProcessCollector(registry=registry)
    return registry


def serve_metrics(registry: CollectorRegistry, port: int, *, what: str, setting: str,
                  host: str = "0.0.0.0") -> Any:
    """Serve ``registry`` at http://host:port/metrics from a daemon thread; None when ``port`` is 0 (off).
    A port in use raises :class:`MetricsPortInUse` saying how to choose another (exit status 2, no retry
    loop). ``what`` names the process and ``setting`` its environment variable, for that message."""
    if not port:
        return None
    try:
        server, _thread = start_http_server(port, addr=host, registry=registry)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise MetricsPortInUse(
                f"port {port} for the {what}'s /metrics is already in use (another {what} on this machine?); "
                f"give each process its own port with --metrics-port N or {setting}=N, or 0 to turn "
                "/metrics off") from exc
        raise
    log.info("%s: Prometheus metrics on http://%s:%d/metrics", what, host, port)
    return server


def port_free(port: int, host: str = "0.0.0.0") -> bool:
    """Whether ``port`` can be bound now (the worker's supervisor checks its child's before starting it)."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class ReadCollector(Collector):
    """A collector whose samples are read at scrape time by ``read`` (from counters kept elsewhere).

    >>> from prometheus_client.metrics_core import CounterMetricFamily
    >>> def read():
    ...     yield CounterMetricFamily("gs_demo", "A demo.", value=3)
    >>> registry = CollectorRegistry(auto_describe=True)
    >>> registry.register(ReadCollector(read))
    >>> registry.get_sample_value("gs_demo_total")
    3
    """

    def __init__(self, read: Callable[[], Iterable[Metric]]) -> None:
        self._read = read

    def collect(self) -> Iterable[Metric]:
        return list(self._read())


def ms_histogram(name: str, documentation: str, counts: Sequence[int], bounds_s: Sequence[float] = LATENCY_BUCKETS,
                 labels: dict[str, str] | None = None) -> HistogramMetricFamily:
    """A Prometheus histogram (seconds) from counts in 1 ms buckets (``counts[i]``: latencies in
    [i, i+1) ms; the last one everything above): cumulative at ``bounds_s``; the sum from bucket midpoints.

    >>> h = ms_histogram("gs_lat_seconds", "Latency.", [1, 2, 0, 0, 0, 3], bounds_s=(0.001, 0.004))
    >>> [(s.labels["le"], s.value) for s in h.samples if s.name.endswith("_bucket")]
    [('0.001', 1.0), ('0.004', 3.0), ('+Inf', 6.0)]
    """
    keys = sorted(labels or {})
    family = HistogramMetricFamily(name, documentation, labels=keys)
    cumulative, total, i = [], 0, 0
    for bound in bounds_s:
        edge = min(len(counts), round(bound * 1000))
        while i < edge:
            total += counts[i]
            i += 1
        cumulative.append((_le(bound), float(total)))
    count = float(sum(counts))
    cumulative.append(("+Inf", count))
    sum_s = sum((k + 0.5) * c for k, c in enumerate(counts)) / 1000.0
    family.add_metric([(labels or {})[k] for k in keys], cumulative, sum_s)
    return family


def _le(bound: float) -> str:
    return repr(float(bound)) if not float(bound).is_integer() else f"{bound:.1f}"


class StageMetrics:
    """Per-stage counters and histograms the worker's stages feed directly (nothing else counted them):
    records in, batch sizes and batch processing times, labelled by stage name only."""

    def __init__(self, registry: CollectorRegistry | None) -> None:
        reg = registry if registry is not None else CollectorRegistry()  # unregistered: counted, not served
        self.records_in = Counter("gs_worker_records_in", "Records a stage took from Kafka.", ["stage"],
                                  registry=reg)
        self.batch_size = Histogram("gs_worker_batch_size", "Records per batch a stage processed.", ["stage"],
                                    buckets=SIZE_BUCKETS, registry=reg)
        self.batch_seconds = Histogram("gs_worker_batch_seconds", "Seconds a stage spent on one batch "
                                       "(ingest: one InfluxDB write).", ["stage"], buckets=LATENCY_BUCKETS,
                                       registry=reg)

    def batch(self, stage: str, size: int, seconds: float) -> None:
        self.batch_size.labels(stage).observe(size)
        self.batch_seconds.labels(stage).observe(seconds)

    def took(self, stage: str, n: int) -> None:
        if n:
            self.records_in.labels(stage).inc(n)


# -- logs -------------------------------------------------------------------------------------------------
LOG_FORMATS = ("text", "json")
# Record attributes a log call may add with extra= and the JSON line keeps (the human format ignores them).
CONTEXT_FIELDS = ("device_id", "case_id", "stage", "reason", "detection_id")


def json_formatter() -> logging.Formatter:
    """One JSON object a line: level, logger, message, the context fields (``device_id``, ``case_id``,
    ``stage``, ...) when the record carries them, an exception as ``exc_info``, and ``time`` (ISO 8601, UTC,
    with its zone).

    >>> import io
    >>> out = io.StringIO(); handler = logging.StreamHandler(out); handler.setFormatter(json_formatter())
    >>> record = logging.LogRecord("gs.x", logging.WARNING, "", 0, "rejected %s", ("m",), None)
    >>> record.device_id = "drain-1"
    >>> handler.emit(record); line = json.loads(out.getvalue())
    >>> (line["level"], line["logger"], line["message"], line["device_id"], line["time"][-6:])
    ('WARNING', 'gs.x', 'rejected m', 'drain-1', '+00:00')
    """
    from pythonjsonlogger.core import RESERVED_ATTRS
    from pythonjsonlogger.json import JsonFormatter

    return JsonFormatter("%(levelname)s %(name)s %(message)s",
                         rename_fields={"levelname": "level", "name": "logger"}, timestamp="time",
                         json_ensure_ascii=False,
                         reserved_attrs=[*RESERVED_ATTRS, "color_message"])  # uvicorn's ANSI copy of the message
