"""Report quality on the real path: `gridsentinel api` runs every Open311 report through the intake (real
photos with and without EXIF, tests/photos.py), keeps it in the case database (SQLite, then PostgreSQL) and
sends only straight reports to ``gs.detections``, where the case stage (`gridsentinel worker --stages
cases`) opens cases. A photo taken far away waits in the verification queue until a dispatcher confirms it;
the same photo from another account is a duplicate of the first report; a burst gets 429."""

from __future__ import annotations

import socket
import time
from typing import Any

import httpx
import pytest
import yaml

from gridsentinel.api.auth import add_token
from gridsentinel.cases.store import upgrade_database
from gridsentinel.core.records import Detection

from ..photos import photo
from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration
LAT, LON = 31.8722, 120.5505  # in cell 320582004001001 of config/grid.geojson


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_citizen_reports_pass_the_quality_checks_on_the_way_to_cases(
        ns: Namespace, case_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    tokens = ns.workdir / "tokens.yaml"
    citizen = {"Authorization": f"Bearer {add_token(tokens, 't-citizen', 'citizen')}"}
    dispatcher = {"Authorization": f"Bearer {add_token(tokens, 't-dispatcher', 'dispatcher')}"}
    viewer = {"Authorization": f"Bearer {add_token(tokens, 't-viewer', 'viewer')}"}
    monkeypatch.setenv("GS_API_TOKENS", str(tokens))
    monkeypatch.setenv("GS_DATABASE_URL", case_store_url)
    monkeypatch.setenv("GS_CITIZEN_PSEUDONYM_SECRET", "integration-test-key")
    (ns.config_dir / "receivers.yaml").write_text(  # no alert delivery: other tests share the broker
        yaml.safe_dump({"version": "test", "mqtt": {"enabled": False}, "receivers": []}))
    quality = yaml.safe_load((ns.config_dir / "quality.yaml").read_text())
    (ns.config_dir / "quality.yaml").write_text(yaml.safe_dump({**quality, "rate_max_per_account": 3}))
    # migrated before the two processes start: both migrating a fresh PostgreSQL database at once race on
    # creating alembic_version (a deployment migrates first, as `gridsentinel up` does)
    upgrade_database(case_store_url)
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
    logs = lambda: ns.log("cases") + ns.log("api")  # noqa: E731

    def post(jpeg: bytes | None, account: str, code: str, text: str) -> httpx.Response:
        data = {"service_code": code, "lat": str(LAT), "long": str(LON), "account_id": account, "description": text}
        files = {"media": ("p.jpg", jpeg, "image/jpeg")} if jpeg is not None else None
        return httpx.post(f"{base}/open311/v2/requests.json", data=data, files=files, headers=citizen, timeout=30)

    def resolved(token: str) -> str:
        got = httpx.get(f"{base}/open311/v2/tokens/{token}.json", headers=citizen, timeout=10).json()
        return str(got[0]["service_request_id"] or "")  # "" until the case stage applied the report

    # 1. straight: the photo was taken 30 m away five minutes ago
    now = time.time()
    near = photo("vtest_people/0000.jpg", gps=(LAT + 0.0003, LON), taken_at=now - 300)
    r = post(near, "acct-a", "event:0103", "rubble by the road")
    assert r.status_code == 201, r.text
    straight = r.json()[0]
    case_id = wait_for(lambda: resolved(straight["token"]), 90, "the straight report's case", ns=ns, on_timeout=logs)

    # 2. held: a photo taken a kilometre away; nothing reaches the case stage until a dispatcher confirms
    far = photo("vtest_people/0290.jpg", gps=(LAT + 0.009, LON), taken_at=now - 300)
    r = post(far, "acct-b", "component:0103", "water over the cover")
    assert r.status_code == 201, r.text
    held = r.json()[0]
    assert held["service_request_id"] == held["token"] and "photo_far" in held["service_notice"]
    queue = httpx.get(f"{base}/api/v1/verification", headers=dispatcher, timeout=10).json()
    [item] = queue["items"]
    assert item["id"] == held["token"] and [x["code"] for x in item["reasons"]] == ["photo_far"]
    assert item["account_id"] == "acct-b" and httpx.get(f"{base}{item['photo_url']}", headers=dispatcher,
                                                        timeout=10).content == far
    [shown] = httpx.get(f"{base}/open311/v2/requests/{held['token']}.json", headers=citizen, timeout=10).json()
    assert shown["status_notes"].startswith("held for verification")
    assert resolved(held["token"]) == ""

    # 3. the first photo again, re-encoded, from another account: a duplicate of report 1, no new detection
    again = photo("vtest_people/0000.jpg", gps=(LAT + 0.0003, LON), taken_at=now - 300, quality=60)
    dup = post(again, "acct-c", "event:0103", "same rubble").json()[0]
    assert dup["service_request_id"] == case_id and dup["service_notice"].startswith("the same photo")
    assert resolved(dup["token"]) == case_id

    # confirming the held report sends its detection with the report's own time
    done = httpx.post(f"{base}/api/v1/verification/{held['token']}/confirm", json={"note": "seen"},
                      headers=dispatcher, timeout=30)
    assert done.status_code == 200, done.text
    held_case = wait_for(lambda: resolved(held["token"]), 90, "the confirmed report's case", ns=ns, on_timeout=logs)

    def detail(cid: str) -> dict[str, Any]:
        got: dict[str, Any] = httpx.get(f"{base}/api/v1/cases/{cid}", headers=viewer, timeout=10).json()
        return got

    [released] = [d for d in detail(held_case)["detections"] if d["detection_id"] == f"citizen:{held['token']}"]
    assert released["observed_at"] == item["received_at"] < done.json()["item"]["decided_at"]
    assert released["evidence"]["quality"]["reasons"][0]["code"] == "photo_far"
    assert released["evidence"]["account_id"].startswith("p-")  # a viewer sees a pseudonym
    first = detail(case_id)
    assert first["case"]["detection_count"] == 1 and first["case"]["sources"] == {"citizen": 1}

    # what went through gs.detections: reports 1 and 2, never the duplicate
    consumer = ns.consumer([detections])
    seen: list[Detection] = []
    try:
        def read() -> bool:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                seen.append(Detection.from_json(msg.value() or b""))
            return len(seen) >= 2

        wait_for(read, 60, "both detections on gs.detections", every=0, ns=ns)
    finally:
        consumer.close()
    assert sorted(d.detection_id for d in seen) == sorted(f"citizen:{t['token']}" for t in (straight, held))
    assert {d.detection_id: d.evidence["quality"]["decision"] for d in seen} == {
        f"citizen:{straight['token']}": "straight", f"citizen:{held['token']}": "verify"}

    # 4. a burst over the account's rate limit (3 an hour in this test's quality.yaml)
    for i in range(3):
        assert post(None, "acct-d", "event:0201", f"ad {i}").status_code == 201
    over = post(None, "acct-d", "event:0201", "ad 3")
    assert over.status_code == 429 and over.json()["error"]["details"]["reason"] == "rate_limit_account"
    assert int(over.headers["Retry-After"]) > 3000
