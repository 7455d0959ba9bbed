"""Every channel through one dedup path: an inspector's finding and two 12345 calls about one missing manhole
cover become ``inspector`` and ``hotline`` detections on ``gs.detections`` (produced by `gridsentinel api`,
keyed by dedup region) that the case stage (`gridsentinel worker --stages cases`) puts in ONE case listing
both sources. The finding, sent hours late, keeps its observed time; sent twice, it counts once. A call
whose address the gazetteer cannot place waits in the queue and reaches the case stage only once placed."""

from __future__ import annotations

import base64
import io
import json
import socket
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from PIL import Image

from gridsentinel.api.auth import add_token
from gridsentinel.core.grid import dedup_region
from gridsentinel.core.records import Detection
from gridsentinel.settings import REPO_ROOT

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration
CELL = "320582004001001"  # in config/grid.geojson; 暨阳中路2号 in config/gazetteer.csv
MARKET_CELL = "320582004001003"  # 梁丰菜市场


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _photo() -> dict[str, str]:
    buf = io.BytesIO()
    Image.new("RGB", (80, 60), (70, 70, 70)).save(buf, format="JPEG")
    return {"data": base64.b64encode(buf.getvalue()).decode()}


def _start(ns: Namespace, case_store_url: str, monkeypatch: pytest.MonkeyPatch) -> tuple[str, str, str]:
    """The case stage and the API on ``case_store_url``: (base URL, inspector token, call-taker token)."""
    tokens = ns.workdir / "tokens.yaml"
    inspector_token = add_token(tokens, "t-inspector", "inspector")
    taker_token = add_token(tokens, "t-calltaker", "dispatcher")
    monkeypatch.setenv("GS_API_TOKENS", str(tokens))
    monkeypatch.setenv("GS_DATABASE_URL", case_store_url)
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
    return base, inspector_token, taker_token


