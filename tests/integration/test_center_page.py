"""The center page (``/dashboard/center``) in a real headless browser, on a real API and case database
(SQLite, then PostgreSQL), with users of several centers (issue 16, "The dashboard").

The API runs in this process (uvicorn in a thread); its grid is the demo street 320582004 plus three cells of
a second street, 320582005. The cases are written to the case database as the case stage would have opened
them; everything after that goes through the API, driven by ``tests/browser/center_page.mjs`` step by step,
except the escalation sweep, which this test runs between two steps (the cases worker's job):

(a) a street dispatcher sees nothing of the other street's case, and its address answers "not found";
(b) an overdue case, once swept, is in the district's "escalated in" queue (with its actions) and in the
    street's "escalated out" one, read-only (every action disabled with the reason as a tooltip);
(c) the street dispatches a case, the department refuses it with a reason, and it is back in the street's
    "refused back" queue, the refusal in its log with who, when and why;
(d) a false alarm on a sensor case waits for a second user: the first sees it pending, a supervisor
    confirms it, the case closes.

Screenshots go to ``artifacts/center-*.png``. The browser's zone is New York; the page shows Asia/Shanghai.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest

from gridsentinel.cases.case import Case, CaseChange, LogEntry
from gridsentinel.cases.categories import load_catalog
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.workflow import sweep
from gridsentinel.settings import REPO_ROOT, Settings

from .conftest import serve_api

pytestmark = pytest.mark.integration
BROWSER_DIR = REPO_ROOT / "tests" / "browser"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = REPO_ROOT / "artifacts"
CITY_TZ = ZoneInfo("Asia/Shanghai")
H = 3600.0
STREET, OTHER, DISTRICT = "street:320582004", "street:320582005", "district:320582"


def _two_streets(config_dir: Path) -> None:
    """Add three cells of a second street (320582005, east of the demo one) to the test's grid."""
    path = config_dir / "grid.geojson"
    grid = json.loads(path.read_text())
    extra = []
    for n, feature in enumerate(grid["features"][:3], 1):
        copy = json.loads(json.dumps(feature))
        copy["geometry"]["coordinates"] = [[[x + 0.05, y] for x, y in ring] for ring in copy["geometry"]["coordinates"]]
        copy["properties"].update(code=f"320582005001{n:03d}", name=f"Street 005 cell {n}")
        extra.append(copy)
    grid["features"].extend(extra)
    path.write_text(json.dumps(grid))


def _case(case_id: str, cell: str, category: str, source: str, *, now: float, title: str, headline: str = "",
          due_in_s: float = 4 * H) -> CaseChange:
    """An open case as the case stage opens it, at its street center."""
    ctype, code = category.split(":")
    opened = now - 2 * H
    center = f"street:{cell[:9]}"
    case = Case(case_id=case_id, grid_code=cell, category_type=ctype, category_code=code,
                category_standard="GB/T 30428.2-2013" if ctype == "component" else "CJ/T 214-2007",
                status="open", severity="warning", opened_at=opened, updated_at=opened, first_seen_at=opened,
                last_seen_at=opened, detection_count=1, sources={source: 1}, title=title, center=center,
                home_center=center, due_at=now + due_in_s, headline=headline, log_count=1)
    entry = LogEntry(case_id, 1, opened, f"system:{source}", "open", None, "open")
    return CaseChange(case, (entry,), created=True)


def _seed(url: str, changes: list[CaseChange]) -> None:
    async def write() -> None:
        async with SqlCaseStore.open(url) as store:
            async with store.transaction() as tx:
                for change in changes:
                    await tx.save(change, None)

    asyncio.run(write())


def _user(url: str, name: str, role: str, center: str | None, department: str | None = None) -> str:
    """A user of ``center`` and its token's secret (none ships: gridsentinel/api/users.py)."""
    from gridsentinel.api.users import UserStore

    async def make() -> str:
        async with UserStore.open(url) as store:
            issued = await store.create_user(name, role, actor="test", center=center, department=department)
            return issued.secret

    return asyncio.run(make())


def _sweep(url: str, config_dir: Path, now: float) -> list[str]:
    """The cases worker's escalation sweep, once: the event types it produced."""
    catalog = load_catalog(config_dir)

    async def run() -> list[str]:
        async with SqlCaseStore.open(url) as store:
            return [e.type for e in await sweep(store, catalog, now=now)]

    return asyncio.run(run())


