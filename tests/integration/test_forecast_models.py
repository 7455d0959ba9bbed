"""The hotspot forecast's stored models on a real (SQLite) case database: trained by the CLI and by the nightly
schedule, versioned, listed by the API, and used by the patrol plan instead of a fit per request.

Cases of the last 60 days are seeded in a few cells of the demo district, busier on weekdays in two of them, so
the history is long enough for a model (35 complete days).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import numpy as np
import pytest
from influxdb_client.client.write_api import SYNCHRONOUS

from gridsentinel.analytics.model_store import MAX_AGE_DAYS, ModelStore, Retrainer, case_history, train
from gridsentinel.analytics.patrol import PatrolParams
from gridsentinel.analytics.patrol_plan import load_cases, store_plan
from gridsentinel.analytics.weather import city_rain, rain_source
from gridsentinel.cases.case import Case
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.core.grid import GridMap
from gridsentinel.core.records import Reading
from gridsentinel.ingest.influx import to_line
from gridsentinel.settings import REPO_ROOT, Settings

from ..conftest import api_token
from .conftest import Namespace, serve_api
from .test_weekly_report import _case

pytestmark = pytest.mark.integration
TZ = "Asia/Shanghai"
CELLS = ("320582004001001", "320582004002009", "320582004001005", "320582004001007")
GRID = GridMap.load(REPO_ROOT / "config" / "grid.geojson")


def _seed(url: str, now: float, days: int = 60) -> int:
    changes = []
    for day in range(1, days + 1):
        at = now - day * 86400
        weekday = datetime.fromtimestamp(at, ZoneInfo(TZ)).weekday()
        for n, cell in enumerate(CELLS):
            per_day = (3 if weekday < 5 else 1) if n < 2 else (1 if day % (n + 2) == 0 else 0)
            for k in range(per_day):
                changes.append(_case(f"d{day}-{n}-{k}", cell, at - k * 300, "citizen"))

    async def write() -> None:
        async with SqlCaseStore.open(url) as store:
            async with store.transaction() as tx:
                for change in changes:
                    await tx.save(change, None)

    asyncio.run(write())
    return len(changes)


def _cli(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "GS_DATABASE_URL": url}
    return subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "gridsentinel"), "forecast", *args], env=env,
                          capture_output=True, text=True, timeout=300)


@pytest.fixture
def seeded(tmp_path: Path) -> str:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    _seed(url, time.time())
    return url


def test_cli_trains_once_a_day_and_lists_the_version(seeded: str) -> None:
    listed = _cli(seeded, "models")
    assert listed.returncode == 0 and "no stored forecast model" in listed.stdout, listed.stderr
    first = _cli(seeded, "train", "--json")
    assert first.returncode == 0, first.stderr
    row = json.loads(first.stdout)
    today = datetime.now(ZoneInfo(TZ)).date()
    assert row["version"].startswith(f"bp-{today:%Y%m%d}-") and row["data_end"] == today.isoformat()
    assert row["kind"] == "boosted_poisson" and row["scope"] == "" and row["cells"] == len(CELLS)
    assert row["problems"] > 0 and row["rows"] > 0 and "model" not in row
    assert "training on" in first.stderr  # progress on the slow part
    again = _cli(seeded, "train", "--json")  # the same day: the stored model is kept
    assert again.returncode == 0 and json.loads(again.stdout)["version"] == row["version"]
    assert "kept" in again.stderr
    listed = _cli(seeded, "models", "--json")
    assert [m["version"] for m in json.loads(listed.stdout)] == [row["version"]]


def test_a_stored_model_forecasts_as_the_fitted_one_and_is_refused_when_stale_or_altered(seeded: str) -> None:
    now = time.time()
    today = datetime.fromtimestamp(now, ZoneInfo(TZ)).date()

    async def go() -> None:
        async with SqlCaseStore.open(seeded) as store:
            models = ModelStore(store.engine)
            assert await models.usable(today) == (None, "no stored model")
            cases = await load_cases(store, now - 120 * 86400, now)
            model = train(cases, GRID.cells, tz=TZ, now=now)
            stored = await models.save(model)
            found, why = await models.usable(today)
            assert found is not None and why == "" and found[1].version == stored.version
            # the stored bytes forecast exactly what the model fitted here forecasts
            built = case_history(cases, GRID.cells, tz=TZ, today=today, until=today + timedelta(days=6),
                                 families=stored.families)
            assert built is not None
            past = built.history.until((today - built.history.start).days)
            cells = np.arange(len(built.codes))
            again = train(cases, GRID.cells, tz=TZ, now=now).forecaster()
            assert np.allclose(found[0].predict(past, cells), again.predict(past, cells))
            # a model is not used past MAX_AGE_DAYS, nor when its bytes were altered
            later = today + timedelta(days=MAX_AGE_DAYS + 1)
            none, why = await models.usable(later)
            assert none is None and "days old" in why
            async with store.engine.begin() as conn:
                await conn.exec_driver_sql("UPDATE forecast_models SET model = X'00'")
            none, why = await models.usable(today)
            assert none is None and "SHA-256" in why

    asyncio.run(go())


def test_the_schedule_trains_after_its_hour_once_per_day(seeded: str) -> None:
    zone = ZoneInfo(TZ)
    today = datetime.now(zone).date()
    midnight = datetime.combine(today, datetime.min.time(), zone).timestamp()
    clock_at = {"t": midnight - 86400 + 3600}  # yesterday 01:00

    async def go() -> None:
        async with SqlCaseStore.open(seeded) as store:
            models = ModelStore(store.engine)

            async def cases(since: float) -> list[Case]:
                return await load_cases(store, since, clock_at["t"])

            retrainer = Retrainer(models, cases, GRID.cells, tz=TZ, at="01:30", clock=lambda: clock_at["t"])
            first = await retrainer.check()  # no model at all: a new installation does not wait for the night
            assert first is not None and first.data_end == today - timedelta(days=1)
            clock_at["t"] = midnight + 3600  # today 01:00, yesterday's model: not yet
            assert await retrainer.check() is None
            clock_at["t"] += 3600  # 02:00: trained on the cases up to yesterday
            second = await retrainer.check()
            assert second is not None and second.data_end == today and second.version != first.version
            assert await retrainer.check() is None  # and not again that day
            assert [m.version for m in await models.versions()] == [second.version, first.version]
            assert retrainer.trained == [first.version, second.version]

    asyncio.run(go())


def test_a_new_installation_waits_for_history(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    _seed(url, time.time(), days=20)
    done = _cli(url, "train")
    assert done.returncode != 0
    assert "complete days of cases; a model needs 35" in done.stderr, done.stderr


@pytest.fixture
def api(seeded: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, str, str]]:
    from gridsentinel.api.app import create_app

    token = api_token(seeded, "dispatcher")
    monkeypatch.setenv("GS_DATABASE_URL", seeded)
    app = create_app(Settings().with_(run_dir=tmp_path))
    with serve_api(app) as base:
        yield base, token, seeded


def test_the_plan_names_the_stored_model_it_used(api: tuple[str, str, str]) -> None:
    api_url, token, url = api
    auth = {"Authorization": f"Bearer {token}"}
    params = {"inspectors": 1, "shift_h": 3}
    before = httpx.get(f"{api_url}/api/v1/patrol/plan", params=params, headers=auth, timeout=120)
    assert before.status_code == 200, before.text
    assert before.json()["model_version"] is None
    assert "fitted for this plan; no stored model" in before.json()["method"]
    assert httpx.get(f"{api_url}/api/v1/forecast/models", headers=auth).json() == []

    trained = _cli(url, "train", "--json")
    assert trained.returncode == 0, trained.stderr
    version = json.loads(trained.stdout)["version"]
    after = httpx.get(f"{api_url}/api/v1/patrol/plan", params=params, headers=auth, timeout=120).json()
    assert after["model_version"] == version and f"model {version}" in after["method"]
    planned = [s["cell"] for r in after["routes"] for s in r["stops"]]
    assert set(CELLS[:2]) <= set(planned)  # the two busy cells come first in any sensible plan
    listed = httpx.get(f"{api_url}/api/v1/forecast/models", headers=auth)
    assert listed.status_code == 200 and [m["version"] for m in listed.json()] == [version]
    assert httpx.get(f"{api_url}/api/v1/forecast/models").status_code == 401
    assert date.fromisoformat(listed.json()[0]["data_end"]) <= datetime.now(ZoneInfo(TZ)).date()


def _write_rain(ns: Namespace, start: datetime, days: int, mm_per_day: Callable[[int, str], float | None]) -> None:
    """Hourly ``rain_rate`` readings of two gauges into the test's bucket, as the ingest stage writes them."""
    lines = []
    for day in range(days):
        for gauge in ("rain-a", "rain-b"):
            mm = mm_per_day(day, gauge)
            if mm is None:
                continue
            for hour in range(24):
                t = (start + timedelta(days=day, hours=hour, minutes=10)).timestamp()
                lines.append(to_line(Reading(device_id=gauge, metric="rain_rate", unit="mm/h", value=mm / 24,
                                             observed_at=t, kind="rain_gauge", grid_code=CELLS[0])))
    with ns.influx() as client:
        client.write_api(write_options=SYNCHRONOUS).write(bucket=ns.bucket, record=lines, write_precision="us")


