"""Live config beyond detectors on the real stack: a routing version applied with ``gridsentinel config
apply`` routes the next case of a running ``cases live-config`` worker to the new department, without a
restart; a bad version published on ``gs.config`` is rejected by the worker and the old routing stays."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from gridsentinel.engineering.publish import publish
from gridsentinel.settings import REPO_ROOT

from .conftest import Namespace, wait_for
from .test_case_stage import CELLS, Kafka, Receiver, configure, detection, receiver, store_state  # noqa: F401

pytestmark = pytest.mark.integration


def _department(url: str, cell: str) -> str | None:
    cases = [c for c in store_state(url)["cases"] if c.grid_code == cell]
    return cases[0].department if cases else None


def test_routing_applies_to_the_next_case_and_a_bad_version_is_rejected(
    ns: Namespace, receiver: Receiver, case_store_url: str, monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    configure(ns, receiver, case_store_url, monkeypatch)
    kafka = Kafka(ns)
    worker = ns.spawn("worker", "worker", "--app-id", ns.app_id, "--stages", "cases", "live-config")
    log = lambda: ns.log("worker")  # noqa: E731
    t0 = time.time()
    kafka.produce([detection("lc-1", CELLS[0], t0)])
    wait_for(lambda: _department(case_store_url, CELLS[0]), 120, "the first case", ns=ns, on_timeout=log)
    assert _department(case_store_url, CELLS[0]) == "drainage"  # config/routing.yaml: component:0103

    routing = (ns.config_dir / "routing.yaml").read_text()
    line = '{category: "component:0103", department: drainage}'
    assert line in routing
    new = ns.workdir / "routing.yaml"
    new.write_text(routing.replace(line, '{category: "component:0103", department: sanitation}'))
    env = {**ns.env(), "GS_RUN_DIR": str(ns.workdir / "tools")}
    done = subprocess.run([sys.executable, "-m", "gridsentinel.cli", "config", "apply", str(new)], env=env,
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=90)
    assert done.returncode == 0 and "routing config v1" in done.stdout, done.stderr
    wait_for(lambda: "routing config 2025.1@v1" in log() and "now live" in log(), 60,
             "the worker to switch routing", ns=ns, on_timeout=log)
    kafka.produce([detection("lc-2", CELLS[2], time.time())])
    wait_for(lambda: _department(case_store_url, CELLS[2]), 60, "the second case", ns=ns, on_timeout=log)
    assert _department(case_store_url, CELLS[2]) == "sanitation"
    assert _department(case_store_url, CELLS[0]) == "drainage"  # open cases are not re-routed

    # a version naming a department that does not exist: rejected by the worker, the old one stays
    bad = routing.replace(line, '{category: "component:0103", department: nobody}')
    publish(ns.settings.model_copy(update={"topic_prefix": ns.prefix}), "routing",
            {"version": 2, "label": "bad@v2", "yaml": bad, "author": "test", "kind": "routing"})
    wait_for(lambda: "rejected routing config bad@v2" in log(), 60, "the rejection", ns=ns, on_timeout=log)
    assert "unknown department 'nobody'" in log()
    kafka.produce([detection("lc-3", CELLS[4], time.time())])
    wait_for(lambda: _department(case_store_url, CELLS[4]), 60, "the third case", ns=ns, on_timeout=log)
    assert _department(case_store_url, CELLS[4]) == "sanitation"
    assert worker.poll() is None  # one process all along