class World:
    """The running API, its database and what the steps need."""

    def __init__(self, base: str, url: str, config_dir: Path, now: float, tokens: dict[str, str]) -> None:
        self.base, self.url, self.config_dir, self.now, self.tokens = base, url, config_dir, now, tokens
        self.ids = {"other": "case-other-street", "overdue": "case-overdue", "refuse": "case-refuse",
                    "sensor": "case-sensor"}

    def step(self, name: str, **more: Any) -> dict[str, Any]:
        if not Path(CHROMIUM).exists() or not (BROWSER_DIR / "node_modules" / "playwright-core").is_dir():
            pytest.fail("needs Debian's chromium and `npm ci` in tests/browser (scripts/setup.sh installs both)")
        ARTIFACTS.mkdir(exist_ok=True)
        args = {**self.tokens, **self.ids, "shots": str(ARTIFACTS), **more}
        done = subprocess.run(["node", "center_page.mjs", self.base, name, json.dumps(args)], cwd=BROWSER_DIR,
                              capture_output=True, text=True, timeout=240,
                              env={"GS_CHROMIUM": CHROMIUM, "PATH": "/usr/bin:/bin"})
        assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
        seen: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
        assert seen.pop("pageErrors") == []
        return seen

    def get(self, who: str, path: str) -> httpx.Response:
        return httpx.get(self.base + path, headers={"Authorization": f"Bearer {self.tokens[who]}"}, timeout=10)


@pytest.fixture
def world(settings: Settings, case_store_url: str, tmp_path: Path) -> Iterator[World]:
    from gridsentinel.api.app import create_app

    config_dir = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config_dir)
    _two_streets(config_dir)
    (config_dir / "receivers.yaml").write_text('version: test\nmqtt: {enabled: false}\nreceivers: []\n')
    now = time.time()
    _seed(case_store_url, [
        _case("case-other-street", "320582005001002", "event:0103", "citizen", now=now,
              title="garbage piled at the other street's market"),
        _case("case-overdue", "320582004001002", "event:0103", "citizen", now=now, due_in_s=-H,
              title="garbage piled by the school gate"),
        _case("case-refuse", "320582004001003", "event:0404", "citizen", now=now,
              title="blocked sewer behind block 7"),
        _case("case-sensor", "320582004002001", "component:0103", "sensor", now=now,
              title="water level 1.8 m of 3.0 m, overflows in ~16 min",
              headline="storm drain overflowing: water level 3.0 m of 3.0 m"),
    ])
    tokens = {
        "li": _user(case_store_url, "li", "dispatcher", STREET),
        "sup": _user(case_store_url, "chen", "supervisor", STREET),
        "zhou": _user(case_store_url, "zhou", "dispatcher", DISTRICT),
        "dept": _user(case_store_url, "drain-ops", "department", DISTRICT, "drainage"),
    }
    app = create_app(settings.with_(config_dir=config_dir, database_url=case_store_url, run_dir=tmp_path))
    with serve_api(app) as base:
        yield World(base, case_store_url, config_dir, now, tokens)


def _city_clock(t: float) -> str:
    return datetime.fromtimestamp(t, CITY_TZ).strftime("%H:%M")


