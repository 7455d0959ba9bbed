"""An Open311 report goes through ``gs.detections`` like every other source: `gridsentinel api` produces it
keyed by its dedup region, the case stage (`gridsentinel worker --stages cases`) applies it in the
partition that owns the region, and the token the POST answered resolves to the case. A sensor detection
and a citizen report of the same problem, arriving together, end in one case holding both."""

from __future__ import annotations

import json
import socket
import time
from typing import Any

import httpx
import pytest
import yaml

from gridsentinel.api.auth import add_token
from gridsentinel.core.grid import dedup_region
from gridsentinel.core.records import Detection

from ..conftest import drain_detection
from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration
CELL = "320582004001001"  # in config/grid.geojson
IN_CELL = {"lat": 31.8722, "long": 120.5505}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_report_reaches_the_case_stage_through_gs_detections(ns: Namespace,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = ns.workdir / "tokens.yaml"
    citizen = {"Authorization": f"Bearer {add_token(tokens, 't-citizen', 'citizen')}"}
    viewer = {"Authorization": f"Bearer {add_token(tokens, 't-viewer', 'viewer')}"}
    monkeypatch.setenv("GS_API_TOKENS", str(tokens))
    monkeypatch.setenv("GS_DATABASE_URL", f"sqlite:///{ns.workdir / 'cases.db'}")
    (ns.config_dir / "receivers.yaml").write_text(  # no alert delivery: other tests share the broker
        yaml.safe_dump({"version": "test", "mqtt": {"enabled": False}, "receivers": []}))
    detections = f"{ns.prefix}gs.detections"
    ns.create_topics(detections, f"{ns.prefix}gs.case-events")
    ns.spawn("cases", "worker", "--app-id", ns.app_id, "--stages", "cases", "--loglevel", "warning")
    port = _free_port()
    ns.spawn("api", "api", "--port", str(port))
    base = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            return httpx.get(f"{base}/healthz", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 60, "the API to answer /healthz", ns=ns, on_timeout=lambda: ns.log("api"))

    # A drain sensor and a citizen see the same overflow at the same moment.
    now = time.time()
    producer = ns.producer()
    sensor = drain_detection("sensor-overflow-1", grid_code=CELL, observed_at=now, lat=31.87225, lon=120.55053)
    producer.produce(detections, key=dedup_region(CELL).encode(), value=sensor.to_json())
    body = {"service_code": "component:0103", **IN_CELL, "description": "water over the cover"}
    r = httpx.post(f"{base}/open311/v2/requests.json", json=body, headers=citizen, timeout=30)
    assert producer.flush(30) == 0
    assert r.status_code == 201, r.text
    [answer] = r.json()
    token = answer["token"]

    def resolved() -> str | None:
        got = httpx.get(f"{base}/open311/v2/tokens/{token}.json", headers=citizen, timeout=10).json()
        assert got[0]["token"] == token
        return got[0]["service_request_id"]

    case_id = wait_for(resolved, 90, "the token to resolve", ns=ns,
                       on_timeout=lambda: ns.log("cases") + ns.log("api"))
    assert answer["service_request_id"] in (None, case_id)

    # The report travelled on gs.detections, keyed by its dedup region, like a detector's detection.
    consumer = ns.consumer([detections])
    seen: list[tuple[bytes | None, Detection]] = []
    try:
        def read() -> bool:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                seen.append((msg.key(), Detection.from_json(msg.value() or b"")))
            return any(d.source == "citizen" for _, d in seen)

        wait_for(read, 60, "the citizen detection on gs.detections", every=0, ns=ns)
    finally:
        consumer.close()
    [(key, report)] = [(k, d) for k, d in seen if d.source == "citizen"]
    assert key == dedup_region(CELL).encode() and report.detection_id == f"citizen:{token}"
    assert report.grid_code == CELL and report.evidence["reported_by"] == "t-citizen"

    def case() -> dict[str, Any] | None:
        detail: dict[str, Any] = httpx.get(f"{base}/api/v1/cases/{case_id}", headers=viewer, timeout=10).json()
        return detail if detail["case"]["detection_count"] == 2 else None

    detail = wait_for(case, 60, "both detections in the case", ns=ns, on_timeout=lambda: ns.log("cases"))
    assert detail is not None and detail["case"]["sources"] == {"sensor": 1, "citizen": 1}
    listed = httpx.get(f"{base}/open311/v2/requests.json", headers=citizen, timeout=10).json()
    assert [x["service_request_id"] for x in listed] == [case_id], json.dumps(listed)

    # The same report again is the same detection: answered from the store, not produced twice.
    again = httpx.post(f"{base}/open311/v2/requests.json", json=body, headers=citizen, timeout=30).json()[0]
    assert again == {**answer, "service_request_id": case_id, "service_notice": "already received"}
