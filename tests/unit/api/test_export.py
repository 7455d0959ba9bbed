"""The desensitised case export (issue 17, "Privacy"): CSV and GeoJSON over the API and from the CLI carry no
account, phone, device or name, put every point on its cell's centroid, scrub titles, and filter by period,
category, status and scope."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest

from gridsentinel.cli import main
from gridsentinel.settings import REPO_ROOT

from .conftest import CELL, FAR_CELL, MONDAY_10H, Harness, assert_error, auth

pytestmark = pytest.mark.unit
POST = "/open311/v2/requests.json"
LAT, LON = 31.8722, 120.5505  # inside CELL, off its centroid
SECRETS = ("acct-wang", "13912345678", "phone-7f3a", "0512-58761234", "32058219900101123X", "wang@example.com")


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


async def seed(api: Harness, c: httpx.AsyncClient) -> str:
    """A citizen's report with identity and numbers in its text, a sensor case far away, a case a day later."""
    r = await c.post(POST, headers=auth("citizen"), data={
        "service_code": "event:0102", "lat": str(LAT), "long": str(LON), "account_id": "acct-wang",
        "device_id": "phone-7f3a", "phone": "13912345678",
        "description": "垃圾堆在网格320582004001001门口，回电13912345678或0512-58761234，"
                       "身份证32058219900101123X，邮箱wang@example.com"})
    assert r.status_code == 201, r.text
    await api.detect("drain-far", grid_code=FAR_CELL, lat=31.8712, lon=120.5572)
    api.now = MONDAY_10H + 86400
    await api.detect("drain-next-day", observed_at=MONDAY_10H + 86400)
    api.now = MONDAY_10H + 86400 + 60
    return str(r.json()[0]["service_request_id"])


def rows(text: str) -> list[dict[str, str]]:
    assert text.startswith("\ufeff")
    return list(csv.DictReader(io.StringIO(text[1:])))


def test_the_csv_has_no_personal_data_and_points_on_the_cell_centroid(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        await seed(api, c)
        r = await c.get("/api/v1/export/cases.csv", headers=auth("viewer"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/csv")
        assert "attachment" in r.headers["content-disposition"]
        for secret in SECRETS:
            assert secret not in r.text, secret
        found = rows(r.text)
        assert len(found) == 3
        [citizen] = [row for row in found if row["category_key"] == "event:0102"]
        lat, lon = api.state.grid.centroid(CELL)
        assert (float(citizen["lat"]), float(citizen["lon"])) == (round(lat, 6), round(lon, 6))
        assert (float(citizen["lat"]), float(citizen["lon"])) != (LAT, LON)
        assert citizen["title"] == ("垃圾堆在网格320582004001001门口，回电[phone]或[phone]，身份证[id]，邮箱[email]")
        assert citizen["grid_code"] == CELL and citizen["sources"] == "citizen:1"
        assert citizen["category_name_zh"] and citizen["opened_at"].endswith("Z")

    api.run(scenario)


def test_geojson_filters_and_errors(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        await seed(api, c)
        r = await c.get("/api/v1/export/cases.geojson", headers=auth("viewer"),
                        params={"since": iso(MONDAY_10H - 3600), "until": iso(MONDAY_10H + 3600)})
        assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
        fc = json.loads(r.text)
        assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 2  # not the next day's case
        for secret in SECRETS:
            assert secret not in r.text
        feature = next(f for f in fc["features"] if f["properties"]["category_key"] == "event:0102")
        lat, lon = api.state.grid.centroid(CELL)
        assert feature["geometry"] == {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}
        assert feature["properties"]["sources"] == {"citizen": 1}
        only = json.loads((await c.get("/api/v1/export/cases.geojson", headers=auth("viewer"),
                                       params={"category": "component:0103,event:0404"})).text)
        assert {f["properties"]["category_key"] for f in only["features"]} == {"component:0103"}
        assert len(only["features"]) == 2
        cell = rows((await c.get("/api/v1/export/cases.csv", headers=auth("viewer"),
                                 params={"grid_prefix": FAR_CELL})).text)
        assert [row["grid_code"] for row in cell] == [FAR_CELL]
        closed = rows((await c.get("/api/v1/export/cases.csv", headers=auth("viewer"),
                                   params={"status": "closed"})).text)
        assert closed == []
        assert_error(await c.get("/api/v1/export/cases.csv", headers=auth("viewer"),
                                 params={"category": "event:9999"}), 422, "validation_error")
        assert_error(await c.get("/api/v1/export/cases.csv", headers=auth("viewer"),
                                 params={"since": iso(MONDAY_10H), "until": iso(MONDAY_10H - 1)}), 400)
        assert_error(await c.get("/api/v1/export/cases.csv"), 401)
        assert_error(await c.get("/api/v1/export/cases.csv", headers=auth("citizen")), 403)

    api.run(scenario)


def test_the_cli_writes_the_same_rows_with_progress(api: Harness, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        await seed(api, c)

    api.run(scenario)
    monkeypatch.setenv("GS_DATABASE_URL", f"sqlite:///{tmp_path / 'cases.db'}")
    monkeypatch.setenv("GS_CONFIG_DIR", str(REPO_ROOT / "config"))
    out = tmp_path / "out" / "cases.csv"
    day = datetime.fromtimestamp(MONDAY_10H, UTC).date().isoformat()
    assert main(["export", "cases", "--since", day, "--until", "2025-06-11", "--center", "320582004001001",
                 "-o", str(out)]) == 0
    err = capsys.readouterr().err
    assert "done: 2 cases" in err and "[export" in err
    text = out.read_text(encoding="utf-8")
    assert all(secret not in text for secret in SECRETS)
    found = rows(text)
    assert {r["grid_code"] for r in found} == {CELL} and len(found) == 2
    geo = tmp_path / "cases.geojson"
    assert main(["export", "cases", "--format", "geojson", "--since", day, "--until", "2025-06-10", "--category",
                 "event:0102", "-o", str(geo), "--quiet"]) == 0
    assert capsys.readouterr().err == ""
    [feature] = json.loads(geo.read_text(encoding="utf-8"))["features"]
    assert "[phone]" in feature["properties"]["title"]
    # bad options: one line saying what to give, status 2, no file
    assert main(["export", "cases", "--since", "yesterday", "--until", day, "-o", str(tmp_path / "x.csv")]) == 2
    assert "give a date" in capsys.readouterr().err
    assert main(["export", "cases", "--since", day, "--until", day, "-o", str(tmp_path / "x.csv")]) == 2
    assert main(["export", "cases", "--since", day, "--until", "2025-07-01", "--category", "event:9999",
                 "-o", str(tmp_path / "x.csv")]) == 2
    assert "unknown category" in capsys.readouterr().err and not (tmp_path / "x.csv").exists()
