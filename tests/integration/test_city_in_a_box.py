"""City in a box: the simulator against the whole pipeline (gateway → ingest, detect, cases, frames),
checked against the simulator's ground truth.

Every incident has exactly one case (same cell, same category), no case lacks an incident, and each
case's first detection (event time) lies between the incident's start and start + its expected delay,
which the simulator derives from the detector config (docs/simulator.md). Each case has a due time and
evidence from the incident's device (a camera's: its stored, de-identified snapshot). The district runs under
unique device ids in a private config copy, topics, bucket and case store (the `ns` fixture).

The window is pinned, not "now": 21:40 to 06:10 Asia/Shanghai (the latest such night that has passed), so
it crosses both ends of the night noise limit whatever the hour the suite starts.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import yaml

from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.store_protocol import CaseQuery
from gridsentinel.stack.services import Mosquitto

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration
SHANGHAI = ZoneInfo("Asia/Shanghai")
SPEED = "240"
START = "21:40"  # the latest past 21:40 in Shanghai whose whole window has passed
DURATION_S = 8.5 * 3600  # to 06:10: over 22:00 and 06:00


async def _cases(url: str) -> list[dict[str, object]]:
    store = await SqlCaseStore.open(url)
    try:
        return [c.to_dict() for c in await store.list_cases(CaseQuery(limit=1000))]
    finally:
        await store.close()


async def _detections(url: str, case_id: str) -> list[dict[str, Any]]:
    store = await SqlCaseStore.open(url)
    try:
        return await store.case_detections(case_id)
    finally:
        await store.close()


def _evidence_problems(inc: dict[str, Any], case: dict[str, Any], dets: list[dict[str, Any]],
                       run_dir: Path) -> list[str]:
    """A dispatcher needs a due time, the device that saw it, and its evidence (a camera: the snapshot)."""
    out = []
    if not case.get("due_at"):
        out.append(f"{inc['id']}: case has no due time")
    if not dets or any(d.get("device_id") != inc["device_id"] for d in dets):
        seen = [d.get("device_id") for d in dets]
        out.append(f"{inc['id']}: detections from {seen}, expected {inc['device_id']}")
    if not dets or not all(d.get("evidence") for d in dets):
        out.append(f"{inc['id']}: a detection without evidence")
    if inc["detector"].startswith("camera."):
        snap = (dets[0].get("evidence") or {}).get("snapshot") if dets else None
        path = run_dir / str((snap or {}).get("path", "missing"))
        if not snap or not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != snap["sha256"]:
            out.append(f"{inc['id']}: no stored de-identified snapshot matching {snap}")
    return out


def test_simulated_incidents_become_exactly_their_cases(ns: Namespace, tmp_path: Path) -> None:
    prefix = f"x{ns.prefix.strip('.')[-6:]}-"
    path = ns.config_dir / "devices.yaml"
    data = yaml.safe_load(path.read_text())
    for d in data["devices"]:
        d["id"] = prefix + d["id"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ids = [str(d["id"]) for d in data["devices"]]
    Mosquitto(ns.settings).ensure_devices(ids)
    # alert delivery runs, but to no receiver: the district's webhooks and MQTT alert topic are not ours
    (ns.config_dir / "receivers.yaml").write_text(yaml.safe_dump(
        {"version": "test", "mqtt": {"enabled": False}, "receivers": []}))
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    truth_path = tmp_path / "ground-truth.json"

    env_db = {"GS_DATABASE_URL": db}
    old_env = ns.env
    ns.env = lambda: {**old_env(), **env_db}  # type: ignore[method-assign]
    ns.start_gateway()
    stages = ["ingest", "detect", "cases", "frames", "live-config"]
    ns.spawn("worker", "worker", "--app-id", ns.app_id, "--stages", *stages)
    sim = ns.spawn("simulate", "simulate", "--speed", SPEED, "--seed", "3", "--id-prefix", prefix,
                   "--start", START, "--duration", str(DURATION_S), "--ground-truth", str(truth_path))

    def simulated() -> bool:
        if any(p.poll() is not None for p in ns.procs if p is not sim):
            ns.check_alive()  # the gateway or the worker died: fail with its log
        if sim.poll() is None:
            return False
        ns.procs.remove(sim)  # the simulator is meant to end: later checks watch the services only
        return True

    wait_for(simulated, 1200, "the simulator to finish", every=2.0, on_timeout=lambda: ns.log("simulate"))
    assert sim.returncode == 0, ns.log("simulate")
    truth = json.loads(truth_path.read_text())
    hours = [datetime.fromtimestamp(truth["window"][k], SHANGHAI).strftime("%H:%M") for k in ("start", "end")]
    assert hours == ["21:40", "06:10"], truth["window"]
    incidents = truth["incidents"]
    expected = {(i["grid_code"], i["category"]) for i in incidents}

    def settled() -> bool:
        got = {(c["grid_code"], c["category_key"]) for c in asyncio.run(_cases(db))}
        return got >= expected

    wait_for(settled, 180, "a case for every incident", every=3.0, ns=ns,
             on_timeout=lambda: json.dumps(asyncio.run(_cases(db)), default=str)[:3000])
    cases = asyncio.run(_cases(db))
    problems = []
    for inc in incidents:
        key = (inc["grid_code"], inc["category"])
        mine = [c for c in cases if (c["grid_code"], c["category_key"]) == key]
        if len(mine) != 1:
            problems.append(f"{inc['id']}: {len(mine)} cases")
            continue
        problems += _evidence_problems(inc, mine[0], asyncio.run(_detections(db, str(mine[0]["case_id"]))),
                                       ns.settings.run_dir)
        first = float(mine[0]["first_seen_at"])  # type: ignore[arg-type]
        if not inc["start"] - 1.0 <= first <= inc["start"] + inc["expected_delay_s"]:
            problems.append(f"{inc['id']}: first detection {first - inc['start']:+.0f}s after start, "
                            f"expected within {inc['expected_delay_s']:.0f}s ({inc['why']})")
    for c in cases:
        if (c["grid_code"], c["category_key"]) not in expected:
            problems.append(f"case without incident: {c['category_key']} in {c['grid_code']}: {c['title']}")
    assert not problems, "\n".join(problems) + f"\n(python {sys.version_info[:2]})"
