"""Every process's /metrics, scraped over HTTP: a gateway and a supervised worker (ingest) on ports of
their own; readings and a bad message move the counters; the alert rules name only metrics that the
processes export (the API's /metrics: tests/unit/api/test_devices_grid_ops.py)."""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import time
import urllib.request
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from gridsentinel.settings import REPO_ROOT

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("0.0.0.0", port))
        except OSError:
            return False
    return True


def free_ports(n: int) -> int:
    """The first of ``n`` consecutive free ports (a worker takes N and N + 1)."""
    for _ in range(200):
        first = random.randint(20000, 40000)
        if all(_free(first + i) for i in range(n)):
            return first
    raise AssertionError("no free ports")


def scrape(port: int) -> tuple[Samples, set[str]]:
    """The samples of http://127.0.0.1:port/metrics, and every metric name it declares."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as answer:
        text = answer.read().decode()
    samples: Samples = {}
    names: set[str] = set()
    for family in text_string_to_metric_families(text):
        names.add(family.name)
        names.update({"counter": [family.name + "_total"],
                      "histogram": [family.name + s for s in ("_bucket", "_sum", "_count")]}.get(family.type, []))
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
            names.add(s.name)
    return samples, names


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def rule_metrics(path: Path) -> set[str]:
    """The metric names the alert rules' expressions use (identifiers not followed by "(", not PromQL words)."""
    import re

    words = {"sum", "by", "and", "or", "rate", "increase", "delta", "without", "on", "unless", "humanize"}
    found: set[str] = set()
    for group in yaml.safe_load(path.read_text())["groups"]:
        for rule in group["rules"]:
            expr = re.sub(r"\{[^}]*\}|\[[^\]]*\]|\b(by|without|on|ignoring)\s*\([^)]*\)", "", rule["expr"])
            found |= {m for m in re.findall(r"\b([a-zA-Z_:][a-zA-Z0-9_:]*)\b(?!\s*\()", expr)
                      if m not in words and not m.isdigit()}
    return found


def json_lines(log: str) -> list[dict[str, object]]:
    out = []
    for line in log.splitlines():
        if line.startswith("{"):
            out.append(json.loads(line))  # every log line that looks like one must be whole JSON
    return out


