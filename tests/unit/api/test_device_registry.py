"""/api/v1/devices write routes: roles, passwords answered once and stored hashed, errors, import."""

from __future__ import annotations

import base64

import httpx
import pytest

from gridsentinel.stack.services import mosquitto_hash

from .conftest import CELL, Harness, assert_error, auth

pytestmark = pytest.mark.unit

NEW = {"id": "drain-900", "kind": "drain_level", "location": {"lat": 31.87225, "lon": 120.55053},
       "install": {"depth_m": 2.0}}


def password_line(api: Harness, device_id: str) -> str | None:
    path = api.tmp_path / "mosquitto" / "passwd"
    lines = {line.split(":", 1)[0]: line for line in path.read_text().splitlines()} if path.exists() else {}
    return lines.get(device_id)


def matches(line: str, password: str) -> bool:
    """Whether a ``$7$`` password-file line is the hash of ``password`` (as the broker checks it)."""
    _, _, iterations, salt, _ = line.split("$")
    return line.split(":", 1)[1] == mosquitto_hash(password, base64.b64decode(salt), int(iterations))


def test_create_rotate_revoke_retire_through_the_api(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        assert_error(await c.post("/api/v1/devices", json=NEW, headers=auth("dispatcher")), 403, "forbidden")
        r = await c.post("/api/v1/devices", json=NEW, headers=auth("engineer"))
        assert r.status_code == 201, r.text
        body = r.json()
        password = body["password"]
        assert body["device"]["grid_code"] == CELL and body["device"]["revision"] == 1
        assert body["device"]["credential"] == "issued" and body["feed_pending"] >= 1  # no Kafka here
        line = password_line(api, "drain-900")
        assert line is not None and password not in line and matches(line, password)
        got = (await c.get("/api/v1/devices/drain-900", headers=auth("viewer"))).json()
        assert "password" not in got and got["state"] == "active"
        assert_error(await c.post("/api/v1/devices", json=NEW, headers=auth("admin")), 409, "conflict")

        r = await c.patch("/api/v1/devices/drain-900", json={"expected_interval_s": 30}, headers=auth("admin"))
        assert r.status_code == 200 and r.json()["device"]["revision"] == 2 and r.json()["password"] is None
        assert_error(await c.patch("/api/v1/devices/drain-900", json={"colour": "red"}, headers=auth("admin")), 422)
        r = await c.post("/api/v1/devices/drain-900/move", json={"lat": 31.87055, "lon": 120.55073},
                         headers=auth("engineer"))
        assert r.json()["device"]["grid_code"] == "320582004001007"

        r = await c.post("/api/v1/devices/drain-900/rotate", headers=auth("engineer"))
        new_password = r.json()["password"]
        assert new_password and new_password != password and r.json()["device"]["credential_epoch"] == 2
        line = password_line(api, "drain-900")
        assert line is not None and matches(line, new_password) and not matches(line, password)

        r = await c.post("/api/v1/devices/drain-900/revoke", headers=auth("engineer"))
        assert r.json()["device"]["credential"] == "revoked" and password_line(api, "drain-900") is None
        r = await c.post("/api/v1/devices/drain-900/rotate", headers=auth("engineer"))
        assert password_line(api, "drain-900") is not None  # a rotation issues again

        r = await c.post("/api/v1/devices/drain-900/retire", json={"reason": "replaced"}, headers=auth("engineer"))
        assert r.json()["device"]["state"] == "retired" and password_line(api, "drain-900") is None
        assert_error(await c.post("/api/v1/devices/drain-900/rotate", headers=auth("engineer")), 409, "conflict")
        assert_error(await c.post("/api/v1/devices/ghost/retire", headers=auth("engineer")), 404, "not_found")

        retired = (await c.get("/api/v1/devices", params={"state": "retired"}, headers=auth("viewer"))).json()
        assert [d["id"] for d in retired["items"]] == ["drain-900"]
        active = (await c.get("/api/v1/devices", params={"state": "active"}, headers=auth("viewer"))).json()
        active_ids = [d["id"] for d in active["items"]]
        assert "drain-900" not in active_ids and "drain-001" in active_ids
        assert api.state.device_registry is not None
        assert await api.state.device_registry.store.pending_count() >= 8  # kept for `devices sync`

    api.run(scenario)


def test_import_dry_run_lists_errors_and_import_is_all_or_nothing(api: Harness) -> None:
    bad = "id,kind,lat,lon\nimp-1,noise,31.872,120.555\nimp-2,noise,91,120.555\ndrain-001,noise,31.87,120.55\n"
    good = "id,kind,lat,lon\nimp-1,noise,31.872,120.555\nimp-2,noise,31.871,120.554\n"

    async def scenario(c: httpx.AsyncClient) -> None:
        r = await c.post("/api/v1/devices/import", params={"dry_run": "true"},
                         json={"format": "csv", "content": bad}, headers=auth("engineer"))
        assert r.status_code == 200, r.text
        assert {(e["row"], e["field"]) for e in r.json()["errors"]} == {("line 3", "location.lat"), ("line 4", "id")}
        assert r.json()["created"] == []
        error = assert_error(await c.post("/api/v1/devices/import", json={"format": "csv", "content": bad},
                                          headers=auth("engineer")), 422, "import_invalid")
        assert len(error["details"]) == 2
        assert_error(await c.get("/api/v1/devices/imp-1", headers=auth("viewer")), 404)
        r = await c.post("/api/v1/devices/import", params={"dry_run": "true"},
                         json={"format": "csv", "content": good}, headers=auth("engineer"))
        assert r.json()["errors"] == [] and r.json()["devices"] == 2 and r.json()["created"] == []
        assert password_line(api, "imp-1") is None
        r = await c.post("/api/v1/devices/import", json={"format": "csv", "content": good}, headers=auth("admin"))
        assert r.status_code == 200 and r.json()["created"] == ["imp-1", "imp-2"]
        for device_id, password in r.json()["passwords"].items():
            line = password_line(api, device_id)
            assert line is not None and matches(line, password)

    api.run(scenario)


def test_a_device_named_alerts_is_refused(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        r = await c.post("/api/v1/devices", json={**NEW, "id": "alerts"}, headers=auth("engineer"))
        err = assert_error(r, 422, "validation_error")
        assert "reserved" in str(err["details"]) or "reserved" in err["message"], err

    api.run(scenario)
