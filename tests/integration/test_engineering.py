"""Engineering tools on the real stack: a config applied while readings flow, a backtest over InfluxDB
that reproduces the live pipeline's cases, and a shadow config that records cases but never dispatches.

Readings go straight to ``<prefix>gs.readings`` (as the gateway would put them), workers are real
``gridsentinel worker`` subprocesses and the tools run as ``gridsentinel config ...`` /
``gridsentinel backtest`` subprocesses, each test with its own topics, bucket, case store and config
versions file.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from confluent_kafka import Producer

from gridsentinel.cases.case import Case
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.store_protocol import CaseQuery
from gridsentinel.core.devices import Registry
from gridsentinel.core.records import Reading
from gridsentinel.settings import REPO_ROOT

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration

# cells of the test grid that do not touch each other (dedup's merge radius never joins them)
CELLS = ["320582004001001", "320582004001003", "320582004001007", "320582004002002"]


@pytest.fixture(autouse=True)
def _quiet_alerts(ns: Namespace, monkeypatch: pytest.MonkeyPatch) -> None:
    # no webhook or MQTT delivery from these tests: other tests share the broker
    (ns.config_dir / "receivers.yaml").write_text(yaml.safe_dump(
        {"version": "test", "mqtt": {"enabled": False}, "receivers": []}))
    monkeypatch.setenv("GS_CASES_SWEEP_INTERVAL", "2")
    monkeypatch.setenv("GS_CASES_OUTBOX_GRACE", "1")


class Bus:
    """The test's Kafka: publish readings, collect detections and case events."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        self.readings = f"{ns.prefix}gs.readings"
        names = [self.readings, f"{ns.prefix}gs.detections", f"{ns.prefix}gs.case-events",
                 f"{ns.prefix}gs.deadletter"]
        ns.create_topics(*names)
        self.producer = ns.producer()
        self.consumer = ns.consumer(names[1:3])
        self.detections: list[dict[str, Any]] = []
        self.case_events: list[dict[str, Any]] = []

    def publish(self, readings: list[Reading]) -> None:
        for r in readings:
            self.producer.produce(self.readings, key=r.device_id.encode(), value=r.to_json())
        assert self.producer.flush(30) == 0

    def poll(self) -> None:
        while (msg := self.consumer.poll(0.2)) is not None:
            if msg.error():
                continue
            topic, value = msg.topic(), msg.value()
            assert topic is not None and value is not None  # None only on error events
            target = self.case_events if topic.endswith("gs.case-events") else self.detections
            target.append(json.loads(value))

    def of(self, device: str) -> list[dict[str, Any]]:
        self.poll()
        return [d for d in self.detections if d["device_id"] == device]

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def bus(ns: Namespace) -> Iterator[Bus]:
    b = Bus(ns)
    yield b
    b.close()


class Stream(threading.Thread):
    """Readings keep flowing: each device reports its current angle every 0.2 s, event time advancing
    4 s per reading (faster than the clock, so the 120 s reorder window releases readings in seconds)."""

    def __init__(self, ns: Namespace, angles: dict[str, float], start: float) -> None:
        super().__init__(daemon=True)
        self.producer = Producer({"bootstrap.servers": ns.settings.kafka_bootstrap, "acks": "all"})
        self.topic = f"{ns.prefix}gs.readings"
        self.angles = angles
        self.t = start
        self.seq = 0
        self.halt = threading.Event()

    def run(self) -> None:
        while not self.halt.is_set():
            for device, deg in list(self.angles.items()):
                r = Reading(device, "tilt", "deg", deg, round(self.t, 3), seq=self.seq, kind="cover_tilt")
                self.producer.produce(self.topic, key=device.encode(), value=r.to_json())
            self.producer.flush(10)
            self.seq += 1
            self.t += 4.0
            self.halt.wait(0.2)

    def stop(self) -> None:
        self.halt.set()
        self.join(10)