def test_gateway_and_worker_metrics_move(ns: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GS_LOG_FORMAT", "json")  # and their logs are JSON lines
    device = f"drain-{ns.prefix.strip('.')}"
    ns.add_devices([{"id": device, "kind": "drain_level", "location": {"lat": 31.87225, "lon": 120.55053},
                     "expected_interval_s": 60, "install": {"depth_m": 3.0, "rim_m": 3.0}}])
    gw_port, worker_port = free_ports(1), free_ports(2)
    ns.start_gateway("gateway", "--metrics-port", str(gw_port))
    supervisor = ns.spawn("worker", "worker", "--app-id", ns.app_id, "--bucket", ns.bucket,
                          "--metrics-port", str(worker_port))

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
    client.username_pw_set(device, ns.settings.device_password(device))
    client.connect(ns.settings.mqtt_host, ns.settings.mqtt_port)
    client.loop_start()
    now = time.time()
    for seq in range(1, 4):
        body = json.dumps({"ts": now - 10 + seq, "seq": seq, "metrics": {"water_level_m": 1.0 + seq / 10}})
        client.publish(f"gs/v1/{device}/telemetry", body, qos=1).wait_for_publish(10)
    client.publish(f"gs/v1/{device}/telemetry", b'{"ts": 1, "metrics": {', qos=1).wait_for_publish(10)
    client.loop_stop()
    client.disconnect()
    logs = lambda: ns.log("gateway") + "\n" + ns.log("worker")  # noqa: E731

    def gateway_counted() -> Samples:
        samples, _ = scrape(gw_port)
        done = (value(samples, "gs_gateway_messages_accepted_total") >= 3
                and value(samples, "gs_gateway_messages_rejected_total", reason="malformed_json") >= 1)
        return samples if done else {}

    gw = wait_for(gateway_counted, 60, "the gateway's counters", on_timeout=logs, ns=ns)
    assert value(gw, "gs_gateway_messages_in_total") >= 4
    assert value(gw, "gs_gateway_dead_letters_total", reason="malformed_json") >= 1
    assert value(gw, "gs_gateway_records_delivered_total") >= 4  # three readings and the dead letter
    assert value(gw, "gs_gateway_mqtt_connected") == 1
    assert value(gw, "process_resident_memory_bytes") > 0

    def worker_counted() -> Samples:
        try:
            samples, _ = scrape(worker_port)
        except OSError:  # the child is still starting
            return {}
        lag = [k for k in samples if k[0] == "gs_worker_consumer_lag" and dict(k[1])["topic"] == ns.prefix
               + "gs.readings"]
        done = (value(samples, "gs_worker_records_in_total", stage="ingest") >= 3
                and value(samples, "gs_worker_influx_points_written_total") >= 3 and lag)
        return samples if done else {}

    worker = wait_for(worker_counted, 120, "the worker's counters and lag", on_timeout=logs, ns=ns)
    lags = {dict(k[1])["partition"]: v for k, v in worker.items() if k[0] == "gs_worker_consumer_lag"}
    assert lags and all(v >= 0 for v in lags.values())
    assert value(worker, "gs_worker_batch_size_count", stage="ingest") >= 1
    assert value(worker, "gs_worker_event_to_influx_seconds_count") >= 3
    assert value(worker, "process_cpu_seconds_total") > 0

    before, supervisor_names = scrape(worker_port + 1)
    assert value(before, "gs_worker_child_up") == 1
    assert value(before, "gs_worker_child_restarts_total") == 0

    rejected = [r for r in json_lines(ns.log("gateway")) if r.get("reason") == "malformed_json"]
    assert rejected and rejected[0]["device_id"] == device and rejected[0]["level"] == "WARNING"
    assert str(rejected[0]["time"]).endswith("+00:00")
    assert any(str(r["logger"]).startswith("gridsentinel") for r in json_lines(ns.log("worker")))

    # the alert rules use only metrics these processes export (and Prometheus's own `up`)
    exported = scrape(gw_port)[1] | scrape(worker_port)[1] | supervisor_names | {"up"}
    missing = rule_metrics(REPO_ROOT / "ops" / "prometheus" / "alerts.yml") - exported
    assert not missing, f"alert rules name metrics no process exports: {sorted(missing)}"

    # the stream worker crashes: the supervisor restarts it and counts it (the "stage restarting" alert)
    children = Path(f"/proc/{supervisor.pid}/task/{supervisor.pid}/children").read_text().split()
    assert len(children) == 1
    os.kill(int(children[0]), signal.SIGKILL)

    def restarted() -> Samples:
        samples, _ = scrape(worker_port + 1)
        return samples if value(samples, "gs_worker_child_restarts_total") == 1 else {}

    after = wait_for(restarted, 60, "the supervisor to count the restart", on_timeout=logs, ns=ns)
    assert value(after, "gs_worker_child_last_exit_code") == -signal.SIGKILL
    wait_for(lambda: value(scrape(worker_port + 1)[0], "gs_worker_child_up") == 1, 60, "the child to be up",
             on_timeout=logs, ns=ns)

    def answers() -> bool:
        try:
            return "gs_worker_records_in" in scrape(worker_port)[1]  # a new child: its counters start again
        except OSError:
            return False

    wait_for(answers, 120, "the restarted child's /metrics", on_timeout=logs, ns=ns)


def test_a_taken_port_is_a_clear_error(ns: Namespace) -> None:
    port = free_ports(1)
    with socket.socket() as holder:
        holder.bind(("0.0.0.0", port))
        holder.listen()
        proc = ns.spawn("gateway", "gateway", "--client-id", f"gw-{ns.prefix.strip('.')}-x",
                        "--metrics-port", str(port))
        assert proc.wait(60) == 2
        worker = ns.spawn("worker", "worker", "--app-id", ns.app_id, "--metrics-port", str(port))
        assert worker.wait(60) == 2  # the supervisor refuses at once: no child restarted in a loop
    assert f"port {port} for the gateway's /metrics is already in use" in ns.log("gateway", tail=None)
    assert f"port {port} for the worker's /metrics is already in use" in ns.log("worker", tail=None)
