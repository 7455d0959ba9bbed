"""/api/v1/cases: filters, paging, one case with its log and detections, transitions and their errors."""

from __future__ import annotations

import httpx
import pytest

from .conftest import CELL, FAR_CELL, MONDAY_10H, Harness, assert_error, auth

pytestmark = pytest.mark.unit


def test_list_filters_and_pages(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        await api.detect("d-cover", grid_code=CELL)  # component:0103 in CELL
        api.now += 60
        await api.detect(
            "d-dump",
            kind="illegal_dumping",
            category_code="0103",
            category_standard="CJ/T 214-2007",
            severity="warning",
            grid_code=FAR_CELL,
        )
        api.now += 60
        await api.detect("d-other", grid_code="320582004002001")
        h = auth("viewer")
        everything = (await c.get("/api/v1/cases", headers=h)).json()
        assert [i["grid_code"] for i in everything["items"]] == ["320582004002001", FAR_CELL, CELL]
        assert everything["next_offset"] is None
        by_prefix = (await c.get("/api/v1/cases", params={"grid_prefix": "320582004001"}, headers=h)).json()
        assert {i["grid_code"] for i in by_prefix["items"]} == {CELL, FAR_CELL}
        by_cat = (await c.get("/api/v1/cases", params={"category": "event:0103"}, headers=h)).json()
        assert [i["category_key"] for i in by_cat["items"]] == ["event:0103"]
        timed = (
            await c.get(
                "/api/v1/cases",
                params={"opened_from": MONDAY_10H + 30, "opened_to": "2025-06-09T10:01:30+08:00"},
                headers=h,
            )
        ).json()
        assert [i["grid_code"] for i in timed["items"]] == [FAR_CELL]
        page1 = (await c.get("/api/v1/cases", params={"limit": 2}, headers=h)).json()
        page2 = (
            await c.get("/api/v1/cases", params={"limit": 2, "offset": page1["next_offset"]}, headers=h)
        ).json()
        assert len(page1["items"]) == 2 and page1["next_offset"] == 2
        assert len(page2["items"]) == 1 and page2["next_offset"] is None
        assert (await c.get("/api/v1/cases", params={"status": "closed"}, headers=h)).json()["items"] == []
        both = await c.get(
            "/api/v1/cases", params=[("status", "open,dispatched"), ("status", "closed")], headers=h
        )
        assert len(both.json()["items"]) == 3
        err = assert_error(
            await c.get("/api/v1/cases", params={"status": "lost"}, headers=h), 422, "validation_error"
        )
        assert "lost" in err["message"]
        err = assert_error(
            await c.get("/api/v1/cases", params={"grid_prefix": "32x", "limit": 0}, headers=h),
            422,
            "validation_error",
        )
        assert {tuple(d["loc"]) for d in err["details"]} == {("query", "grid_prefix"), ("query", "limit")}
        assert_error(
            await c.get(
                "/api/v1/cases", params={"opened_from": MONDAY_10H + 10, "opened_to": MONDAY_10H}, headers=h
            ),
            400,
        )

    api.run(scenario)


def test_one_case_with_log_and_detections(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        case_id = (await api.detect("d1"))[0].case_id
        api.now += 30
        await api.detect("d2", observed_at=MONDAY_10H + 20, severity="critical")
        detail = (await c.get(f"/api/v1/cases/{case_id}", headers=auth("viewer"))).json()
        assert detail["case"]["detection_count"] == 2 and detail["case"]["severity"] == "critical"
        assert [e["action"] for e in detail["log"]] == ["open", "evidence", "raise_severity"]
        assert [d["detection_id"] for d in detail["detections"]] == ["d1", "d2"]
        assert [d["outcome"] for d in detail["detections"]] == ["opened", "attached"]
        assert detail["allowed_actions"] == [
            "dispatch", "acknowledge", "false_alarm", "duplicate", "request_coordination"]
        err = assert_error(await c.get("/api/v1/cases/nope", headers=auth("viewer")), 404, "not_found")
        assert "nope" in err["message"]

    api.run(scenario)


def test_transitions_and_409_with_allowed_actions(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        case_id = (await api.detect("d1"))[0].case_id
        url = f"/api/v1/cases/{case_id}/transitions"
        h = auth("dispatcher")
        with api.state.hub.subscribe() as sub:
            r = await c.post(url, json={"action": "dispatch", "note": "crew 3"}, headers=h)
            assert r.status_code == 200, r.text
            out = r.json()
            assert out["case"]["status"] == "dispatched" and out["case"]["department"] == "drainage"
            assert out["case"]["due_at"] > api.now
            assert [e["type"] for e in out["events"]] == ["dispatch"]
            assert out["events"][0]["actor"] == "user:t-dispatcher"
            assert (await sub.get(timeout=1)).event_id == out["events"][0]["event_id"]  # type: ignore[union-attr]
        assert [e.type for e in api.sink] == ["dispatch"]

        err = assert_error(await c.post(url, json={"action": "close"}, headers=h), 409, "invalid_transition")
        assert err["details"]["allowed"] == [
            "start", "resolve", "false_alarm", "duplicate", "refuse", "request_coordination"]
        assert err["details"]["status"] == "dispatched"
        assert "allowed: start, resolve" in err["message"]
        for action in ("resolve", "verify", "close"):
            assert (await c.post(url, json={"action": action}, headers=h)).status_code == 200
        detail = (await c.get(f"/api/v1/cases/{case_id}", headers=h)).json()
        assert detail["case"]["status"] == "closed" and detail["case"]["closing_reason"] == "resolved"
        assert detail["allowed_actions"] == ["reopen"]

        assert_error(await c.post(url, json={"action": "explode"}, headers=h), 422, "validation_error")
        assert_error(await c.post(url, json={"action": "reopen", "extra": 1}, headers=h), 422)
        assert_error(await c.post(url, content=b"{", headers={**h, "content-type": "application/json"}), 422)
        assert_error(await c.post(url, json={"action": "duplicate", "duplicate_of": case_id}, headers=h), 409)

    api.run(scenario)


def test_dispatch_department_and_duplicate_target_are_checked(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        case_id = (await api.detect("d1"))[0].case_id
        url = f"/api/v1/cases/{case_id}/transitions"
        h = auth("admin")
        err = assert_error(
            await c.post(url, json={"action": "dispatch", "department": "ghostbusters"}, headers=h), 422
        )
        assert "drainage" in err["details"]["known"]
        assert_error(await c.post(url, json={"action": "duplicate", "duplicate_of": "ghost"}, headers=h), 404)
        r = await c.post(url, json={"action": "dispatch", "department": "road_maintenance"}, headers=h)
        assert r.json()["case"]["department"] == "road_maintenance"

    api.run(scenario)


def test_oversized_body_is_413(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        r = await c.post(
            "/api/v1/cases/x/transitions",
            json={"action": "acknowledge", "note": "x" * 5000},
            headers=auth("dispatcher"),
        )
        assert_error(r, 413, "payload_too_large")

    api.run(scenario)


def test_unknown_route_and_method_use_the_error_shape(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        assert_error(await c.get("/api/v1/nothing", headers=auth("viewer")), 404, "not_found")
        assert_error(await c.delete("/api/v1/cases", headers=auth("viewer")), 405, "method_not_allowed")

    api.run(scenario)


def test_transition_checks_who_may_act_and_four_eyes(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        case_id = (await api.detect("d1"))[0].case_id  # a sensor case: machine-found
        url = f"/api/v1/cases/{case_id}/transitions"
        err = assert_error(
            await c.post(
                url,
                json={"action": "dispatch", "department": "drainage", "assisting_departments": ["nope"]},
                headers=auth("dispatcher"),
            ),
            422,
            "validation_error",
        )
        assert "nope" in err["message"]
        err = assert_error(
            await c.post(url, json={"action": "request_coordination"}, headers=auth("dispatcher")),
            422,
            "validation_error",
        )
        assert "needs a note: the reason" in err["message"]

        r = await c.post(url, json={"action": "false_alarm", "note": "test run"}, headers=auth("dispatcher"))
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["case"]["status"] == "open" and out["case"]["pending_action"]["by"] == "user:t-dispatcher"
        assert [e["type"] for e in out["events"]] == ["request_false_alarm"] and "second user" in out["waiting_for"]
        err = assert_error(
            await c.post(url, json={"action": "false_alarm"}, headers=auth("dispatcher")), 403, "not_allowed"
        )
        assert err["details"]["reason"] == "you requested this false alarm; a second user must confirm it"
        r = await c.post(url, json={"action": "false_alarm"}, headers=auth("engineer"))
        assert r.status_code == 200, r.text
        out = r.json()
        assert out["case"]["status"] == "closed" and out["waiting_for"] is None
        assert out["events"][0]["data"]["requested_by"] == "user:t-dispatcher"
        assert out["events"][0]["data"]["confirmed_by"] == "user:t-engineer"

    api.run(scenario)