def test_center_page_scope_escalation_refusal_and_four_eyes(world: World) -> None:
    # (a) scope: the other street's case is nowhere on the street's page, and its address says not found
    seen = world.step("scope")
    assert seen["me"].startswith("街道 320582004")
    assert seen["zone"].startswith("Asia/Shanghai")
    listed = {i for q in seen["queues"].values() for i in q["ids"]}
    assert "case-other-street" not in listed and "case-other-street" not in seen["pageText"]
    assert "market" not in seen["pageText"]
    assert set(seen["queues"]["new"]["ids"]) >= {"case-refuse", "case-sensor"}
    assert seen["queues"]["overdue"]["ids"] == ["case-overdue"] and seen["queues"]["overdue"]["count"] == "1"
    overdue = seen["overdueCase"]
    assert "已超期" in overdue["due"]
    due_at = world.now - H
    assert _city_clock(due_at) in overdue["due"]  # the city's wall clock, not New York's
    assert datetime.fromtimestamp(due_at, ZoneInfo("America/New_York")).strftime("%H:%M") not in overdue["due"]
    assert seen["direct"] == "案件不存在，或不在本中心的范围内。"
    assert "market" not in seen["directBody"]
    assert world.get("li", "/api/v1/cases/case-other-street").status_code == 404

    # (b) the sweep escalates the overdue case: the district has it, the street keeps seeing it read-only
    assert "escalate" in _sweep(world.url, world.config_dir, time.time())
    seen = world.step("escalated")
    assert "case-overdue" in seen["district"]["escalated_in"]["ids"]
    assert seen["district"]["escalated_in"]["count"] == "1"
    district = seen["districtCase"]
    assert district["readonly"] is None
    enabled = {b["action"] for b in district["buttons"] if b["enabled"]}
    assert {"dispatch", "hand_back"} <= enabled
    escalation = next(e for e in district["log"] if e["action"] == "escalate")
    assert "handover" in escalation["cls"] and "街道 320582004 → 区 320582" in escalation["text"]
    assert "system:escalation" in escalation["text"]
    street = seen["streetCase"]
    assert seen["street"]["escalated_out"]["ids"] == ["case-overdue"]
    assert "case-overdue" not in seen["street"]["overdue"]["ids"] + seen["street"]["new"]["ids"]
    assert "now with district 320582" in seen["streetRow"] and "open" in seen["streetRow"].lower()
    assert street["readonly"] == "This case is with district 320582: read-only here."
    assert street["buttons"], "the street sees which actions exist"
    for button in street["buttons"]:  # none usable, each says why, each looks disabled
        assert not button["enabled"] and button["opacity"] < 0.5, button
        assert button["title"] == "district:320582 holds the case now; street:320582004 sees it read-only"

    # (c) dispatch, the department refuses with a reason, the case is back in the street's refused queue
    reason = "not a sewer: the blockage is in a private yard"
    seen = world.step("refuse", reason=reason, department="drainage")
    assert seen["afterDispatch"]["status"] == "已派遣"
    refuse = next(b for b in seen["deptCase"]["buttons"] if b["action"] == "refuse")
    assert refuse["enabled"]
    assert seen["deptAfter"] == "退单：已完成。此案件已不在您的范围内（例如退单后回到了中心）。"  # no longer theirs
    assert "case-refuse" in seen["street"]["refused"]["ids"]
    assert "case-refuse" not in seen["street"]["new"]["ids"]
    refusal = [e for e in seen["streetCase"]["log"] if e["action"] == "refuse"]
    assert len(refusal) == 1 and "refusal" in refusal[0]["cls"]
    assert "user:drain-ops" in refusal[0]["text"] and reason in refusal[0]["text"]
    assert "退回 街道 320582004" in refusal[0]["text"]

    # (d) four eyes: the first user's false alarm waits, a supervisor confirms, the case closes
    note = "the level sensor was being tested"
    seen = world.step("false-alarm", note=note)
    first = seen["first"]
    assert first["status"] == "待派遣" and first["pending"] and note in first["pending"]
    assert "user:li" in first["pending"]
    assert first["title"] == "storm drain overflowing: water level 3.0 m of 3.0 m"  # the headline
    own = next(b for b in first["buttons"] if b["action"] == "false_alarm")
    assert not own["enabled"] and own["title"] and own["opacity"] < 0.5  # not by the same user
    assert seen["second"]["pending"]
    assert next(b for b in seen["second"]["buttons"] if b["action"] == "false_alarm")["enabled"]
    assert seen["closed"]["status"] == "已结案"
    assert [e["action"] for e in seen["closed"]["log"]][-2:] == ["request_false_alarm", "false_alarm"]
    assert world.get("li", "/api/v1/cases/case-sensor").json()["case"]["closing_reason"] == "false_alarm"
    for name in ("a-street-queues", "a-other-street-not-found", "b-district-escalated-in",
                 "b-street-escalated-out-en", "c-department-refused", "c-street-refused-back",
                 "d-false-alarm-pending", "d-false-alarm-confirmed"):
        assert (ARTIFACTS / f"center-{name}.png").stat().st_size > 10_000
