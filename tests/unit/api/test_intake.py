"""The citizen intake behind Open311's POST on real photos (tests/photos.py): straight reports become
detections, a photo taken far away is held for verification until a dispatcher confirms or rejects it, the
same photo again is a duplicate of the first report, bursts get 429, and viewers see pseudonyms."""

from __future__ import annotations

import httpx
import pytest

from gridsentinel.api.privacy import pseudonym
from gridsentinel.cases.quality import QualityConfig

from ...photos import photo
from .conftest import MONDAY_10H, Harness, assert_error, auth

pytestmark = pytest.mark.unit
LAT, LON = 31.8722, 120.5505  # inside CELL
IN_CELL = {"lat": str(LAT), "long": str(LON)}
POST = "/open311/v2/requests.json"


def near_photo(name: str = "vtest_people/0000.jpg", quality: int = 85) -> bytes:
    """Taken 30 m from the reported point, 10 minutes before the report."""
    return photo(name, gps=(LAT + 0.0003, LON), taken_at=MONDAY_10H - 600, quality=quality)


async def post(c: httpx.AsyncClient, jpeg: bytes | None, account: str, **fields: str) -> httpx.Response:
    data = {"service_code": "event:0103", **IN_CELL, "account_id": account, **fields}
    files = {"media": ("p.jpg", jpeg, "image/jpeg")} if jpeg is not None else None
    return await c.post(POST, data=data, files=files, headers=auth("citizen"))


