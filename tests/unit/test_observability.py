"""/metrics of every process: bounded labels (no device or case ids), the worker's and gateway's metrics
read from the counters the stats files write, the port-in-use error, JSON log lines; and the operators'
Prometheus files (ops/prometheus): structure, metrics the processes export, promtool when it is there."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

from gridsentinel.api.metrics import Metric, render
from gridsentinel.gateway.ledger import GatewayStats
from gridsentinel.gateway.metrics import GatewayMetrics, read_gateway
from gridsentinel.observability import (
    BOUNDED_LABELS,
    MetricsPortInUse,
    ReadCollector,
    StageMetrics,
    json_formatter,
    new_registry,
    serve_metrics,
)
from gridsentinel.settings import REPO_ROOT, Settings
from gridsentinel.worker.metrics import LagSnapshot, SupervisorMetrics, watch_stages

pytestmark = pytest.mark.unit
OPS = REPO_ROOT / "ops" / "prometheus"


@dataclass
class _Ledger:
    queued: int = 3
    solo_queued: int = 0


@dataclass
class _GatewayState:
    """What read_gateway reads of a Gateway: its stats (the real class), ledger gauges, connection."""

    stats: GatewayStats = field(default_factory=GatewayStats)
    ledger: _Ledger = field(default_factory=_Ledger)
    connected: bool = True


def gateway_registry() -> tuple[CollectorRegistry, GatewayStats]:
    registry = new_registry()
    metrics = GatewayMetrics(registry)
    state = _GatewayState()
    registry.register(ReadCollector(lambda: read_gateway(state)))  # type: ignore[arg-type]
    state.stats.received, state.stats.accepted = 5, 3
    state.stats.reject("malformed_json")
    state.stats.reject("unknown_device")
    state.stats.reject("kafka_refused")
    metrics.latency.observe(0.02)
    metrics.acks.observe(4)
    return registry, state.stats


def worker_registry() -> CollectorRegistry:
    """The worker child's registry with stats shaped as the stages register them (ingest, detect, cases)."""
    registry = new_registry()
    stage = StageMetrics(registry)
    stage.took("ingest", 7)
    stage.batch("ingest", 7, 0.01)
    hist = [0] * 10_001
    hist[12] = 7
    stats: dict[str, Any] = {
        "points_written": lambda: 7, "write_failures": lambda: 1, "points_refused": lambda: 0,
        "latency_ms_hist": lambda: hist, "gateway_to_influx_ms_hist": lambda: hist,
        "detect": lambda: {"detections_sent": 2, "partitions": [0, 1]},
        "cases": lambda: {"detections": 2, "applied": 2, "replayed": 0, "dead_lettered": 0, "events": 3},
        "case_event_types": lambda: {"opened": 1, "evidence": 2},
    }
    lag = LagSnapshot()
    lag.lag = {("gs.readings", 0): 5, ("gs.readings", 1): 0}
    watch_stages(registry, stats, lag)
    return registry


def supervisor_registry() -> CollectorRegistry:
    registry = new_registry()
    metrics = SupervisorMetrics(registry)
    metrics.started()
    metrics.exited(-9, restarting=True)
    return registry


def families(registry: CollectorRegistry) -> list[Any]:
    return list(registry.collect())


def exported_names() -> set[str]:
    names = {"up"}  # Prometheus's own, per target
    for registry in (gateway_registry()[0], worker_registry(), supervisor_registry()):
        for fam in families(registry):
            names.add(fam.name)
            names.update(s.name for s in fam.samples)
            if fam.type == "counter":
                names.add(fam.name + "_total")
    return names


def test_counters_come_from_the_stats_the_stats_files_write() -> None:
    registry, stats = gateway_registry()
    get = registry.get_sample_value
    assert get("gs_gateway_messages_in_total") == stats.received == 5
    assert get("gs_gateway_messages_rejected_total", {"reason": "malformed_json"}) == 1
    assert get("gs_gateway_messages_rejected_total", {"reason": "kafka_refused"}) is None  # not a rejection
    assert get("gs_gateway_dead_letters_total", {"reason": "kafka_refused"}) == 1
    assert get("gs_gateway_kafka_queue_records") == 3
    assert get("gs_gateway_delivery_seconds_count") == 1
    worker = worker_registry()
    assert worker.get_sample_value("gs_worker_records_in_total", {"stage": "ingest"}) == 7
    assert worker.get_sample_value("gs_worker_consumer_lag", {"topic": "gs.readings", "partition": "0"}) == 5
    assert worker.get_sample_value("gs_worker_case_events_total", {"type": "opened"}) == 1
    assert worker.get_sample_value("gs_worker_detections_out_total", {"stage": "detect"}) == 2
    # the 1 ms histogram of the ingest sink, as Prometheus buckets: 7 latencies of 12 ms
    assert worker.get_sample_value("gs_worker_event_to_influx_seconds_bucket", {"le": "0.01"}) == 0
    assert worker.get_sample_value("gs_worker_event_to_influx_seconds_bucket", {"le": "0.025"}) == 7
    assert supervisor_registry().get_sample_value("gs_worker_child_restarts_total") == 1


