"""The patrol plan from a real (SQLite) case store: the API route, the CLI, and both views in Chromium.

Cases of the last 20 days are seeded in two hot cells of the demo district (and a few elsewhere); the store
is too young for the forecast, so the plan uses the 28-day-mean estimate and says so.
"""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from gridsentinel.analytics.report import chromium_path
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.settings import REPO_ROOT

from ..conftest import api_token
from .conftest import serve_api
from .test_weekly_report import _case

pytestmark = pytest.mark.integration
HOT = ("320582004001001", "320582004002009")
ARTIFACTS = REPO_ROOT / "artifacts"


def _seed(url: str, now: float) -> None:
    import asyncio

    changes = []
    for day in range(1, 21):
        at = now - day * 86400
        for n, cell in enumerate(HOT):
            for k in range(3):
                changes.append(_case(f"h{day}-{n}-{k}", cell, at - k * 600, "citizen"))
        if day % 5 == 0:
            changes.append(_case(f"c{day}", "320582004001005", at, "sensor"))

    async def write() -> None:
        async with SqlCaseStore.open(url) as store:
            async with store.transaction() as tx:
                for change in changes:
                    await tx.save(change, None)

    asyncio.run(write())


@pytest.fixture
def api(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str]]:
    """The API's base URL over a seeded store, and a dispatcher's token made for this test."""
    from gridsentinel.api.app import create_app
    from gridsentinel.settings import Settings

    url = f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    _seed(url, time.time())
    token = api_token(url, "dispatcher")
    monkeypatch.setenv("GS_DATABASE_URL", url)
    app = create_app(Settings().with_(run_dir=tmp_path))
    with serve_api(app) as base:
        yield base, token


def test_plan_route_and_refusals(api: tuple[str, str]) -> None:
    api_url, token = api
    auth = {"Authorization": f"Bearer {token}"}
    r = httpx.get(f"{api_url}/api/v1/patrol/plan", params={"inspectors": 2, "shift_h": 2, "speed_kmh": 4},
                  headers=auth, timeout=60)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert "simple estimate" in plan["method"]
    planned = [s["cell"] for rt in plan["routes"] for s in rt["stops"]]
    assert set(HOT) <= set(planned), json.dumps(plan)
    assert len(planned) == len(set(planned))
    assert plan["routes"][0]["stops"][0]["arrive"] >= plan["shift_start"]
    assert all(rt["minutes"] <= 120 for rt in plan["routes"])
    assert plan["covered_share"] == pytest.approx(1.0)  # every cell with expected problems fits two shifts
    assert httpx.get(f"{api_url}/api/v1/patrol/plan", params={"date": "2000-01-01"}, headers=auth).status_code == 422
    assert httpx.get(f"{api_url}/api/v1/patrol/plan", params={"inspectors": 0}, headers=auth).status_code == 422
    assert httpx.get(f"{api_url}/api/v1/patrol/plan").status_code == 401


def test_patrol_views_in_chromium(api: tuple[str, str]) -> None:
    api_url, token = api
    if chromium_path() is None or not (REPO_ROOT / "tests" / "browser" / "node_modules" / "playwright-core").is_dir():
        pytest.fail("needs Debian's chromium and `npm ci` in tests/browser (scripts/setup.sh installs both)")
    ARTIFACTS.mkdir(exist_ok=True)
    map_shot, page_shot = ARTIFACTS / "patrol-map.png", ARTIFACTS / "patrol-page.png"
    done = subprocess.run(["node", "patrol_page.mjs", api_url, token, str(map_shot), str(page_shot)],
                          cwd=REPO_ROOT / "tests" / "browser", capture_output=True, text=True, timeout=180,
                          env={"GS_CHROMIUM": chromium_path() or "", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["routesBefore"] == 0 and seen["routesOnMap"] >= 1 and seen["routesAfterOff"] == 0
    assert seen["stopsOnMap"] >= 2 and "网格员 1" in seen["legend"]              # zh-CN, the default
    assert seen["inspectors"] == 4 and "个问题中的" in seen["summary"]
    times = [t for t, _ in seen["firstRoute"]]
    assert times == sorted(times) and times[0] >= "08:00"
    assert seen["pageWidth"] <= 390  # fits a phone: no sideways scrolling
    assert seen["pageErrors"] == []
    assert page_shot.stat().st_size > 5_000