def test_inspector_and_hotline_reports_of_one_problem_make_one_case(
        ns: Namespace, case_store_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    base, inspector_token, taker_token = _start(ns, case_store_url, monkeypatch)
    inspector = {"Authorization": f"Bearer {inspector_token}"}
    taker = {"Authorization": f"Bearer {taker_token}"}
    detections = f"{ns.prefix}gs.detections"
    logs = lambda: ns.log("cases") + ns.log("api")  # noqa: E731

    # The inspector found the missing cover 3 hours ago in a dead zone; the phone sends it now, then again
    # (the first answer was lost).
    now = time.time()
    seen_at = now - 3 * 3600
    finding = {"report_id": "b7f3a1d2-0000-4c1d-9b1e-inspector001", "category": "component:0103",
               "lat": 31.87225, "lon": 120.55053, "accuracy_m": 8,
               "observed_at": datetime.fromtimestamp(seen_at, UTC).isoformat(), "note": "雨水井盖缺失",
               "photos": [_photo()]}
    first = httpx.post(f"{base}/api/v1/inspector/reports", json=finding, headers=inspector, timeout=30)
    assert first.status_code == 201, first.text
    filed = first.json()
    assert filed["grid_code"] == CELL and filed["observed_at"] == pytest.approx(seen_at, abs=1e-3)

    # Two callers about the same cover: the call-taker confirms the suggested category.
    call_ids = []
    for text, address in (("暨阳中路2号门口的井盖不见了，晚上很危险，请尽快处理", "暨阳路二号门口"),
                          ("我路过暨阳中路2号，路边有个窨井盖没了，黑洞洞的", "暨阳中路2号")):
        taken = httpx.post(f"{base}/api/v1/hotline/calls", json={"text": text, "address": address},
                           headers=taker, timeout=30)
        assert taken.status_code == 201, taken.text
        call = taken.json()
        assert call["grid_code"] == CELL and call["suggestions"][0]["category"] == "component:0103"
        sent = httpx.post(f"{base}/api/v1/hotline/calls/{call['call_id']}/confirm",
                          json={"category": call["suggestions"][0]["category"]}, headers=taker, timeout=30)
        assert sent.status_code == 200 and sent.json()["status"] == "sent", sent.text
        call_ids.append(call["call_id"])
    again = httpx.post(f"{base}/api/v1/inspector/reports", json=finding, headers=inspector, timeout=30).json()
    assert again["detection_id"] == filed["detection_id"]

    def one_case() -> dict[str, Any] | None:
        listed = httpx.get(f"{base}/api/v1/cases", params={"grid_prefix": CELL}, headers=taker, timeout=10).json()
        items = listed["items"]
        if len(items) != 1 or items[0]["detection_count"] < 3:
            return None
        detail: dict[str, Any] = httpx.get(f"{base}/api/v1/cases/{items[0]['case_id']}", headers=taker,
                                           timeout=10).json()
        return detail

    detail = wait_for(one_case, 90, "one case with the finding and both calls", ns=ns, on_timeout=logs)
    assert detail is not None
    case = detail["case"]
    assert case["category_key"] == "component:0103" and case["grid_code"] == CELL
    assert case["sources"] == {"inspector": 1, "hotline": 2} and case["detection_count"] == 3
    assert case["first_seen_at"] == pytest.approx(seen_at, abs=1e-3)  # the finding's own time, not its arrival
    by_source = {d["source"]: d for d in detail["detections"]}
    assert by_source["inspector"]["observed_at"] == pytest.approx(seen_at, abs=1e-3)
    assert by_source["inspector"]["evidence"]["photos"][0].startswith("/api/v1/photos/")

    # A caller who cannot say where: the call waits in the queue until a call-taker places it.
    vague = httpx.post(f"{base}/api/v1/hotline/calls",
                       json={"text": "有人在我们小区门口偷倒建筑垃圾，堆了一大堆", "address": "就在我家楼下",
                             "called_at": datetime.fromtimestamp(now - 1800, UTC).isoformat()},
                       headers=taker, timeout=30).json()
    assert vague["grid_code"] is None and vague["suggestions"][0]["category"] == "event:0103"
    queued = httpx.post(f"{base}/api/v1/hotline/calls/{vague['call_id']}/confirm", json={"category": "event:0103"},
                        headers=taker, timeout=30).json()
    assert queued["status"] == "queued" and queued["detection_id"] is None
    waiting = httpx.get(f"{base}/api/v1/hotline/queue", headers=taker, timeout=10).json()["items"]
    assert [c["call_id"] for c in waiting] == [vague["call_id"]]
    placed = httpx.post(f"{base}/api/v1/hotline/queue/{vague['call_id']}/resolve", json={"place": "梁丰菜市场"},
                        headers=taker, timeout=30)
    assert placed.status_code == 200 and placed.json()["status"] == "sent", placed.text
    assert httpx.get(f"{base}/api/v1/hotline/queue", headers=taker, timeout=10).json()["items"] == []

    def market_case() -> dict[str, Any] | None:
        items = httpx.get(f"{base}/api/v1/cases", params={"grid_prefix": MARKET_CELL}, headers=taker,
                          timeout=10).json()["items"]
        return items[0] if items else None

    dumped = wait_for(market_case, 90, "the placed call's case", ns=ns, on_timeout=logs)
    assert dumped is not None and dumped["category_key"] == "event:0103" and dumped["sources"] == {"hotline": 1}
    assert dumped["first_seen_at"] == pytest.approx(now - 1800, abs=1)  # the call's time, not the resolution's

    # On the wire: every channel's detection on gs.detections, keyed by its dedup region, like a detector's.
    consumer = ns.consumer([detections])
    seen: list[tuple[bytes | None, Detection]] = []
    try:
        def read() -> bool:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                seen.append((msg.key(), Detection.from_json(msg.value() or b"")))
            return sum(d.source == "hotline" for _, d in seen) >= 3 and any(d.source == "inspector" for _, d in seen)

        wait_for(read, 60, "the channel detections on gs.detections", every=0, ns=ns)
    finally:
        consumer.close()
    for key, d in seen:
        assert key == dedup_region(d.grid_code).encode()
    assert {d.detection_id for _, d in seen if d.source == "inspector"} == {filed["detection_id"]}
    hotline = {d.evidence["call_id"]: d for _, d in seen if d.source == "hotline"}
    assert set(hotline) == {*call_ids, vague["call_id"]}
    assert hotline[vague["call_id"]].grid_code == MARKET_CELL


def test_the_phone_page_sends_an_offline_finding_later_with_its_own_time(
        ns: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser_ready: str) -> None:
    base, inspector_token, taker_token = _start(ns, f"sqlite:///{tmp_path / 'cases.db'}", monkeypatch)
    photo = tmp_path / "cover.jpg"
    Image.new("RGB", (1200, 900), (60, 80, 90)).save(photo, format="JPEG")
    shot = REPO_ROOT / "artifacts" / "inspector-page.png"
    shot.parent.mkdir(exist_ok=True)
    done = subprocess.run(["node", "inspector_page.mjs", base, inspector_token, str(photo), str(shot)],
                          cwd=REPO_ROOT / "tests" / "browser", capture_output=True, text=True, timeout=180,
                          env={"GS_CHROMIUM": browser_ready, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:] + ns.log("api")
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["title"] == "巡查上报" and seen["englishTitle"] == "Patrol report"
    [filed] = seen["filed"]  # waited in the outbox while offline, photo included
    assert filed["photos"] == 1 and "待发送" in seen["offlineOutbox"][0]
    assert seen["onlineStatus"].startswith("已上报"), seen
    assert seen["pageWidth"] <= 390 and seen["errors"] == []

    taker = {"Authorization": f"Bearer {taker_token}"}

    def case() -> dict[str, Any] | None:
        items = httpx.get(f"{base}/api/v1/cases", params={"grid_prefix": CELL}, headers=taker, timeout=10).json()
        if not items["items"]:
            return None
        found: dict[str, Any] = httpx.get(f"{base}/api/v1/cases/{items['items'][0]['case_id']}", headers=taker,
                                          timeout=10).json()
        return found

    detail = wait_for(case, 60, "the finding's case", ns=ns, on_timeout=lambda: ns.log("cases") + ns.log("api"))
    assert detail is not None
    [d] = detail["detections"]
    made = datetime.fromisoformat(filed["observed_at"].replace("Z", "+00:00")).timestamp()
    online = datetime.fromisoformat(seen["onlineAt"].replace("Z", "+00:00")).timestamp()
    assert d["source"] == "inspector" and d["observed_at"] == pytest.approx(made, abs=1e-3) and made < online
    assert d["evidence"]["report_id"] == filed["report_id"] and d["evidence"]["accuracy_m"] == 6
    assert detail["case"]["category_key"] == "component:0103" and d["message"] == "雨水井盖缺失（离线上报）"


def test_the_call_takers_page_places_confirms_and_queues(
        ns: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser_ready: str) -> None:
    base, _, taker_token = _start(ns, f"sqlite:///{tmp_path / 'cases.db'}", monkeypatch)
    shots = [REPO_ROOT / "artifacts" / "hotline-page.png", REPO_ROOT / "artifacts" / "hotline-page-phone.png"]
    shots[0].parent.mkdir(exist_ok=True)
    done = subprocess.run(["node", "hotline_page.mjs", base, taker_token, *map(str, shots)],
                          cwd=REPO_ROOT / "tests" / "browser", capture_output=True, text=True, timeout=240,
                          env={"GS_CHROMIUM": browser_ready, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:] + ns.log("api")
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["title"] == "12345 热线受理" and seen["englishTitle"] == "12345 hotline intake"
    assert seen["errors"] == [] and seen["phoneWidth"] <= 390
    # the vague address: no place, a suggestion from the text (污水 -> sewage), queued on confirm, never dropped
    assert "未能" in seen["vagueResolution"] and seen["vagueCategory"] == "event:0404"
    assert "待定位队列" in seen["vagueOutcome"] and "我家楼下" in seen["queued"][0]
    # the placed one: the gazetteer's place and cell, the storm-water cover first with its confidence
    assert "暨阳中路2号" in seen["resolution"] and CELL in seen["resolution"]
    assert seen["category"] == "component:0103" and seen["checkedPlace"] == "暨阳中路2号"
    assert "置信度" in seen["suggestions"][0] and "雨水井盖" in seen["suggestions"][0]
    assert seen["outcome"].startswith("已派送") and "新立案件" in seen["outcome"]
    assert "暨阳中路2号" in seen["resolutionAfter"] and "null" not in seen["resolutionAfter"]
    assert seen["englishOutcome"].startswith("Sent to the case stage") and "没有待定位" in seen["queueAfter"]
    assert all(s.stat().st_size > 10_000 for s in shots)

    taker = {"Authorization": f"Bearer {taker_token}"}

    def cases() -> list[dict[str, Any]] | None:
        items: list[dict[str, Any]] = httpx.get(f"{base}/api/v1/cases", params={"grid_prefix": "3205820040010"},
                                                headers=taker, timeout=10).json()["items"]
        return items if len(items) == 2 else None

    found = wait_for(cases, 60, "the two calls' cases", ns=ns, on_timeout=lambda: ns.log("cases") + ns.log("api"))
    assert found is not None
    assert {(c["grid_code"], c["category_key"]) for c in found} == {(CELL, "component:0103"),
                                                                     ("320582004001004", "event:0404")}
    assert all(c["sources"] == {"hotline": 1} for c in found)


def test_the_quality_page_shows_inspectors_pseudonyms_and_lets_them_confirm(
        ns: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, browser_ready: str) -> None:
    from tests.photos import photo

    citizen = add_token(ns.workdir / "tokens.yaml", "t-citizen", "citizen")
    base, inspector_token, taker_token = _start(ns, f"sqlite:///{tmp_path / 'cases.db'}", monkeypatch)
    lat, lon = 31.8722, 120.5505  # in CELL
    now = time.time()
    held = photo("messi5.jpg", gps=(lat + 0.009, lon), taken_at=now - 600)  # taken 1 km away: held
    for account, jpeg in (("acct-li", held), ("acct-wu", held)):  # the second repeats the first's photo
        r = httpx.post(f"{base}/open311/v2/requests.json", headers={"Authorization": f"Bearer {citizen}"},
                       files={"media": ("p.jpg", jpeg, "image/jpeg")}, timeout=30,
                       data={"service_code": "event:0103", "lat": str(lat), "long": str(lon), "account_id": account,
                             "phone": "13912345678", "description": "路面积水，回电13912345678"})
        assert r.status_code == 201, r.text
    shot = REPO_ROOT / "artifacts" / "quality-page.png"
    shot.parent.mkdir(exist_ok=True)
    done = subprocess.run(["node", "quality_page.mjs", base, inspector_token, taker_token, str(shot)],
                          cwd=REPO_ROOT / "tests" / "browser", capture_output=True, text=True, timeout=240,
                          env={"GS_CHROMIUM": browser_ready, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:] + ns.log("api")
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["errors"] == [] and seen["title"] == "市民上报质量" and seen["englishTitle"] == "Citizen report quality"
    # the dispatcher sees who; the inspector pseudonyms, a scrubbed description and a blurred photo
    assert "acct-li" in seen["dispatcherItem"] and set(seen["dispatcherAccounts"]) == {"acct-li", "acct-wu"}
    assert "acct-li" not in seen["item"] and "13912345678" not in seen["item"] and "[phone]" in seen["item"]
    assert "拍摄点太远" in seen["item"] and "化名" in seen["note"]
    assert all(a.startswith("p-") for a in seen["accounts"]) and len(seen["accounts"]) == 2
    assert any("使用他人照片" in row for row in seen["accountRows"])  # the second account reused the photo
    assert seen["photo"]["w"] > 0 and "没有待核实" in seen["after"]
    queue = httpx.get(f"{base}/api/v1/verification", params={"state": "confirmed"},
                      headers={"Authorization": f"Bearer {taker_token}"}, timeout=10).json()
    assert [i["decided_by"] for i in queue["items"]] == ["user:t-inspector"]