def _covers(ns: Namespace, n: int) -> list[str]:
    """``n`` covers, one per cell of CELLS (their cases: category component:0103)."""
    grid = Registry.load(ns.config_dir).grid
    assert grid is not None
    tag = ns.prefix.strip(".")
    devices = []
    for i in range(n):
        lat, lon = grid.centroid(CELLS[i])
        devices.append({"id": f"cover-{tag}-{i}", "kind": "cover_tilt", "location": {"lat": lat, "lon": lon},
                        "grid_code": CELLS[i],
                        # a long interval: a cover quiet during the test is never "offline"
                        "expected_interval_s": 3600})
    # only the test's devices: a registry device that never reports would go "offline" mid-test
    (ns.config_dir / "devices.yaml").write_text(yaml.safe_dump({"devices": []}))
    ns.add_devices(devices)
    return [str(d["id"]) for d in devices]


def _with_override(ns: Namespace, version: str, device: str, alarm_deg: float) -> Path:
    """The test's detectors.yaml with a new version and a lower tilt limit for one device."""
    data = yaml.safe_load((ns.config_dir / "detectors.yaml").read_text())
    data["version"] = version
    data.setdefault("device_overrides", {})[device] = {"cover_tilt": {"alarm_deg": alarm_deg}}
    path = ns.workdir / f"{version}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def _tool_env(ns: Namespace, **extra: str) -> dict[str, str]:
    """Env for `gridsentinel config ...`: the test's topics, and its own config versions file."""
    return {**ns.env(), "GS_RUN_DIR": str(ns.workdir / "tools"), **extra}