def test_no_metric_carries_a_device_or_case_id() -> None:
    api = render([Metric("gs_cases", "gauge", "Cases by status.", {(("status", "open"),): 1.0})])
    api_families = list(text_string_to_metric_families(api))
    registries = [gateway_registry()[0], worker_registry(), supervisor_registry()]
    seen = 0
    for fam in [f for r in registries for f in families(r)] + api_families:
        for sample in fam.samples:
            seen += 1
            bad = set(sample.labels) - BOUNDED_LABELS
            assert not bad, f"{sample.name} has unbounded label(s) {bad}"
            assert not any(v.startswith(("drain-", "cam-")) for v in sample.labels.values()), sample
    assert seen > 50


def test_a_port_in_use_is_a_clear_error() -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(MetricsPortInUse, match=f"port {port} .*--metrics-port N or GS_GATEWAY_METRICS_PORT"):
            serve_metrics(CollectorRegistry(), port, what="gateway", setting="GS_GATEWAY_METRICS_PORT",
                          host="127.0.0.1")
    assert serve_metrics(CollectorRegistry(), 0, what="gateway", setting="X") is None  # 0: off


def test_json_log_lines_carry_the_context() -> None:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(json_formatter())
    logger = logging.getLogger("gridsentinel.test.json")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("case %s opened", "C1", extra={"case_id": "C1", "stage": "cases"})
    finally:
        logger.removeHandler(handler)
    line = json.loads(out.getvalue())
    assert line["message"] == "case C1 opened" and line["case_id"] == "C1" and line["stage"] == "cases"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+\+00:00", line["time"])
    # a process configured by entry.configure_logging (as the CLI and the worker's child are)
    code = ("import logging; from gridsentinel.entry import configure_logging; configure_logging(False, 'json'); "
            "logging.getLogger('gridsentinel.gateway').warning('rejected', extra={'device_id': 'd1', "
            "'reason': 'malformed_json'}); configure_logging(False, 'text')")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    first = json.loads(done.stderr.splitlines()[0])
    assert (first["logger"], first["level"], first["device_id"], first["reason"]) == (
        "gridsentinel.gateway", "WARNING", "d1", "malformed_json")


# -- ops/prometheus --------------------------------------------------------------------------------------
def rule_metrics(expr: str) -> set[str]:
    """Metric names in a PromQL expression: identifiers outside label matchers, ranges and by/on lists,
    not followed by "(" (functions, aggregations) and not PromQL keywords."""
    words = {"sum", "by", "and", "or", "unless", "rate", "increase", "delta", "without", "on", "ignoring",
             "bool", "offset"}
    expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(by|without|on|ignoring)\s*\([^)]*\)", "", expr)
    return {m for m in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr) if m not in words}


def test_alert_rules_name_exported_metrics_and_say_what_to_do() -> None:
    rules = [r for g in yaml.safe_load((OPS / "alerts.yml").read_text())["groups"] for r in g["rules"]]
    assert {"GridSentinelConsumerLagGrowing", "GridSentinelGatewayDeadLetters", "GridSentinelWorkerRestarting",
            "GridSentinelGatewayProducerReplaced", "GridSentinelInfluxWriteErrors",
            "GridSentinelProcessDown"} <= {r["alert"] for r in rules}
    exported = exported_names()
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        used = rule_metrics(rule["expr"])
        assert used and used <= exported, f"{rule['alert']}: {sorted(used - exported)} not exported"
        for label in re.findall(r"by \(([^)]*)\)", rule["expr"]):
            assert {x.strip() for x in label.split(",")} <= BOUNDED_LABELS | {"instance", "job"}


def test_scrape_config_targets_the_default_ports() -> None:
    config = yaml.safe_load((OPS / "prometheus.yml").read_text())
    assert config["rule_files"] == ["alerts.yml"]
    targets = {job["job_name"]: job["static_configs"][0]["targets"][0] for job in config["scrape_configs"]}
    fields = Settings.model_fields  # the defaults, whatever this environment sets
    gw, worker = fields["gateway_metrics_port"].default, fields["worker_metrics_port"].default
    assert targets["gridsentinel-gateway"] == f"127.0.0.1:{gw}"
    assert targets["gridsentinel-worker"] == f"127.0.0.1:{worker}"
    assert targets["gridsentinel-worker-supervisor"] == f"127.0.0.1:{worker + 1}"
    assert targets["gridsentinel-api"] == "127.0.0.1:8080"


def promtool() -> str | None:
    cached = Path(os.environ.get("GS_CACHE", Path.home() / ".cache" / "gridsentinel")) / "bin" / "promtool"
    return str(cached) if cached.exists() else shutil.which("promtool")


@pytest.mark.skipif(promtool() is None, reason="promtool not installed (scripts/promtool.sh builds it)")
def test_promtool_checks_the_config_and_the_rule_tests(tmp_path: Path) -> None:
    tool = promtool()
    assert tool is not None
    for name in ("prometheus.yml", "alerts.yml", "alerts_test.yml"):
        shutil.copy(OPS / name, tmp_path / name)
    (tmp_path / "viewer.token").write_text("a-viewer-token\n")  # the credentials file the config names
    for argv in (["check", "config", "prometheus.yml"], ["check", "rules", "alerts.yml"],
                 ["test", "rules", "alerts_test.yml"]):
        done = subprocess.run([tool, *argv], cwd=tmp_path, capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, f"promtool {' '.join(argv)}:\n{done.stdout}\n{done.stderr}"

