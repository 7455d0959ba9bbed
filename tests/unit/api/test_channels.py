"""Inspectors and the 12345 hotline: findings with photos and their observed time, on-site verify/rework,
calls placed through the gazetteer or queued until placed; every channel's detection deduplicated into
the same cases (the case stage applies them as in production, docs/channels.md)."""

from __future__ import annotations

import base64
import io
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
from PIL import Image

from .conftest import CELL, MONDAY_10H, Harness, assert_error, auth

pytestmark = pytest.mark.unit
IN_CELL = {"lat": 31.8722, "lon": 120.5505}  # inside CELL (320582004001001)


def photo(colour: tuple[int, int, int] = (90, 120, 60)) -> dict[str, str]:
    buf = io.BytesIO()
    Image.new("RGB", (64, 48), colour).save(buf, format="JPEG")
    return {"data": base64.b64encode(buf.getvalue()).decode()}


def iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat()


def report(report_id: str = "phone-0001", **overrides: Any) -> dict[str, Any]:
    return {"report_id": report_id, "category": "component:0103", **IN_CELL,
            "observed_at": iso(MONDAY_10H - 600), "note": "雨水井盖缺失", "photos": [photo()], **overrides}


def test_an_offline_report_keeps_its_time_and_a_retry_is_not_doubled(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        late = report(observed_at=iso(MONDAY_10H - 5 * 3600))  # filed in a dead zone, sent 5 h later
        first = await c.post("/api/v1/inspector/reports", json=late, headers=auth("inspector"))
        assert first.status_code == 201, first.text
        body = first.json()
        assert body["outcome"] == "opened" and body["grid_code"] == CELL
        assert body["observed_at"] == MONDAY_10H - 5 * 3600
        again = (await c.post("/api/v1/inspector/reports", json=late, headers=auth("inspector"))).json()
        assert again["outcome"] == "duplicate" and again["case_id"] == body["case_id"]
        detail = (await c.get(f"/api/v1/cases/{body['case_id']}", headers=auth("viewer"))).json()
        assert detail["case"]["sources"] == {"inspector": 1} and detail["case"]["detection_count"] == 1
        [d] = detail["detections"]
        assert d["observed_at"] == MONDAY_10H - 5 * 3600 and d["source"] == "inspector"
        assert d["evidence"]["reported_by"] == "t-inspector" and d["evidence"]["report_id"] == "phone-0001"
        [url] = d["evidence"]["photos"]
        got = await c.get(url, headers=auth("dispatcher"))
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.content == base64.b64decode(late["photos"][0]["data"])
        shown = await c.get(url, headers=auth("viewer"))  # a de-identified copy below dispatcher
        assert shown.status_code == 200 and shown.content != got.content and shown.content[:3] == b"\xff\xd8\xff"

    api.run(scenario)


def test_report_times_out_of_range_are_refused_with_the_reason(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        post = c.post
        future = await post("/api/v1/inspector/reports", json=report(observed_at=iso(MONDAY_10H + 3600)),
                            headers=auth("inspector"))
        assert "in the future" in assert_error(future, 400, "observed_at_out_of_range")["message"]
        old = await post("/api/v1/inspector/reports", json=report(observed_at=iso(MONDAY_10H - 73 * 3600)),
                         headers=auth("inspector"))
        assert "older than 72 h" in assert_error(old, 400, "observed_at_out_of_range")["message"]
        skew = await post("/api/v1/inspector/reports", json=report(observed_at=iso(MONDAY_10H + 60)),
                          headers=auth("inspector"))
        assert skew.status_code == 201, skew.text  # a phone clock a minute fast is tolerated
        assert api.state.case_store() is not None and len(api.stage_events) == 1

    api.run(scenario)


def test_report_input_is_checked(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        h = auth("inspector")
        outside = await c.post("/api/v1/inspector/reports", json=report(lat=31.9, lon=120.6), headers=h)
        assert_error(outside, 400, "location_outside_grid")
        unknown = await c.post("/api/v1/inspector/reports", json=report(category="event:9999"), headers=h)
        assert_error(unknown, 400, "unknown_category")
        garbage = await c.post("/api/v1/inspector/reports",
                               json=report(photos=[{"data": base64.b64encode(b"not an image at all").decode()}]),
                               headers=h)
        assert "photos[0]" in assert_error(garbage, 400, "bad_photo")["message"]
        too_many = await c.post("/api/v1/inspector/reports", json=report(photos=[photo()] * 5), headers=h)
        assert_error(too_many, 400, "too_many_photos")
        assert api.held == [] and api.stage_events == []  # nothing reached the case stage

    api.run(scenario)


def test_roles_inspectors_use_their_routes_only(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        viewer = await c.post("/api/v1/inspector/reports", json=report(), headers=auth("viewer"))
        assert_error(viewer, 403)
        assert (await c.post("/api/v1/inspector/reports", json=report("desk-0001"),
                             headers=auth("dispatcher"))).status_code == 201
        assert_error(await c.get("/api/v1/cases", headers=auth("inspector")), 403)
        me = (await c.get("/api/v1/inspector/me", headers=auth("inspector"))).json()
        assert me["role"] == "inspector" and me["categories"]["component:0103"] == "storm-water manhole cover"
        assert (await c.get("/inspector")).status_code == 200

    api.run(scenario)


async def _resolved_case(api: Harness, c: httpx.AsyncClient) -> str:
    case_id = (await api.detect("sensor-1"))[0].case_id
    for action in ("dispatch", "resolve"):
        r = await c.post(f"/api/v1/cases/{case_id}/transitions", json={"action": action},
                         headers=auth("dispatcher"))
        assert r.status_code == 200, r.text
    return case_id


def test_verify_and_rework_on_site_with_a_photo(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        h = auth("inspector")
        case_id = await _resolved_case(api, c)
        no_note = await c.post(f"/api/v1/inspector/cases/{case_id}/rework", json={"photos": [photo()]}, headers=h)
        assert_error(no_note, 422)
        no_photo = await c.post(f"/api/v1/inspector/cases/{case_id}/verify", json={"photos": []}, headers=h)
        assert_error(no_photo, 422)
        rework = await c.post(f"/api/v1/inspector/cases/{case_id}/rework",
                              json={"note": "盖子还是松的", "photos": [photo()], **IN_CELL}, headers=h)
        assert rework.status_code == 200, rework.text
        assert rework.json()["case"]["status"] == "dispatched" and rework.json()["case"]["rework_count"] == 1
        early = await c.post(f"/api/v1/inspector/cases/{case_id}/verify", json={"photos": [photo()]}, headers=h)
        assert_error(early, 409, "invalid_transition")  # dispatched again: nothing to verify yet
        await c.post(f"/api/v1/cases/{case_id}/transitions", json={"action": "resolve"}, headers=auth("dispatcher"))
        ok = await c.post(f"/api/v1/inspector/cases/{case_id}/verify",
                          json={"note": "已修复", "photos": [photo((10, 10, 200))]}, headers=h)
        assert ok.status_code == 200 and ok.json()["case"]["status"] == "verified"
        log = (await c.get(f"/api/v1/cases/{case_id}", headers=auth("viewer"))).json()["log"]
        checks = [e for e in log if e["action"] in ("verify", "rework")]
        assert [e["actor"] for e in checks] == ["user:t-inspector"] * 2
        assert "/api/v1/photos/" in checks[0]["note"] and "盖子还是松的" in checks[0]["note"]
        assert "31.872200,120.550500" in checks[0]["note"] and "已修复" in checks[1]["note"]

    api.run(scenario)


def call(text: str, address: str, **overrides: Any) -> dict[str, Any]:
    return {"text": text, "address": address, "called_at": iso(MONDAY_10H - 1200), **overrides}


def test_a_call_is_placed_by_the_gazetteer_and_joins_the_inspectors_case(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        h = auth("dispatcher")
        finding = (await c.post("/api/v1/inspector/reports", json=report(), headers=auth("inspector"))).json()
        taken = await c.post("/api/v1/hotline/calls",
                             json=call("暨阳中路2号门口井盖不见了，晚上很危险", "暨阳路二号门口", ticket="12345-0001"),
                             headers=h)
        assert taken.status_code == 201, taken.text
        t = taken.json()
        assert t["status"] == "pending" and t["grid_code"] == CELL and t["place"] == "暨阳中路2号"
        assert t["candidates"][0]["name"] == "暨阳中路2号" and t["candidates"][0]["score"] >= 0.9
        assert t["suggestions"][0]["category"] == "component:0103" and 0 < t["suggestions"][0]["confidence"] < 1
        assert api.held == [] and len(api.stage_events) == 1  # only the finding: a call waits for confirm
        retried = (await c.post("/api/v1/hotline/calls", json=call("重复", "x", ticket="12345-0001"),
                                headers=h)).json()
        assert retried["call_id"] == t["call_id"] and retried["text"] == t["text"]
        sent = await c.post(f"/api/v1/hotline/calls/{t['call_id']}/confirm", json={"category": "component:0103"},
                            headers=h)
        assert sent.status_code == 200, sent.text
        s = sent.json()
        assert s["status"] == "sent" and s["case_id"] == finding["case_id"] and s["outcome"] == "attached"
        twice = await c.post(f"/api/v1/hotline/calls/{t['call_id']}/confirm", json={"category": "event:L001"},
                             headers=h)
        assert_error(twice, 409, "already_confirmed")
        detail = (await c.get(f"/api/v1/cases/{finding['case_id']}", headers=auth("viewer"))).json()
        assert detail["case"]["sources"] == {"inspector": 1, "hotline": 1}
        hot = next(d for d in detail["detections"] if d["source"] == "hotline")
        assert hot["observed_at"] == MONDAY_10H - 1200 and hot["evidence"]["ticket"] == "12345-0001"

    api.run(scenario)


def test_an_unplaceable_call_waits_in_the_queue_until_resolved(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        h = auth("dispatcher")
        vague = call("小区门口垃圾桶满溢了，好几天没人收", "我家楼下那个垃圾桶")
        t = (await c.post("/api/v1/hotline/calls", json=vague, headers=h)).json()
        assert t["status"] == "pending" and t["grid_code"] is None
        assert "no gazetteer name resembles" in t["resolution"] or "give the point" in t["resolution"]
        assert t["suggestions"][0]["category"] == "event:0102"
        corrected = await c.post(f"/api/v1/hotline/calls/{t['call_id']}/confirm", json={"category": "event:0103"},
                                 headers=h)
        assert corrected.json()["status"] == "queued" and corrected.json()["category"] == "event:0103"
        assert api.held == [] and api.stage_events == []
        queue = (await c.get("/api/v1/hotline/queue", headers=h)).json()
        assert [x["call_id"] for x in queue["items"]] == [t["call_id"]]
        assert_error(await c.post(f"/api/v1/hotline/queue/{t['call_id']}/resolve", json={}, headers=h), 422)
        assert_error(await c.post(f"/api/v1/hotline/queue/{t['call_id']}/resolve", json={"place": "月球基地"},
                                  headers=h), 400, "place_not_found")
        done = await c.post(f"/api/v1/hotline/queue/{t['call_id']}/resolve", json={"place": "梁丰菜场"}, headers=h)
        assert done.status_code == 200, done.text
        d = done.json()
        assert d["status"] == "sent" and d["outcome"] == "opened" and d["grid_code"] == "320582004001003"
        assert d["located_by"] == "candidate" and d["place"] == "梁丰菜市场"
        assert (await c.get("/api/v1/hotline/queue", headers=h)).json()["items"] == []
        [event] = api.stage_events
        assert event.case["category_key"] == "event:0103" and event.case["first_seen_at"] == MONDAY_10H - 1200
        assert_error(await c.post(f"/api/v1/hotline/queue/{t['call_id']}/resolve", json=IN_CELL, headers=h),
                     409, "not_queued")

    api.run(scenario)


def test_hotline_needs_a_dispatcher_and_checks_the_call_time(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        assert_error(await c.post("/api/v1/hotline/calls", json=call("积水", "x"), headers=auth("viewer")), 403)
        assert_error(await c.post("/api/v1/hotline/calls", json=call("积水", "x"), headers=auth("inspector")), 403)
        future = await c.post("/api/v1/hotline/calls", json=call("积水", "x", called_at=iso(MONDAY_10H + 7200)),
                              headers=auth("dispatcher"))
        assert "called_at" in assert_error(future, 400, "called_at_out_of_range")["message"]
        missing = await c.get("/api/v1/hotline/calls/00000000-0000-0000-0000-000000000000",
                              headers=auth("dispatcher"))
        assert_error(missing, 404)

    api.run(scenario)