def _gs(env: dict[str, str], *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-m", "gridsentinel.cli", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"gridsentinel {' '.join(args)} exited {done.returncode}:\n{done.stderr}"
    return done


def _stats(ns: Namespace, name: str) -> dict[str, Any]:
    try:
        data: dict[str, Any] = json.loads((ns.workdir / f"{name}.stats.json").read_text())
        return data
    except (OSError, ValueError):
        return {}


def _worker(ns: Namespace, name: str, *stages: str) -> subprocess.Popen[bytes]:
    proc = ns.spawn(name, "worker", "--app-id", ns.app_id, "--stages", *stages, "--bucket", ns.bucket,
                    "--stats-file", str(ns.workdir / f"{name}.stats.json"))
    wait_for(lambda: (_stats(ns, name).get("detect") or {}).get("partitions") == [0, 1, 2, 3], 90,
             f"{name} to own the readings partitions", ns=ns, on_timeout=lambda: ns.log(name))
    return proc


def _cases(url: str) -> list[Case]:
    async def read() -> list[Case]:
        store = await SqlCaseStore.open(url)
        try:
            return await store.list_cases(CaseQuery(limit=1000))
        finally:
            await store.close()

    return asyncio.run(read())


def _cells(cases: list[Case]) -> set[tuple[str, str]]:
    return {(c.grid_code, c.category_key) for c in cases}


# -- 1. a config applied while readings flow --------------------------------------------------------
def test_applied_config_changes_detections_without_restart_and_keeps_state(ns: Namespace, bus: Bus) -> None:
    quiet, tilted = _covers(ns, 2)
    worker = _worker(ns, "worker", "detect", "live-config")
    log = lambda: ns.log("worker")  # noqa: E731
    # `quiet` leans 7°: under the live limit (10°), over the new one (5°); `tilted` leans 30°: an alarm
    stream = Stream(ns, {quiet: 7.0, tilted: 30.0}, start=time.time() - 3000)
    stream.start()
    try:
        wait_for(lambda: bus.of(tilted), 60, "the alarm of the tilted cover", ns=ns, on_timeout=log)
        alarm = bus.of(tilted)[0]
        assert (alarm["severity"], alarm["evidence"]["phase"]) == ("alarm", "open")
        released = (_stats(ns, "worker").get("detect") or {}).get("released", 0)
        wait_for(lambda: (_stats(ns, "worker").get("detect") or {}).get("released", 0) > released + 10, 30,
                 "more readings of both covers to be applied", ns=ns, on_timeout=log)
        assert bus.of(quiet) == []  # 7° is fine under the live config

        new = _with_override(ns, "lowered", quiet, alarm_deg=5.0)
        out = _gs(_tool_env(ns), "config", "apply", str(new), "--author", "test:engineer").stdout
        assert "config v1 (lowered@v1)" in out and "stored and published" in out

        wait_for(lambda: bus.of(quiet), 60, "the quiet cover's alarm under the new config", ns=ns,
                 on_timeout=log)
        found = bus.of(quiet)[0]
        assert (found["severity"], found["detector_version"]) == ("alarm", "lowered@v1")
        assert "limit 5°" in found["message"]
        wait_for(lambda: _stats(ns, "worker").get("config_label") == "lowered@v1", 30,
                 "the worker's stats to show the new config", ns=ns)  # the stats file is rewritten once a second

        # the tilted cover's detector did not change: its incident continues (escalates, not reopens)
        stream.angles[tilted] = 120.0
        wait_for(lambda: [d for d in bus.of(tilted) if d["severity"] == "critical"], 60,
                 "the tilted cover's escalation", ns=ns, on_timeout=log)
    finally:
        stream.stop()
    time.sleep(2)  # anything a lost state would re-alert arrives with these readings
    dets = bus.of(tilted)
    assert {d["evidence"]["incident_started_at"] for d in dets} == {alarm["evidence"]["incident_started_at"]}
    assert sorted((d["severity"], d["evidence"]["phase"]) for d in dets) == [
        ("alarm", "open"), ("critical", "escalate")]
    assert [d["detection_id"] for d in dets if d["severity"] == "alarm"] == [alarm["detection_id"]]
    assert worker.poll() is None  # the same process all along: no restart

    history = json.loads(_gs(_tool_env(ns), "config", "history", "--json").stdout)
    assert [(v["number"], v["label"], v["author"]) for v in history] == [(1, "lowered@v1", "test:engineer")]


# -- 2. a backtest reproduces the live pipeline's cases ---------------------------------------------
def test_backtest_over_influx_reproduces_live_cases(ns: Namespace, bus: Bus, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    monkeypatch.setenv("GS_DATABASE_URL", url)
    covers = _covers(ns, 4)
    _worker(ns, "worker", "ingest", "detect", "cases")
    t0 = time.time() - 900
    angles = {covers[0]: [1, 1, 30, 30, 30, 30, 2, 1],        # an alarm
              covers[1]: [1, 30, 30, 120, 120, 1, 1, 1],      # an alarm that turns critical
              covers[2]: [1, 1, 1, 1, 95, 95, 1, 1],          # critical at once
              covers[3]: [1, 1, 1, 1, 1, 1, 1, 1]}            # nothing
    readings = [Reading(c, "tilt", "deg", float(deg), round(t0 + 10 * i, 3), seq=i, kind="cover_tilt")
                for c, series in angles.items() for i, deg in enumerate(series)]
    bus.publish(readings)

    wait_for(lambda: len(_cases(url)) >= 3, 90, "the live cases", ns=ns, on_timeout=lambda: ns.log("worker"))

    def points() -> int:
        query = (f'from(bucket: "{ns.bucket}") |> range(start: -1d) |> filter(fn: (r) => '
                 'r._measurement == "reading" and r._field == "value") |> group() |> count()')
        with ns.influx() as influx:
            return sum(int(rec.get_value()) for t in influx.query_api().query(query) for rec in t.records)

    wait_for(lambda: points() >= len(readings), 60, "every reading in InfluxDB", ns=ns)
    time.sleep(3)  # a case the live side might still open arrives before counting
    live = _cases(url)

    out = tmp_path / "backtest"
    done = _gs(ns.env(), "backtest", "--config", str(ns.config_dir), "--since", str(t0 - 60),
               "--until", str(time.time()), "--source", "influx", "--bucket", ns.bucket, "--json",
               "--out", str(out), timeout=110)
    summary = json.loads(done.stdout)
    run = summary["runs"]["candidate"]
    assert summary["readings"] == len(readings)
    assert run["cases"] == len(live) == 3
    assert {tuple(c.split(" ")) for c in run["case_cells"]} == _cells(live) == {
        (CELLS[0], "component:0103"), (CELLS[1], "component:0103"), (CELLS[2], "component:0103")}
    assert summary["real_cases"] == len(live)
    assert run["detections_by_severity"] == {"alarm": 2, "critical": 2}
    assert (out / "summary.json").exists() and (out / "report.html").stat().st_size > 1000


# -- 3. a shadow config records its own cases and never dispatches ----------------------------------
def test_shadow_config_records_cases_and_never_dispatches(ns: Namespace, bus: Bus, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    live_url, shadow_url = f"sqlite:///{tmp_path / 'cases.db'}", f"sqlite:///{tmp_path / 'shadow.db'}"
    monkeypatch.setenv("GS_DATABASE_URL", live_url)
    monkeypatch.setenv("GS_SHADOW_DATABASE_URL", shadow_url)
    quiet, tilted = _covers(ns, 2)
    _worker(ns, "worker", "detect", "cases", "shadow")
    candidate = _with_override(ns, "candidate", quiet, alarm_deg=5.0)
    out = _gs(_tool_env(ns), "config", "shadow", "start", str(candidate), "--author", "test:engineer").stdout
    assert "shadow config shadow:candidate started" in out
    wait_for(lambda: "shadow:candidate" in ns.log("worker", tail=None) and
             (_stats(ns, "worker").get("shadow") or {}).get("run_id"), 60, "the shadow run to start",
             ns=ns, on_timeout=lambda: ns.log("worker"))

    t0 = time.time() - 600
    bus.publish([Reading(d, "tilt", "deg", deg, round(t0 + 10 * i, 3), seq=i, kind="cover_tilt")
                 for d, deg in ((quiet, 7.0), (tilted, 30.0)) for i in range(6)])
    wait_for(lambda: len(_cases(shadow_url)) == 2 and len(_cases(live_url)) == 1, 90,
             "a live case and two shadow cases", ns=ns,
             on_timeout=lambda: f"live {_cells(_cases(live_url))} shadow {_cells(_cases(shadow_url))} "
                                f"{_stats(ns, 'worker')}\n{ns.log('worker')}")
    live, shadow = _cases(live_url), _cases(shadow_url)
    assert _cells(live) == {(CELLS[1], "component:0103")}
    assert _cells(shadow) == {(CELLS[0], "component:0103"), (CELLS[1], "component:0103")}

    def case_events() -> list[dict[str, Any]]:
        bus.poll()
        return bus.case_events

    wait_for(case_events, 30, "the live case's events", ns=ns)
    time.sleep(3)  # a shadow event, if one leaked, would be here by now
    bus.poll()
    assert {e["case_id"] for e in bus.case_events} == {live[0].case_id}
    assert {e["case"]["grid_code"] for e in bus.case_events} == {CELLS[1]}

    report = json.loads(_gs(_tool_env(ns), "config", "shadow", "report").stdout)
    assert report["label"] == "shadow:candidate" and report["period"]["active"]
    assert (report["shadow"]["cases"], report["live"]["cases"]) == (2, 1)
    assert report["cells_only_shadow"] == [f"{CELLS[0]} component:0103"]
    assert report["cells_only_live"] == []
    assert report["shadow"]["by_category"] == {"component:0103": 2}
    assert report["live"]["by_category"] == {"component:0103": 1}

    _gs(_tool_env(ns), "config", "shadow", "stop")
    stopped = json.loads(_gs(_tool_env(ns), "config", "shadow", "report").stdout)
    assert not stopped["period"]["active"] and stopped["shadow"]["cases"] == 2
