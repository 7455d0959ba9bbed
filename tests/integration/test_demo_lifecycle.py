"""The demo's children die with it however it dies, and the next demo starts cleanly after any such death.

`gridsentinel demo` runs for real (gateway, worker, API, simulator) on the shared stack, with the
district under unique device ids in a config copy (as in test_city_in_a_box) and on a port of its own.
A first run is killed with SIGKILL: its gateway, worker and API must go with it. A second run on the
same port must start, clean up after the first (its bucket), and stop its children on Ctrl-C even though
the pipe its output went to was closed first (``make run | tee demo.log``, then Ctrl-C).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gridsentinel.children import alive
from gridsentinel.settings import REPO_ROOT
from gridsentinel.stack.services import Mosquitto

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _children(pid_file: Path, parent: int) -> list[dict[str, Any]]:
    """The children a demo recorded, once all three are started (else [])."""
    try:
        record = json.loads(pid_file.read_text())
    except (OSError, ValueError):
        return []
    kids: list[dict[str, Any]] = record["children"]
    return kids if record.get("parent") == parent and len(kids) == 3 else []


def _all_gone(kids: list[dict[str, Any]]) -> bool:
    return not any(alive(int(k["pid"]), k["start"]) for k in kids)


def test_demo_children_die_with_it_and_the_next_run_starts_cleanly(ns: Namespace, tmp_path: Path) -> None:
    prefix = f"y{ns.prefix.strip('.')[-6:]}-"
    path = ns.config_dir / "devices.yaml"
    data = yaml.safe_load(path.read_text())
    for d in data["devices"]:
        d["id"] = prefix + d["id"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    Mosquitto(ns.settings).ensure_devices([str(d["id"]) for d in data["devices"]])
    (ns.config_dir / "receivers.yaml").write_text(yaml.safe_dump(
        {"version": "test", "mqtt": {"enabled": False}, "receivers": []}))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "GS_DATABASE_URL"}  # each run its own case store
    env.update({"GS_CONFIG_DIR": str(ns.config_dir), "PYTHONUNBUFFERED": "1",
                "GS_GATEWAY_METRICS_PORT": "0", "GS_WORKER_METRICS_PORT": "0"})  # tests run side by side
    argv = [sys.executable, "-m", "gridsentinel.cli", "demo", "--port", str(port), "--id-prefix", prefix]
    pid_file = ns.settings.run_dir / "demo" / f"demo-{port}.children.json"
    kids: list[dict[str, Any]] = []
    second: subprocess.Popen[bytes] | None = None
    tags: list[str] = []
    first_log = tmp_path / "demo1.log"
    with open(first_log, "wb") as log:
        first = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT)
    try:
        # 1. kill -9 of a running demo takes its gateway, worker and API with it
        wait_for(lambda: first.poll() is not None or ("Dashboard:" in first_log.read_text()
                                                     and bool(_children(pid_file, first.pid))),
                 180, "the first demo to start", every=1.0, on_timeout=first_log.read_text)
        assert first.poll() is None, first_log.read_text()
        kids = _children(pid_file, first.pid)
        first_tag = json.loads(pid_file.read_text())["tag"]
        tags.append(first_tag)
        first.kill()
        first.wait()
        wait_for(lambda: _all_gone(kids), 60, "the killed demo's children to exit", every=0.5,
                 on_timeout=lambda: json.dumps(kids))

        # 2. the next run starts on the same port and deletes what the dead run left in the stack
        second = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        assert second.stdout is not None
        seen = []
        for line in second.stdout:
            seen.append(line.decode(errors="replace"))
            if "Dispatcher token:" in seen[-1]:
                break
        assert any("Dashboard:" in s for s in seen), "".join(seen)
        # the run made its own users: the printed token signs in to its API (none ships in the repository)
        token = seen[-1].split("Dispatcher token:")[1].strip()
        me = httpx.get(f"http://127.0.0.1:{port}/dashboard/me", headers={"Authorization": f"Bearer {token}"},
                       timeout=30)
        assert me.status_code == 200 and me.json()["role"] == "dispatcher", me.text
        assert second.poll() is None, "".join(seen)
        assert any(first_tag in s and "without its shutdown" in s for s in seen), "".join(seen)
        with ns.influx() as client:
            assert client.buckets_api().find_bucket_by_name(first_tag) is None
        wait_for(lambda: bool(_children(pid_file, second.pid)), 60, "the second demo's children")
        kids = _children(pid_file, second.pid)
        tags.append(json.loads(pid_file.read_text())["tag"])

        # 3. the reader of its output goes away, then Ctrl-C: it still stops everything it started
        second.stdout.close()
        second.send_signal(signal.SIGINT)
        assert second.wait(120) == 0
        wait_for(lambda: _all_gone(kids), 60, "the second demo's children to exit", every=0.5,
                 on_timeout=lambda: json.dumps(kids))
        assert not pid_file.exists()
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait()
            if proc is not None and proc.stdout is not None:
                proc.stdout.close()
        for k in kids:  # never leave a demo behind, whatever failed
            if alive(int(k["pid"]), k["start"]):
                os.killpg(int(k["pid"]), signal.SIGKILL)
        pid_file.with_name(f"demo-{port}.lock").unlink(missing_ok=True)  # a port of this test only
        for tag in tags:  # the runs' logs and case stores
            shutil.rmtree(pid_file.parent / tag, ignore_errors=True)
