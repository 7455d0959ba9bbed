"""The dispatch dashboard in a real headless browser (Debian's chromium driven by playwright-core).

The API runs in this process (uvicorn in a thread, its own SQLite case store, shared with a case-stage
worker that turns its Open311 reports into cases); ``tests/browser/dashboard.mjs`` signs in with the
dispatcher token, waits for the live stream, creates a case through the API (an Open311 report) and
expects it to arrive on the open page, opens it, dispatches it, checks the case changed, and saves a
screenshot to ``artifacts/dashboard.png``. The page is in Chinese (the default); the switch to English
re-words it (``artifacts/dashboard-en.png``), is remembered, and ``?lang=en`` works for one visit. The
browser runs in New York's time zone: the case's times must still show in the city's (Asia/Shanghai).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gridsentinel.core.device_health import BUCKET_S, HealthReport
from gridsentinel.core.devices import Registry
from gridsentinel.settings import REPO_ROOT

from ..conftest import api_token
from .conftest import Namespace, serve_api

pytestmark = pytest.mark.integration
BROWSER_DIR = REPO_ROOT / "tests" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CITY, BROWSER_ZONE = ZoneInfo("Asia/Shanghai"), "America/New_York"


def zh_time(t: float, zone: ZoneInfo = CITY) -> str:
    """A time as the page writes it in Chinese (Intl, zh-CN): 12月5日 16:09:30."""
    d = datetime.fromtimestamp(t, zone)
    return f"{d.month}月{d.day}日 {d:%H:%M:%S}"


def en_time(t: float, zone: ZoneInfo = CITY) -> str:
    """A time as the page writes it in English (Intl, en): Dec 5, 16:09:30."""
    d = datetime.fromtimestamp(t, zone)
    return f"{d:%b} {d.day}, {d:%H:%M:%S}"


@pytest.fixture
def api_url(ns: Namespace, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    from gridsentinel.api.app import create_app

    monkeypatch.setenv("GS_DATABASE_URL", f"sqlite:///{tmp_path / 'cases.db'}")
    (ns.config_dir / "receivers.yaml").write_text('version: test\nmqtt: {enabled: false}\nreceivers: []\n')
    ns.create_topics(f"{ns.prefix}gs.detections", f"{ns.prefix}gs.case-events")  # before the API subscribes
    ns.spawn("cases", "worker", "--app-id", ns.app_id, "--stages", "cases", "--loglevel", "warning")
    app = create_app(ns.settings.with_(run_dir=tmp_path),
                     consume_kafka=True, produce_detections=True, follow_devices=True)
    # what a gateway reports of drain-001 (gs.device-health): the health panel shows it online
    now = time.time()
    report = HealthReport(device_id="drain-001", gateway="gw-browser", at=now, since=now - 60, last_seen=now - 5,
                          messages=12, vitals={"battery": 3.61}, vitals_at=now - 5,
                          message_buckets={int((now - 5) // BUCKET_S): 12})
    producer = ns.producer()
    producer.produce(f"{ns.prefix}gs.device-health", key=b"drain-001", value=report.encode())
    producer.flush(10)
    with serve_api(app) as base:
        yield base


@pytest.fixture
def dispatcher(api_url: str, tmp_path: Path) -> str:
    """A dispatcher's token, made in the API's case database while it runs (none ships)."""
    return api_token(f"sqlite:///{tmp_path / 'cases.db'}", "dispatcher")


def test_dashboard_live_update_and_dispatch(api_url: str, dispatcher: str) -> None:
    if not Path(CHROMIUM).exists() or not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
        pytest.fail("needs Debian's chromium and `npm ci` in tests/browser (scripts/setup.sh installs both)")
    shot = REPO_ROOT / "artifacts" / "dashboard.png"
    shot.parent.mkdir(exist_ok=True)
    # TZ reaches Chromium through node: the browser's own zone is New York, not the city's
    done = subprocess.run(["node", "dashboard.mjs", api_url, dispatcher, str(shot)], cwd=BROWSER_DIR,
                          capture_output=True, text=True, timeout=180,
                          env={"GS_CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin", "TZ": BROWSER_ZONE})
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["cells"] == 18                      # the demo district, drawn from the grid GeoJSON
    assert seen["liveArrived"]                      # the new case reached the open page over SSE
    assert "1" in seen["cellCount"]                 # its cell now shows one open case
    assert seen["statusAfter"] == "dispatched"      # the dispatcher's click changed the case
    assert "dispatch" in seen["logActions"]
    # the case's buttons are the API's choices for this dispatcher (issue 16), before and after dispatching:
    # enabled exactly where allowed, with the reason (why not, or what follows) as the title
    for when in ("open", "dispatched"):
        buttons = {b["action"]: b for b in seen[when]["buttons"]}
        assert seen[when]["choices"], f"the {when} case offers choices"
        for choice in seen[when]["choices"]:
            if choice["action"] == "duplicate":
                continue  # needs the other case's id: the dashboard has no button for it (the center page does)
            assert buttons[choice["action"]]["disabled"] is (not choice["allowed"]), (when, choice)
            assert buttons[choice["action"]]["title"] == choice["reason"] or not choice["reason"], (when, choice)
    assert {b["action"]: b["disabled"] for b in seen["dispatched"]["buttons"]}["dispatch"]  # not twice
    assert seen["healthRows"] == len(Registry.load(REPO_ROOT / "config").devices)  # one row per device
    assert seen["healthHead"] == "最后上报"
    assert seen["healthDrain"][1] == "在线" and seen["healthDrain"][5] == "3.61 V"
    assert seen["pageErrors"] == []
    assert shot.stat().st_size > 10_000
    speaks_chinese_by_default_and_english_on_request(seen)
    shows_the_city_time_in_a_browser_elsewhere(seen)


def speaks_chinese_by_default_and_english_on_request(seen: dict[str, Any]) -> None:
    assert seen["login"] == {"lang": "zh-CN", "button": "进入调度台", "switches": ["中文", "English"]}
    assert seen["htmlLang"] == "zh-CN" and seen["filterLabel"] == "未结案"
    assert seen["itemBadge"] == "待派遣" and seen["dispatchLabel"] == "派遣"
    assert seen["itemMeta"][0] == "积存垃圾渣土 · " + seen["itemMeta"][0].split(" · ")[1]  # name_zh of event:0103
    zh = seen["zh"]
    assert zh["badge"] == "已派遣" and zh["facts"]["状态"] == "已派遣" and zh["log"][-1] == "派遣"
    assert zh["facts"]["类别"].startswith("积存垃圾渣土 — event:0103")
    assert zh["facts"]["中心"] == "街道中心 " + seen["case"]["center"].split(":")[1]
    assert zh["title"] == (seen["case"].get("headline") or seen["case"]["title"])
    en = seen["en"]
    assert en["stored"] == "en" and en["filterLabel"] == "Active" and en["badge"] == "dispatched"
    assert en["facts"]["Status"] == "dispatched"
    assert en["facts"]["Category"].startswith("accumulated garbage or muck (illegal dumping) — event:0103")
    assert en["stats"] == ["open", "in hand", "overdue", "closed"]
    assert seen["afterReload"] == {"lang": "en", "live": "● live"}           # the choice is remembered
    assert seen["query"] == {"lang": "en", "signout": "Sign out", "stored": "zh-CN"}  # ?lang=en: this visit only
    assert (REPO_ROOT / "artifacts" / "dashboard-en.png").stat().st_size > 10_000


def shows_the_city_time_in_a_browser_elsewhere(seen: dict[str, Any]) -> None:
    assert seen["browserZone"] == BROWSER_ZONE                             # the browser really is elsewhere
    assert seen["zoneLabel"] == "Asia/Shanghai（GMT+8）" and seen["en"]["zoneLabel"] == "Asia/Shanghai (GMT+8)"
    case = seen["case"]
    first, last, due = case["first_seen_at"], case["last_seen_at"], case["due_at"]
    assert seen["zh"]["facts"]["首次 / 最近发现"] == f"{zh_time(first)} / {zh_time(last)}"
    assert seen["en"]["facts"]["First / last seen"] == f"{en_time(first)} / {en_time(last)}"
    assert seen["zh"]["facts"]["处置时限"].startswith(zh_time(due) + " (剩余 ")
    assert seen["en"]["facts"]["Due"].startswith(en_time(due) + " (due in ")
    assert seen["itemMeta"][1].endswith(f"最近发现 {zh_time(last)}")
    # New York's wall clock differs from Shanghai's by 12 or 13 hours: it must appear nowhere
    assert zh_time(first, ZoneInfo(BROWSER_ZONE)) not in seen["zh"]["facts"]["首次 / 最近发现"]
