"""One flood through every channel (issue 17, "Done when"): a drain level sensor and a street camera (their
detections on ``gs.detections``, keyed by dedup region as the detectors key them), a patrol inspector's finding
(the inspector API), two 12345 calls (the hotline API) and a citizen's Open311 report (through the quality
checks) reach the case stage (`gridsentinel worker --stages cases`) and end as cases of three categories linked
under ONE incident that lists every source; dispatched once, every member goes to the lead department. On
SQLite, then PostgreSQL."""

from __future__ import annotations

import base64
import json
import subprocess
import time
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from gridsentinel.api.auth import add_token
from gridsentinel.cases.store import upgrade_database
from gridsentinel.core.grid import dedup_region
from gridsentinel.core.records import Detection
from gridsentinel.settings import REPO_ROOT

from ..photos import photo
from .conftest import Namespace, wait_for
from .test_channels import CELL, _start

pytestmark = pytest.mark.integration
LAT, LON = 31.8722, 120.5505  # in CELL (config/grid.geojson)
SOURCES = {"sensor", "camera", "inspector", "hotline", "citizen"}


def _produce(ns: Namespace, *detections: Detection) -> None:
    producer = ns.producer()
    for d in detections:
        producer.produce(f"{ns.prefix}gs.detections", key=dedup_region(d.grid_code).encode(), value=d.to_json())
    assert producer.flush(30) == 0


