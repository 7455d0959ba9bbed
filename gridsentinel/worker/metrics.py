"""The worker's /metrics, two listeners (docs/operations.md, "Metrics and logs"):

- the child (the Faust app, port N): each stage's counters read at scrape time from the stats the stages
  already keep for the stats file (``StageContext.stats``), the per-stage records in / batch histograms the
  stages feed (``StageContext.metrics``), Kafka consumer lag per topic and partition (sampled on the event
  loop every few seconds, so the scrape thread never touches the consumer), case-store conflicts, and the
  process's CPU and memory;
- the supervisor (port N + 1): the child's restarts, whether it is up, and the supervisor's own process
  metrics. Two small registries instead of a multiprocess one: the child is replaced at each restart, and
  a restart count must outlive it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from gridsentinel.cases.retry import ConflictCounts
from gridsentinel.observability import ReadCollector, ms_histogram

Stats = dict[str, Any]


class LagSnapshot:
    """The consumer lag as last sampled on the event loop: {(topic, partition): records}."""

    def __init__(self) -> None:
        self.lag: dict[tuple[str, int], int] = {}


def watch_stages(registry: CollectorRegistry, stats: Stats, lag: LagSnapshot) -> None:
    registry.register(ReadCollector(lambda: read_stages(stats, lag)))


def _now(stats: Stats, key: str) -> Any:
    value = stats.get(key)
    return value() if callable(value) else value


def read_stages(stats: Stats, lag: LagSnapshot) -> Iterator[Metric]:
    """The samples of the stages that run in this worker (a stage not run yields none of its own)."""
    def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, value=value)

    if "points_written" in stats:  # the ingest stage
        yield counter("gs_worker_influx_points_written", "Readings written to InfluxDB.", _now(stats, "points_written"))
        yield counter("gs_worker_influx_write_errors", "InfluxDB write requests that failed and were retried "
                      "(connection errors, timeouts, 5xx, 401/403/404).", _now(stats, "write_failures"))
        yield counter("gs_worker_influx_points_refused", "Readings InfluxDB refused for good (dead-lettered as "
                      "influx_refused).", _now(stats, "points_refused"))
        yield ms_histogram("gs_worker_event_to_influx_seconds", "Seconds from a reading's event time (device "
                           "clock) to its InfluxDB write.", _now(stats, "latency_ms_hist"))
        yield ms_histogram("gs_worker_gateway_to_influx_seconds", "Seconds from the gateway accepting a reading "
                           "to its InfluxDB write.", _now(stats, "gateway_to_influx_ms_hist"))
    out = CounterMetricFamily("gs_worker_detections_out", "Detections produced to gs.detections, by stage.",
                              labels=["stage"])
    for stage, key in (("detect", "detect"), ("frames", "frames")):
        counts = _now(stats, key)
        if counts:
            out.add_metric([stage], counts.get("detections_sent", 0))
    yield out
    # the case families are always there (empty, or 0, in a worker without the cases stage): the alert rules
    # that name them then find a series, and /metrics lists the same names on every worker
    cases = _now(stats, "cases") or {}
    outcome = CounterMetricFamily("gs_worker_case_detections", "Detections the case stage took, by "
                                  "outcome (applied, replayed: already applied, dead_lettered).",
                                  labels=["outcome"])
    for key in ("applied", "replayed", "dead_lettered") if "cases" in stats else ():
        outcome.add_metric([key], cases.get(key, 0))
    yield outcome
    yield counter("gs_worker_case_events_published", "Case events on Kafka (gs.case-events).",
                  cases.get("events", 0))
    yield counter("gs_worker_case_store_retries", "Case-store batches retried because the database was "
                  "away.", cases.get("store_retries", 0))
    types = CounterMetricFamily("gs_worker_case_events", "Case events made, by type (opened = cases "
                                "opened).", labels=["type"])
    for kind, n in sorted((_now(stats, "case_event_types") or {}).items()):
        types.add_metric([kind], n)
    yield types
    yield counter("gs_worker_case_conflicts", "Case-store transaction attempts that lost a race to a "
                  "concurrent writer (re-run by ConflictRetry).", ConflictCounts.conflicts)
    yield counter("gs_worker_case_conflict_giveups", "Detections whose transaction lost every attempt "
                  "(dead-lettered as store_conflict).", ConflictCounts.gave_up)
    gauge = GaugeMetricFamily("gs_worker_consumer_lag", "Records not yet committed by this worker's consumer "
                              "groups (Faust's, the ingest stage's), per assigned topic and partition.",
                              labels=["topic", "partition"])
    for (topic, partition), n in sorted(dict(lag.lag).items()):
        gauge.add_metric([topic, str(partition)], n)
    yield gauge


class SupervisorMetrics:
    """The supervisor's own: restarts of the child, and whether one runs now."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.restarts = Counter("gs_worker_child_restarts", "Times the supervisor restarted the stream worker "
                                "after it exited by itself.", registry=registry)
        self.up = Gauge("gs_worker_child_up", "1 while the stream worker child runs.", registry=registry)
        self.exit_code = Gauge("gs_worker_child_last_exit_code", "Exit status of the child's last exit "
                               "(negative: killed by that signal).", registry=registry)

    def started(self) -> None:
        self.up.set(1)

    def exited(self, code: int, restarting: bool) -> None:
        self.up.set(0)
        self.exit_code.set(code)
        if restarting:
            self.restarts.inc()