def test_rain_gauges_in_influxdb_become_daily_rainfall_and_a_model_feature(ns: Namespace, tmp_path: Path) -> None:
    zone = ZoneInfo(TZ)
    today = datetime.now(zone).date()
    first = today - timedelta(days=70)
    start = datetime.combine(first, datetime.min.time(), zone)
    # gauge a: 30 mm every 5th day, else dry; gauge b: the same, but silent every 7th day; no gauge on day 3
    _write_rain(ns, start, 70, lambda d, g: None if d == 3 or (g == "rain-b" and d % 7 == 0)
                else (30.0 if d % 5 == 0 else 0.0))
    rain = city_rain(ns.settings, TZ, first, today - timedelta(days=1))
    assert rain is not None
    assert rain[first] == pytest.approx(30.0) and rain[first + timedelta(days=1)] == pytest.approx(0.0)
    assert first + timedelta(days=3) not in rain  # no gauge reported: unknown, not dry
    assert rain[first + timedelta(days=35)] == pytest.approx(30.0)  # gauge b silent that day: gauge a alone
    assert city_rain(ns.settings.with_(influx_url="http://127.0.0.1:9"), TZ, first, today) is None  # unreachable

    url = f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    _seed(url, time.time())
    env_bucket = {"GS_INFLUX_BUCKET": ns.bucket}
    done = subprocess.run([str(REPO_ROOT / ".venv" / "bin" / "gridsentinel"), "forecast", "train", "--json"],
                          env={**os.environ, "GS_DATABASE_URL": url, **env_bucket}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    row = json.loads(done.stdout)
    assert row["features"][-3:] == ["working_day", "rain_1d", "rain_7d"], row["features"]
    assert "days of rainfall" in done.stderr

    async def plan() -> dict[str, Any]:
        async with SqlCaseStore.open(url) as store:
            return await store_plan(store, GRID, tz=TZ, now=time.time(), params=PatrolParams(inspectors=1),
                                    models=ModelStore(store.engine), is_working_day=lambda d: d.weekday() < 5,
                                    rain_source=rain_source(ns.settings, TZ))

    made = asyncio.run(plan())
    assert made["model_version"] == row["version"]