def test_one_flood_through_every_channel_is_one_incident_with_every_source(
        ns: Namespace, case_store_url: str, monkeypatch: pytest.MonkeyPatch, browser_ready: str) -> None:
    upgrade_database(case_store_url)  # before the worker and the API both start on a fresh database
    monkeypatch.setenv("GS_CITIZEN_PSEUDONYM_SECRET", "integration-test-key")
    citizen = {"Authorization": f"Bearer {add_token(ns.workdir / 'tokens.yaml', 't-citizen', 'citizen')}"}
    base, inspector_token, taker_token = _start(ns, case_store_url, monkeypatch)  # the worker and the API
    inspector = {"Authorization": f"Bearer {inspector_token}"}
    taker = {"Authorization": f"Bearer {taker_token}"}
    logs = lambda: ns.log("cases") + ns.log("api")  # noqa: E731
    now = time.time()
    tag = ns.prefix.strip(".")

    # 1. the drain level sensor in the storm-water manhole: 80 % full, then overflowing
    drain = [Detection(detection_id=f"drain-{tag}-{n}", source="sensor", detector="drain_level",
                       detector_version="1", kind=kind, category_code="0103", category_standard="GB/T 30428.2-2013",
                       severity=severity, device_id="drain-001", grid_code=CELL, observed_at=now - 1200 + 300 * n,
                       lat=LAT, lon=LON, value=level, message=message)
             for n, (kind, severity, level, message) in enumerate([
                 ("drain_level", "warning", 1.62, "drain 81 % full, overflows in ~18 min"),
                 ("drain_overflow", "alarm", 2.05, "drain overflowing")])]
    # 2. the street camera sees the road under water
    camera = Detection(detection_id=f"cam-{tag}-1", source="camera", detector="waterlogging", detector_version="1",
                       kind="waterlogging", category_code="L001", category_standard="GridSentinel local 2025.1",
                       severity="warning", device_id="cam-001", grid_code=CELL, observed_at=now - 600, lat=LAT,
                       lon=LON, score=0.91, message="road under water")
    _produce(ns, *drain, camera)

    # 3. the patrol inspector finds the storm-water inlet blocked (a third category)
    jpeg = base64.b64encode(photo("vtest_people/0000.jpg")).decode()
    finding = {"report_id": f"c0ffee00-0000-4c1d-9b1e-{tag[-12:].rjust(12, '0')}", "category": "event:0404",
               "lat": 31.87225, "lon": 120.55053, "accuracy_m": 6,
               "observed_at": datetime.fromtimestamp(now - 300, UTC).isoformat(), "note": "雨水口被落叶堵死",
               "photos": [{"data": jpeg}]}
    r = httpx.post(f"{base}/api/v1/inspector/reports", json=finding, headers=inspector, timeout=30)
    assert r.status_code == 201, r.text

    # 4. two 12345 callers about the water on the road; the call-taker confirms the suggested category
    for text in ("暨阳中路2号门口积水很深，快没过膝盖了", "暨阳中路2号这边内涝了，车都开不过去"):
        call = httpx.post(f"{base}/api/v1/hotline/calls", json={"text": text, "address": "暨阳中路2号"},
                          headers=taker, timeout=30)
        assert call.status_code == 201, call.text
        body = call.json()
        assert body["grid_code"] == CELL and body["suggestions"][0]["category"] == "event:L001", body
        sent = httpx.post(f"{base}/api/v1/hotline/calls/{body['call_id']}/confirm", json={"category": "event:L001"},
                          headers=taker, timeout=30)
        assert sent.status_code == 200 and sent.json()["status"] == "sent", sent.text

    # 5. a citizen's Open311 report with a photo taken there a few minutes ago
    near = photo("vtest_people/0290.jpg", gps=(LAT + 0.0002, LON), taken_at=now - 240)
    r = httpx.post(f"{base}/open311/v2/requests.json", headers=citizen, timeout=30,
                   data={"service_code": "event:L001", "lat": str(LAT), "long": str(LON), "account_id": "acct-flood",
                         "description": "the road is flooded"}, files={"media": ("p.jpg", near, "image/jpeg")})
    assert r.status_code == 201, r.text
    assert "service_notice" not in r.json()[0] or "held" not in r.json()[0]["service_notice"], r.text

    def one_incident_with_every_source() -> dict[str, Any] | None:
        listed = httpx.get(f"{base}/api/v1/incidents", headers=taker, timeout=10).json()["items"]
        if len(listed) != 1 or set(listed[0]["sources"]) != SOURCES:
            return None
        if listed[0]["sources"].get("hotline") != 2 or listed[0]["sources"].get("sensor") != 2:
            return None
        found: dict[str, Any] = httpx.get(f"{base}/api/v1/incidents/{listed[0]['incident_id']}", headers=taker,
                                          timeout=10).json()
        return found

    detail = wait_for(one_incident_with_every_source, 120, "one incident with every source", ns=ns,
                      on_timeout=lambda: logs() + httpx.get(f"{base}/api/v1/incidents", headers=taker,
                                                            timeout=10).text)
    assert detail is not None
    incident = detail["incident"]
    assert incident["family"] == "flooding" and incident["status"] == "open"
    assert incident["categories"] == ["component:0103", "event:0404", "event:L001"]
    assert incident["sources"] == {"camera": 1, "citizen": 1, "hotline": 2, "inspector": 1, "sensor": 2}
    by_category = {c["category_key"]: c for c in detail["cases"]}
    assert by_category["component:0103"]["sources"] == {"sensor": 2}
    assert by_category["event:0404"]["sources"] == {"inspector": 1}
    assert by_category["event:L001"]["sources"] == {"camera": 1, "hotline": 2, "citizen": 1}
    assert len({c["due_at"] for c in detail["cases"]}) == 3  # each case keeps its own due time
    listed_sources = {s["source"]: s for s in detail["sources"]}
    assert set(listed_sources) == SOURCES
    assert listed_sources["sensor"]["devices"] == ["drain-001"] and listed_sources["camera"]["devices"] == ["cam-001"]
    assert listed_sources["hotline"]["detections"] == 2 and listed_sources["citizen"]["devices"] == []
    # the case shows its incident
    one = httpx.get(f"{base}/api/v1/cases/{by_category['event:0404']['case_id']}", headers=taker, timeout=10).json()
    assert one["incident_id"] == incident["incident_id"]

    # the dashboard's incidents view shows it: its three cases and the five sources, in Chinese and English
    shot = REPO_ROOT / "artifacts" / f"incident-flood-{case_store_url.split(':')[0]}.png"
    shot.parent.mkdir(exist_ok=True)
    page = subprocess.run(["node", "incidents_page.mjs", base, taker_token, str(shot)], capture_output=True,
                          cwd=REPO_ROOT / "tests" / "browser", text=True, timeout=180,
                          env={"GS_CHROMIUM": browser_ready, "PATH": "/usr/bin:/bin"})
    assert page.returncode == 0, page.stderr[-3000:] + page.stdout[-2000:]
    seen = json.loads(page.stdout.strip().splitlines()[-1])
    assert seen["zh"]["listed"] == 1 and seen["zh"]["members"] == 3
    assert sorted(seen["zh"]["sources"]) == sorted(SOURCES)
    assert set(seen["zh"]["sourceNames"]) == {"传感器", "摄像头", "网格员", "热线", "市民"}
    assert seen["zh"]["title"] == "城市内涝：3 件案件" and seen["en"]["title"] == "flooding: 3 case(s)"
    assert set(seen["en"]["sourceNames"]) == {"sensor", "camera", "inspector", "hotline", "citizen"}
    assert seen["en"]["buttons"][:2] == ["Dispatch all", "Close together"] and seen["caseLinksBack"] == 1
    assert seen["pageErrors"] == []

    # dispatched once: every member goes to the family's lead department
    r = httpx.post(f"{base}/api/v1/incidents/{incident['incident_id']}/dispatch", json={"note": "pump truck 2"},
                   headers=taker, timeout=30)
    assert r.status_code == 200, r.text
    assert [x["outcome"] for x in r.json()["results"]] == ["done"] * 3
    after = httpx.get(f"{base}/api/v1/incidents/{incident['incident_id']}", headers=taker, timeout=10).json()
    assert {(c["status"], c["department"]) for c in after["cases"]} == {("dispatched", "drainage")}
    assert [e["action"] for e in after["log"]][-1] == "dispatch"
