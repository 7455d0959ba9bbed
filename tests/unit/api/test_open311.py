"""/open311/v2: services from the categories, citizen reports deduplicated into cases, request queries."""

from __future__ import annotations

import httpx
import pytest

from gridsentinel.ingest.records import Detection

from .conftest import CELL, MONDAY_10H, NEIGHBOUR, Harness, assert_error, auth

pytestmark = pytest.mark.unit
IN_CELL = {"lat": "31.8722", "long": "120.5505"}  # inside CELL


def test_services_are_the_categories(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        services = (await c.get("/open311/v2/services.json", headers=auth("viewer"))).json()
        codes = [s["service_code"] for s in services]
        assert "event:0103" in codes and "component:0103" in codes and len(codes) == len(set(codes))
        dumping = next(s for s in services if s["service_code"] == "event:0103")
        assert dumping["metadata"] is False and dumping["type"] == "realtime"
        definition = (await c.get("/open311/v2/services/event:0103.json", headers=auth("viewer"))).json()
        assert definition == {"service_code": "event:0103", "attributes": []}
        assert_error(await c.get("/open311/v2/services/event:9999.json", headers=auth("viewer")), 404)

    api.run(scenario)


def test_citizen_reports_are_deduplicated_with_sensor_detections(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        form = {
            "service_code": "component:0103",
            **IN_CELL,
            "description": "cover lifted, water everywhere",
            "media_url": "https://example.org/cover.jpg",
        }
        sensor_case = (await api.detect("sensor-1"))[0].case_id
        r = await c.post("/open311/v2/requests.json", data=form, headers=auth("citizen"))
        assert r.status_code == 201, r.text
        [result] = r.json()
        assert result["service_request_id"] == sensor_case
        assert result["service_notice"] == "added to an existing case"
        detail = (await c.get(f"/api/v1/cases/{sensor_case}", headers=auth("viewer"))).json()
        assert detail["case"]["sources"] == {"sensor": 1, "citizen": 1}
        citizen = next(d for d in detail["detections"] if d["source"] == "citizen")
        assert citizen["source"] == "citizen" and citizen["grid_code"] == CELL
        assert citizen["detection_id"].startswith("citizen:")
        assert citizen["evidence"]["media_url"] == "https://example.org/cover.jpg"
        assert citizen["evidence"]["reported_by"] == "t-citizen"
        assert [e.type for e in api.sink] == ["evidence"]

    api.run(scenario)


def test_new_report_opens_a_case_and_idempotency_key_makes_retries_harmless(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        body = {"service_code": "event:0103", "lat": 31.8722, "long": 120.5505, "description": "rubble"}
        headers = {**auth("dispatcher"), "Idempotency-Key": "app-42"}
        first = (await c.post("/open311/v2/requests.json", json=body, headers=headers)).json()[0]
        again = (await c.post("/open311/v2/requests.json", json=body, headers=headers)).json()[0]
        assert first["service_notice"] == "a new case was opened"
        assert again == {**first, "service_notice": "already received"}
        other = (await c.post("/open311/v2/requests.json", json=body, headers=auth("dispatcher"))).json()[0]
        assert other["service_request_id"] == first["service_request_id"]  # same cell, same category
        detail = (await c.get(f"/api/v1/cases/{first['service_request_id']}", headers=auth("viewer"))).json()
        assert detail["case"]["detection_count"] == 2 and detail["case"]["sources"] == {"citizen": 2}
        assert detail["case"]["category_key"] == "event:0103"

    api.run(scenario)


def test_report_locations(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        h = auth("citizen")
        post = c.post
        r = await post(
            "/open311/v2/requests.json",
            data={"service_code": "event:0505", "address_string": "community 001 cell 2"},
            headers=h,
        )
        case_id = r.json()[0]["service_request_id"]
        assert (await c.get(f"/api/v1/cases/{case_id}", headers=auth("viewer"))).json()["case"][
            "grid_code"
        ] == NEIGHBOUR
        assert_error(
            await post(
                "/open311/v2/requests.json",
                data={"service_code": "event:0505", "lat": "39.9", "long": "116.4"},
                headers=h,
            ),
            400,
            "location_outside_grid",
        )
        assert_error(
            await post("/open311/v2/requests.json", data={"service_code": "event:0505"}, headers=h),
            400,
            "location_required",
        )
        assert_error(
            await post(
                "/open311/v2/requests.json",
                data={"service_code": "event:0505", "address_string": "1 Main St"},
                headers=h,
            ),
            400,
            "address_not_found",
        )
        assert_error(
            await post("/open311/v2/requests.json", data={"service_code": "bogus", **IN_CELL}, headers=h),
            400,
            "unknown_service_code",
        )
        err = assert_error(await post("/open311/v2/requests.json", data={"lat": "x"}, headers=h), 422)
        assert {tuple(d["loc"]) for d in err["details"]} == {("body", "service_code"), ("body", "lat")}
        assert_error(
            await post(
                "/open311/v2/requests.json",
                content=b"<xml/>",
                headers={**h, "content-type": "application/xml"},
            ),
            415,
        )

    api.run(scenario)


def test_request_queries_status_and_expected_datetime(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        h = auth("viewer")
        open_id = (await api.detect("d1"))[0].case_id
        api.now += 60
        closed_id = (await api.detect("d2", grid_code=NEIGHBOUR))[0].case_id
        r = await c.post(
            f"/api/v1/cases/{closed_id}/transitions",
            json={"action": "false_alarm"},
            headers=auth("dispatcher"),
        )
        assert r.status_code == 200
        api.now += 60
        every = (await c.get("/open311/v2/requests.json", headers=h)).json()
        assert [x["service_request_id"] for x in every] == [closed_id, open_id]
        closed, opened = every
        assert closed["status"] == "closed" and closed["status_notes"] == "closed (false_alarm)"
        assert opened["status"] == "open" and opened["agency_responsible"].startswith("Drainage")
        case = (await c.get(f"/api/v1/cases/{open_id}", headers=h)).json()["case"]
        assert opened["expected_datetime"] is not None and opened["expected_datetime"].endswith("+08:00")
        from datetime import datetime

        assert datetime.fromisoformat(opened["expected_datetime"]).timestamp() == pytest.approx(
            case["due_at"], abs=1
        )
        assert opened["requested_datetime"] == "2025-06-09T10:00:00+08:00" and opened["address_id"] == CELL
        only_open = (await c.get("/open311/v2/requests.json", params={"status": "open"}, headers=h)).json()
        assert [x["service_request_id"] for x in only_open] == [open_id]
        by_ids = (
            await c.get(
                "/open311/v2/requests.json",
                params={"service_request_id": f"{open_id},nope", "status": "closed"},
                headers=h,
            )
        ).json()
        assert [x["service_request_id"] for x in by_ids] == [open_id]
        none = (
            await c.get("/open311/v2/requests.json", params={"service_code": "event:0103"}, headers=h)
        ).json()
        assert none == []
        window = {"start_date": "2025-06-09T10:00:30+08:00", "end_date": "2025-06-09T11:00:00+08:00"}
        assert [
            x["service_request_id"]
            for x in (await c.get("/open311/v2/requests.json", params=window, headers=h)).json()
        ] == [closed_id]
        assert_error(
            await c.get(
                "/open311/v2/requests.json",
                params={"start_date": "2025-01-01T00:00:00Z", "end_date": "2025-06-01T00:00:00Z"},
                headers=h,
            ),
            400,
            "date_range_too_long",
        )
        old = (
            await c.get("/open311/v2/requests.json", params={"end_date": MONDAY_10H - 1}, headers=h)
        ).json()
        assert old == []
        one = (await c.get(f"/open311/v2/requests/{open_id}.json", headers=h)).json()
        assert len(one) == 1 and one[0]["service_request_id"] == open_id
        assert_error(await c.get("/open311/v2/requests/nope.json", headers=h), 404)

    api.run(scenario)


def test_media_url_of_a_citizen_report_shows_on_the_request(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        r = await c.post(
            "/open311/v2/requests.json",
            headers=auth("citizen"),
            data={"service_code": "event:0201", **IN_CELL, "media_url": "https://e.org/ad.jpg"},
        )
        rid = r.json()[0]["service_request_id"]
        one = (await c.get(f"/open311/v2/requests/{rid}.json", headers=auth("citizen"))).json()[0]
        assert one["media_url"] == "https://e.org/ad.jpg" and one["service_code"] == "event:0201"
        assert isinstance(Detection, type)

    api.run(scenario)
