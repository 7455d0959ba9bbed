"""City in a box: the simulator against the whole pipeline (gateway → ingest, detect, cases, frames),
checked against the simulator's ground truth.

Every incident has exactly one case (same cell, same category), no case lacks an incident, and each
case's first detection (event time) lies between the incident's start and start + its expected delay,
which the simulator derives from the detector config (docs/simulator.md). The district runs under
unique device ids in a private config copy, topics, bucket and case store (the `ns` fixture).
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest
import yaml

from gridsentinel.alerts.store import SqlCaseStore
from gridsentinel.alerts.store_protocol import CaseQuery
from gridsentinel.ingest.app import STAGES
from gridsentinel.stack.services import Mosquitto

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration
NEEDED = ("ingest", "detect", "cases", "frames")
# TEMPORARY: remove this skip once every stage above is registered in gridsentinel/ingest/app.py STAGES.
MISSING = [s for s in NEEDED if s not in STAGES]
SPEED = "240"


async def _cases(url: str) -> list[dict[str, object]]:
    store = await SqlCaseStore.open(url)
    try:
        return [c.to_dict() for c in await store.list_cases(CaseQuery(limit=1000))]
    finally:
        await store.close()


@pytest.mark.skipif(bool(MISSING), reason=f"pipeline stages not built yet: {', '.join(MISSING)}")
def test_simulated_incidents_become_exactly_their_cases(ns: Namespace, tmp_path: Path) -> None:
    prefix = f"x{ns.prefix.strip('.')[-6:]}-"
    path = ns.config_dir / "devices.yaml"
    data = yaml.safe_load(path.read_text())
    for d in data["devices"]:
        d["id"] = prefix + d["id"]
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    ids = [str(d["id"]) for d in data["devices"]]
    Mosquitto(ns.settings).ensure_devices(ids)
    db = f"sqlite:///{tmp_path / 'cases.db'}"
    truth_path = tmp_path / "ground-truth.json"

    env_db = {"GS_DATABASE_URL": db}
    old_env = ns.env
    ns.env = lambda: {**old_env(), **env_db}  # type: ignore[method-assign]
    ns.start_gateway()
    stages = [s for s in ("ingest", "detect", "cases", "frames", "live-config") if s in STAGES]
    ns.spawn("worker", "worker", "--app-id", ns.app_id, "--stages", *stages)
    sim = ns.spawn("simulate", "simulate", "--speed", SPEED, "--seed", "3", "--id-prefix", prefix,
                   "--ground-truth", str(truth_path))
    wait_for(lambda: sim.poll() is not None, 1200, "the simulator to finish", every=2.0, ns=ns,
             on_timeout=lambda: ns.log("simulate"))
    assert sim.returncode == 0, ns.log("simulate")
    truth = json.loads(truth_path.read_text())
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
        first = float(mine[0]["first_seen_at"])  # type: ignore[arg-type]
        if not inc["start"] - 1.0 <= first <= inc["start"] + inc["expected_delay_s"]:
            problems.append(f"{inc['id']}: first detection {first - inc['start']:+.0f}s after start, "
                            f"expected within {inc['expected_delay_s']:.0f}s ({inc['why']})")
    for c in cases:
        if (c["grid_code"], c["category_key"]) not in expected:
            problems.append(f"case without incident: {c['category_key']} in {c['grid_code']}: {c['title']}")
    assert not problems, "\n".join(problems) + f"\n(python {sys.version_info[:2]})"
