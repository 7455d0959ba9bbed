"""/api/v1/devices, /api/v1/grid, /healthz and /metrics."""

from __future__ import annotations

import httpx
import pytest

from .conftest import CELL, NEIGHBOUR, Harness, assert_error, auth

pytestmark = pytest.mark.unit


def test_devices_from_the_registry(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        items = (await c.get("/api/v1/devices", headers=auth("viewer"))).json()["items"]
        assert "drain-001" in [d["id"] for d in items]
        drains = (
            await c.get("/api/v1/devices", params={"kind": "drain_level"}, headers=auth("viewer"))
        ).json()
        assert {d["kind"] for d in drains["items"]} == {"drain_level"}
        one = (await c.get("/api/v1/devices/drain-001", headers=auth("viewer"))).json()
        assert one["grid_code"] == CELL and one["install"]["rim_m"] == 3.0
        in_cell = (
            await c.get("/api/v1/devices", params={"grid_prefix": CELL}, headers=auth("viewer"))
        ).json()
        assert all(d["grid_code"] == CELL for d in in_cell["items"]) and in_cell["items"]
        assert_error(await c.get("/api/v1/devices/ghost", headers=auth("viewer")), 404, "not_found")

    api.run(scenario)


def test_grid_counts_open_cases_per_cell(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        await api.detect("d1")
        await api.detect(
            "d2", kind="illegal_dumping", category_code="0103", category_standard="CJ/T 214-2007"
        )
        closed = (
            await api.detect(
                "d3",
                grid_code=NEIGHBOUR,
                kind="fire_smoke",
                category_code="L005",
                category_standard="GridSentinel local 2025.1",
            )
        )[0].case_id
        for role in ("dispatcher", "admin"):  # a sensor case: a false alarm takes a second user
            r = await c.post(
                f"/api/v1/cases/{closed}/transitions", json={"action": "false_alarm"}, headers=auth(role)
            )
            assert r.status_code == 200
        geo = (await c.get("/api/v1/grid", headers=auth("viewer"))).json()
        assert geo["type"] == "FeatureCollection" and len(geo["features"]) == 18
        counts = {f["properties"]["code"]: f["properties"]["open_cases"] for f in geo["features"]}
        assert counts[CELL] == 2 and counts[NEIGHBOUR] == 0 and sum(counts.values()) == 2
        assert geo["features"][0]["geometry"]["type"] == "Polygon"
        some = (await c.get("/api/v1/grid", params={"grid_prefix": CELL}, headers=auth("viewer"))).json()
        assert [f["properties"]["code"] for f in some["features"]] == [CELL]

    api.run(scenario)


def test_metrics_in_prometheus_text_format(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        await api.detect("d1")
        api.now += 10 * 3600  # past the dispatch limit: overdue
        await api.detect(
            "d2",
            grid_code=NEIGHBOUR,
            kind="illegal_dumping",
            category_code="0103",
            category_standard="CJ/T 214-2007",
        )
        await c.get("/api/v1/cases", headers=auth("viewer"))
        r = await c.get("/metrics", headers=auth("viewer"))
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain; version=0.0.4")
        lines = r.text.splitlines()
        assert "# TYPE gs_cases gauge" in lines
        assert 'gs_cases{status="open"} 2.0' in lines and 'gs_cases{status="closed"} 0.0' in lines
        assert 'gs_cases_active{category="component:0103"} 1.0' in lines
        assert 'gs_cases_overdue{category="component:0103"} 1.0' in lines
        assert not any(ln.startswith('gs_cases_overdue{category="event:0103"}') for ln in lines)
        assert 'gs_http_requests_total{method="GET",route="/api/v1/cases",status="200"} 1.0' in lines
        assert "# TYPE gs_http_requests_total counter" in lines  # prometheus_client's exposition
        assert any(ln.startswith("process_resident_memory_bytes ") for ln in lines)

    api.run(scenario)
