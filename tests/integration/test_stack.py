"""`gridsentinel up | status | down` on a second, private stack (own run folder and ports), so the
shared test stack is never disturbed: up is idempotent, a killed service comes back, down stops all."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from gridsentinel import stack
from gridsentinel.settings import REPO_ROOT, Settings
from gridsentinel.stack.services import Kafka

pytestmark = pytest.mark.integration

PORTS = {"GS_MQTT_PORT": "28830", "GS_KAFKA_BOOTSTRAP": "127.0.0.1:29092",
         "GS_KAFKA_CONTROLLER_PORT": "29093", "GS_INFLUX_URL": "http://127.0.0.1:28086",
         "GS_POSTGRES_PORT": "25432"}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "gridsentinel.cli", *args], env=env, cwd=REPO_ROOT,
                          capture_output=True, text=True, timeout=600)


def test_up_status_restart_down(settings: Settings, tmp_path: Path) -> None:
    env = {**os.environ, **PORTS, "GS_RUN_DIR": str(tmp_path / "run")}
    try:
        _check_lifecycle(settings, env, tmp_path)
    finally:
        _cli(env, "down")  # never leave the private stack running, whatever failed


def _check_lifecycle(settings: Settings, env: dict[str, str], tmp_path: Path) -> None:
    first = _cli(env, "up")
    assert first.returncode == 0, first.stderr
    status = _cli(env, "status", "--json")
    assert status.returncode == 0, status.stdout + status.stderr
    import json

    states = {s["service"]: s for s in json.loads(status.stdout)}
    assert set(states) >= {"mosquitto", "kafka", "influxdb", "postgresql"}
    assert all(s["healthy"] and s["version"] not in ("?", "not built") for s in states.values()), states
    assert states["kafka"]["address"].endswith(":29092")

    # A second `up` changes nothing: same processes, nothing started.
    pids = {name: s["pid"] for name, s in states.items()}
    again = _cli(env, "up")
    assert again.returncode == 0 and "starting" not in again.stderr, again.stderr
    assert {s["service"]: s["pid"] for s in json.loads(_cli(env, "status", "--json").stdout)} == pids

    # Kafka killed by hand: status says so, and `up` brings back only Kafka.
    private = Settings(run_dir=tmp_path / "run", kafka_bootstrap=PORTS["GS_KAFKA_BOOTSTRAP"],
                       kafka_controller_port=29093)
    Kafka(private).proc.kill()
    down_state = {s["service"]: s for s in json.loads(_cli(env, "status", "--json").stdout)}
    assert not down_state["kafka"]["healthy"]
    revived = _cli(env, "up")
    assert revived.returncode == 0, revived.stderr
    assert "kafka: starting" in revived.stderr and "mosquitto: starting" not in revived.stderr
    after = {s["service"]: s for s in json.loads(_cli(env, "status", "--json").stdout)}
    assert after["kafka"]["healthy"] and after["kafka"]["pid"] != pids["kafka"]
    assert after["mosquitto"]["pid"] == pids["mosquitto"] and after["influxdb"]["pid"] == pids["influxdb"]

    # down stops only what up started, and all of it.
    assert _cli(env, "down").returncode == 0
    final = json.loads(_cli(env, "status", "--json").stdout)
    assert not any(s["running"] for s in final)
    # The shared test stack was never touched.
    assert all(s.health.ok for s in stack.status(settings))