def test_a_straight_report_with_its_photo_becomes_a_detection(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        r = await post(c, near_photo(), "acct-1", description="rubble", phone="13800000000")
        assert r.status_code == 201, r.text
        [answer] = r.json()
        assert answer["service_notice"] == "a new case was opened"
        detail = (await c.get(f"/api/v1/cases/{answer['service_request_id']}", headers=auth("dispatcher"))).json()
        [d] = detail["detections"]
        assert d["evidence"]["quality"]["decision"] == "straight"
        assert d["evidence"]["quality"]["location"] == "consistent"
        assert d["evidence"]["account_id"] == "acct-1" and d["evidence"]["phone"] == "13800000000"
        url = d["evidence"]["photo_url"]
        got = await c.get(url, headers=auth("dispatcher"))
        assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
        assert got.content == near_photo()
        blurred = await c.get(url, headers=auth("viewer"))  # a viewer: faces and plates blurred, never the original
        assert blurred.status_code == 200 and blurred.content != got.content
        assert_error(await c.get(url, headers=auth("citizen")), 403)
        # a viewer sees the same detection with pseudonyms, stable across reads
        seen = (await c.get(f"/api/v1/cases/{answer['service_request_id']}", headers=auth("viewer"))).json()
        ev = seen["detections"][0]["evidence"]
        assert ev["account_id"] == pseudonym(api.state.pseudonym_key, "account", "acct-1") != "acct-1"
        assert ev["phone"].startswith("p-") and "13800000000" not in str(seen)
        again = (await c.get(f"/api/v1/cases/{answer['service_request_id']}", headers=auth("viewer"))).json()
        assert again["detections"][0]["evidence"]["account_id"] == ev["account_id"]

    api.run(scenario)


def test_a_photo_without_exif_goes_straight_with_the_reason_kept(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        [answer] = (await post(c, photo("vtest_people/0140.jpg"), "acct-1")).json()
        detail = (await c.get(f"/api/v1/cases/{answer['service_request_id']}", headers=auth("viewer"))).json()
        quality = detail["detections"][0]["evidence"]["quality"]
        assert quality["location"] == "unverifiable" and [r["code"] for r in quality["reasons"]] == ["exif_missing"]

    api.run(scenario)


def test_a_photo_taken_far_away_is_held_until_confirmed_with_its_original_time(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        far = photo("vtest_people/0290.jpg", gps=(LAT + 0.009, LON), taken_at=MONDAY_10H - 600)  # 1 km north
        r = await post(c, far, "acct-2", description="rubble here")
        assert r.status_code == 201, r.text
        [answer] = r.json()
        token = answer["token"]
        assert answer["service_request_id"] == token and "held for verification" in answer["service_notice"]
        assert "photo_far" in answer["service_notice"]
        assert api.held == [] and api.stage_events == []  # nothing went to the case stage
        [shown] = (await c.get(f"/open311/v2/requests/{token}.json", headers=auth("citizen"))).json()
        assert shown["status"] == "open" and shown["status_notes"].startswith("held for verification")
        assert (await c.get(f"/open311/v2/tokens/{token}.json", headers=auth("citizen"))).json()[0][
            "service_request_id"] is None

        assert_error(await c.get("/api/v1/verification", headers=auth("viewer")), 403)
        queue = (await c.get("/api/v1/verification", headers=auth("dispatcher"))).json()
        [item] = queue["items"]
        assert queue["total"] == 1 and item["id"] == token and item["account_id"] == "acct-2"
        assert [x["code"] for x in item["reasons"]] == ["photo_far"] and item["location"] == "flagged"
        assert item["photo_distance_m"] > 900 and item["gaming_score"] == 0 and item["gaming_signals"] == []
        assert (await c.get(item["photo_url"], headers=auth("dispatcher"))).content == far
        retry = (await post(c, far, "acct-2", description="rubble here")).json()[0]  # the app retries
        assert retry == {**answer, "service_notice": "already received"}
        assert (await c.get("/api/v1/verification", headers=auth("dispatcher"))).json()["total"] == 1

        api.now += 3600  # an inspector confirms an hour later
        done = await c.post(f"/api/v1/verification/{token}/confirm", json={"note": "seen on site"},
                            headers=auth("dispatcher"))
        assert done.status_code == 200, done.text
        assert done.json()["item"]["state"] == "confirmed" and done.json()["item"]["decided_by"] == "user:t-dispatcher"
        [sent] = [e for e in api.stage_events if e.type == "open"]
        assert sent.data["observed_at"] == MONDAY_10H  # the report's time, not the confirmation's
        [request] = (await c.get(f"/open311/v2/requests/{token}.json", headers=auth("citizen"))).json()
        assert request["service_request_id"] == sent.case_id and request["status"] == "open"
        assert (await c.get("/api/v1/verification", headers=auth("dispatcher"))).json()["items"] == []
        assert_error(await c.post(f"/api/v1/verification/{token}/confirm", headers=auth("dispatcher")), 409,
                     "not_held")

    api.run(scenario)


def test_a_rejected_report_says_so_on_its_open311_request(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        old = photo("vtest_people/0440.jpg", gps=(LAT, LON), taken_at=MONDAY_10H - 5 * 86400)  # 5 days old
        [answer] = (await post(c, old, "acct-3")).json()
        token = answer["token"]
        item = (await c.get(f"/api/v1/verification/{token}", headers=auth("dispatcher"))).json()
        assert [x["code"] for x in item["reasons"]] == ["photo_old"]
        assert_error(await c.post(f"/api/v1/verification/{token}/reject", json={}, headers=auth("dispatcher")), 422)
        r = await c.post(f"/api/v1/verification/{token}/reject", json={"reason": "cleared days ago"},
                         headers=auth("dispatcher"))
        assert r.status_code == 200 and r.json()["item"]["state"] == "rejected"
        [shown] = (await c.get(f"/open311/v2/requests/{token}.json", headers=auth("citizen"))).json()
        assert shown["status"] == "closed" and shown["status_notes"].endswith("cleared days ago")
        listed = (await c.get(f"/open311/v2/requests.json?service_request_id={token}", headers=auth("viewer"))).json()
        assert listed == [shown]
        assert api.stage_events == []
        assert_error(await c.post(f"/api/v1/verification/{'0' * 32}/reject", json={"reason": "x"},
                                  headers=auth("dispatcher")), 404)

    api.run(scenario)


def test_the_same_photo_from_another_account_is_a_duplicate_of_the_first_report(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        [first] = (await post(c, near_photo(), "acct-1", description="rubble")).json()
        case_id = first["service_request_id"]
        api.now += 1800
        recoded = near_photo(quality=50)  # the same photo re-encoded (a messaging app)
        r = await post(c, recoded, "acct-9", description="look at this")
        [dup] = r.json()
        assert dup["service_request_id"] == case_id and dup["token"] != first["token"]
        assert dup["service_notice"].startswith("the same photo was already reported")
        detail = (await c.get(f"/api/v1/cases/{case_id}", headers=auth("viewer"))).json()
        assert detail["case"]["detection_count"] == 1  # no new detection
        resolved = (await c.get(f"/open311/v2/tokens/{dup['token']}.json", headers=auth("citizen"))).json()
        assert resolved[0]["service_request_id"] == case_id
        listed = (await c.get("/api/v1/verification?state=duplicate", headers=auth("dispatcher"))).json()
        [item] = listed["items"]
        assert item["duplicate_of"] == first["token"] and item["account_id"] == "acct-9"
        assert [s["code"] for s in item["gaming_signals"]] == ["photo_reused"] and item["gaming_score"] == 0.6

    api.run(scenario)


def test_bursts_over_the_rate_limit_get_429_with_the_reason(api: Harness) -> None:
    api.state.quality = QualityConfig(rate_max_per_account=3, rate_max_per_device=4, rate_window_s=600)

    async def scenario(c: httpx.AsyncClient) -> None:
        for i in range(3):
            assert (await post(c, None, "acct-5", description=f"ad {i}")).status_code == 201
            api.now += 10
        r = await post(c, None, "acct-5", description="ad 3")
        error = assert_error(r, 429, "rate_limited")
        assert error["details"]["reason"] == "rate_limit_account" and "limit 3" in error["message"]
        assert int(r.headers["Retry-After"]) == 570  # the first (at +0 s) leaves the window at +600 s; now is +30 s
        assert (await post(c, None, "acct-6", description="other account")).status_code == 201
        # a fresh account on the same phone is counted by its device
        for i in range(4):
            assert (await post(c, None, f"new-{i}", device_id="phone-1", description=f"x{i}")).status_code == 201
        r = await post(c, None, "new-9", device_id="phone-1", description="x9")
        assert assert_error(r, 429, "rate_limited")["details"]["reason"] == "rate_limit_device"
        api.now += 600
        assert (await post(c, None, "acct-5", description="ad 4")).status_code == 201

    api.run(scenario)


def test_multipart_photo_part_must_be_named_media(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        data = {"service_code": "event:0103", **IN_CELL}
        r = await c.post(POST, data=data, files={"photo": ("p.jpg", near_photo(), "image/jpeg")},
                         headers=auth("citizen"))
        assert "'media'" in assert_error(r, 400)["message"]

    api.run(scenario)
