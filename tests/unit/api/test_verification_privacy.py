"""The verification queue and report quality as each role sees them: dispatchers the citizen's identity and the
photo as sent; an inspector pseudonyms, a scrubbed description and a blurred photo (a real photo with a face),
and may confirm; a viewer the per-account quality view with pseudonyms; an expired photo is 404."""

from __future__ import annotations

import os

import httpx
import pytest

from gridsentinel.api.privacy import pseudonym
from gridsentinel.cases.citizen_photos import sweep

from ...photos import photo
from .conftest import MONDAY_10H, Harness, assert_error, auth

pytestmark = pytest.mark.unit
LAT, LON = 31.8722, 120.5505


async def held_report(c: httpx.AsyncClient) -> tuple[str, bytes]:
    far = photo("messi5.jpg", gps=(LAT + 0.009, LON), taken_at=MONDAY_10H - 600)  # 1 km away: held
    r = await c.post("/open311/v2/requests.json", headers=auth("citizen"),
                     files={"media": ("p.jpg", far, "image/jpeg")},
                     data={"service_code": "event:0103", "lat": str(LAT), "long": str(LON),
                           "account_id": "acct-li", "device_id": "dev-9", "phone": "13912345678",
                           "description": "积水很深，回电13912345678"})
    assert r.status_code == 201, r.text
    return str(r.json()[0]["token"]), far


def test_an_inspector_sees_pseudonyms_and_a_blurred_photo_and_may_decide(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        token, original = await held_report(c)
        key = api.state.pseudonym_key
        [mine] = (await c.get("/api/v1/verification", headers=auth("inspector"))).json()["items"]
        assert mine["account_id"] == pseudonym(key, "account", "acct-li") and mine["identity_shown"] is False
        assert mine["phone"] == pseudonym(key, "phone", "13912345678") and mine["device_id"].startswith("p-")
        assert mine["description"] == "积水很深，回电[phone]"
        [full] = (await c.get("/api/v1/verification", headers=auth("dispatcher"))).json()["items"]
        assert full["account_id"] == "acct-li" and full["identity_shown"] is True
        assert "13912345678" in full["description"]
        as_sent = await c.get(full["photo_url"], headers=auth("dispatcher"))
        assert as_sent.content == original
        blurred = await c.get(mine["photo_url"], headers=auth("inspector"))
        assert blurred.status_code == 200 and blurred.headers["content-type"] == "image/jpeg"
        assert blurred.content != original and blurred.content[:3] == b"\xff\xd8\xff"
        assert (await c.get(mine["photo_url"], headers=auth("viewer"))).content == blurred.content  # one copy
        assert_error(await c.get("/api/v1/verification", headers=auth("viewer")), 403)
        done = await c.post(f"/api/v1/verification/{token}/confirm", json={"note": "on site: flooded"},
                            headers=auth("inspector"))
        assert done.status_code == 200, done.text
        decided = done.json()["item"]
        assert decided["decided_by"] == "user:t-inspector" and decided["account_id"] != "acct-li"

        # after the retention period the photo is gone for everyone; the report stays
        folder = api.tmp_path / "citizen-photos"
        for f in folder.iterdir():
            os.utime(f, (MONDAY_10H - 40 * 86400, MONDAY_10H - 40 * 86400))
        assert sweep(folder, api.state.quality.photo_retention_days).removed == 1
        gone = assert_error(await c.get(full["photo_url"], headers=auth("dispatcher")), 404)
        assert "kept 30 days" in gone["message"]
        assert (await c.get(f"/api/v1/verification/{token}", headers=auth("dispatcher"))).json()["state"] == "confirmed"

    api.run(scenario)


def test_report_quality_per_account_is_pseudonymised_below_dispatcher(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        token, _ = await held_report(c)
        again = photo("messi5.jpg", gps=(LAT + 0.009, LON), taken_at=MONDAY_10H - 600)
        api.now += 60
        r = await c.post("/open311/v2/requests.json", headers=auth("citizen"),  # the same photo, another account
                         files={"media": ("p.jpg", again, "image/jpeg")},
                         data={"service_code": "event:0103", "lat": str(LAT), "long": str(LON),
                               "account_id": "acct-wu"})
        assert r.status_code == 201, r.text
        seen = (await c.get("/api/v1/verification/accounts", headers=auth("viewer"))).json()
        assert seen["identity_shown"] is False and seen["reports"] == 2
        assert "acct-li" not in str(seen) and "acct-wu" not in str(seen)
        by = {a["account"]: a for a in seen["accounts"]}
        li = by[pseudonym(api.state.pseudonym_key, "account", "acct-li")]
        assert li["held_ids"] == [token] and li["location_flags"] == {"photo_far": 1} and li["states"] == {"held": 1}
        wu = by[pseudonym(api.state.pseudonym_key, "account", "acct-wu")]
        assert wu["duplicate_photos"] == [{"report": wu["duplicate_photos"][0]["report"], "duplicate_of": token}]
        assert wu["gaming_signals"] == {"photo_reused": 1} and wu["gaming_score_max"] >= 0.6
        assert seen["accounts"][0] == wu  # highest gaming score first
        named = (await c.get("/api/v1/verification/accounts", headers=auth("dispatcher"))).json()
        assert named["identity_shown"] is True and {a["account"] for a in named["accounts"]} == {"acct-li", "acct-wu"}
        assert_error(await c.get("/api/v1/verification/accounts", headers=auth("citizen")), 403)

    api.run(scenario)


def test_an_inspectors_photo_of_a_street_is_blurred_below_dispatcher(api: Harness) -> None:
    """Inspectors photograph streets and so strangers: their photos are de-identified as citizens' are."""
    import base64
    from datetime import UTC, datetime

    import cv2
    import numpy as np

    from gridsentinel.cases.citizen_photos import deidentifier

    def face_regions(jpeg: bytes) -> int:
        img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert img is not None, "not a decodable image"
        # Faces and head zones only: the plate cascades can fire on the blurred ellipse's rim over the collar.
        return sum(r.source != "haar_plate" for r in deidentifier().find(img))

    async def scenario(c: httpx.AsyncClient) -> None:
        street = photo("messi5.jpg")
        r = await c.post("/api/v1/inspector/reports", headers=auth("inspector"), json={
            "report_id": "phone-0042", "category": "component:0102", "lat": LAT, "lon": LON,
            "observed_at": datetime.fromtimestamp(MONDAY_10H - 600, UTC).isoformat(), "note": "井盖缺失",
            "photos": [{"data": base64.b64encode(street).decode()}]})
        assert r.status_code == 201, r.text
        case = (await c.get(f"/api/v1/cases/{r.json()['case_id']}", headers=auth("dispatcher"))).json()
        [url] = case["detections"][0]["evidence"]["photos"]
        as_sent = (await c.get(url, headers=auth("dispatcher"))).content
        assert as_sent == street and face_regions(as_sent) > 0
        for role in ("viewer", "inspector"):
            shown = await c.get(url, headers=auth(role))
            assert shown.status_code == 200 and shown.headers["content-type"] == "image/jpeg"
            assert face_regions(shown.content) == 0, f"a {role} sees a face"

    api.run(scenario)
