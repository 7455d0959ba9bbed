"""/open311/v2: services from the categories, citizen reports deduplicated into cases, request queries."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gridsentinel.core.records import Detection

from .conftest import CELL, MONDAY_10H, NEIGHBOUR, Harness, assert_error, auth, detection

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
        assert api.sink == []  # the API changed nothing itself: the case stage applied the report
        assert [e.type for e in api.stage_events] == ["evidence"]
        assert result["token"] == citizen["detection_id"].removeprefix("citizen:")

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
        for role in ("dispatcher", "admin"):  # a sensor case: a false alarm takes a second user
            r = await c.post(
                f"/api/v1/cases/{closed_id}/transitions",
                json={"action": "false_alarm"},
                headers=auth(role),
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


def test_report_goes_to_the_case_stage_and_its_token_resolves_once_applied(api: Harness) -> None:
    api.hold = True  # the case stage has not taken the report yet

    async def scenario(c: httpx.AsyncClient) -> None:
        body = {"service_code": "event:0103", **IN_CELL, "description": "rubble"}
        r = await c.post("/open311/v2/requests.json", data=body, headers=auth("citizen"))
        assert r.status_code == 201, r.text
        [result] = r.json()
        assert result["service_request_id"] is None and len(result["token"]) == 32
        assert f"tokens/{result['token']}.json" in result["service_notice"]
        # Routed, not applied in the API process: the detection waits for the stage, the store is empty.
        [held] = api.held
        assert held.detection_id == "citizen:" + result["token"] and held.source == "citizen"
        assert held.grid_code == CELL and held.evidence["reported_by"] == "t-citizen"
        assert (await c.get("/open311/v2/requests.json", headers=auth("viewer"))).json() == []
        token_url = f"/open311/v2/tokens/{result['token']}.json"
        assert (await c.get(token_url, headers=auth("citizen"))).json() == [
            {"token": result["token"], "service_request_id": None}
        ]
        await api.release()
        [resolved] = (await c.get(token_url, headers=auth("citizen"))).json()
        rid = resolved["service_request_id"]
        assert rid is not None and resolved["token"] == result["token"]
        [request] = (await c.get(f"/open311/v2/requests/{rid}.json", headers=auth("citizen"))).json()
        assert request["service_code"] == "event:0103" and request["address_id"] == CELL
        assert_error(await c.get("/open311/v2/tokens/not-a-token.json", headers=auth("citizen")), 404)

    api.run(scenario)


def test_identical_reports_without_idempotency_key_are_one_detection(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        body = {"service_code": "event:0103", **IN_CELL, "description": "rubble"}
        first = (await c.post("/open311/v2/requests.json", data=body, headers=auth("citizen"))).json()[0]
        api.now += 30  # a double tap, an app's retry
        again = (await c.post("/open311/v2/requests.json", data=body, headers=auth("citizen"))).json()[0]
        assert first["service_notice"] == "a new case was opened"
        assert again == {**first, "service_notice": "already received"}
        api.hold = True  # posted twice before the case stage takes either: still one detection
        other = {**body, "description": "more rubble"}
        one = (await c.post("/open311/v2/requests.json", data=other, headers=auth("citizen"))).json()[0]
        two = (await c.post("/open311/v2/requests.json", data=other, headers=auth("citizen"))).json()[0]
        assert one["token"] == two["token"] != first["token"]
        api.hold = False
        await api.release()
        detail = (await c.get(f"/api/v1/cases/{first['service_request_id']}", headers=auth("viewer"))).json()
        assert detail["case"]["detection_count"] == 2 and detail["case"]["sources"] == {"citizen": 2}
        api.now += 3600  # much later, the same words are a new report
        later = (await c.post("/open311/v2/requests.json", data=body, headers=auth("citizen"))).json()[0]
        assert later["token"] != first["token"] and later["service_notice"] == "added to an existing case"

    api.run(scenario)


def test_report_without_a_route_to_the_case_stage_is_503(tmp_path: Path) -> None:
    api = Harness(tmp_path)
    api.state.detection_sink = None

    async def scenario(c: httpx.AsyncClient) -> None:
        body = {"service_code": "event:0103", **IN_CELL}
        assert_error(await c.post("/open311/v2/requests.json", data=body, headers=auth("citizen")), 503,
                     "unavailable")

    api.run(scenario)


def test_citizen_reports_are_keyed_like_every_detector_s_detections() -> None:
    from gridsentinel.api.hub import detection_key
    from gridsentinel.detectors.stage import detection_key as detector_key

    for cell in (CELL, NEIGHBOUR, "320582110152102"):
        d = detection("citizen:x", grid_code=cell, source="citizen")
        assert detection_key(d) == detector_key(d)
