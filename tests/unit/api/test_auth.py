"""Bearer tokens and roles: 401 without or with a bad token, 403 with a role too low."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from gridsentinel.api.auth import TokenStore, add_token, hash_token
from gridsentinel.errors import ConfigError

from .conftest import Harness, assert_error, auth

pytestmark = pytest.mark.unit

PROTECTED_GETS = [
    "/api/v1/cases",
    "/api/v1/cases/x",
    "/api/v1/devices",
    "/api/v1/grid",
    "/metrics",
    "/open311/v2/services.json",
    "/open311/v2/requests.json",
    "/api/v1/cases/stream?limit=1",
]


def test_every_route_but_healthz_needs_a_token(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        assert (await c.get("/healthz")).json() == {"status": "ok", "store": "ok"}
        for path in PROTECTED_GETS:
            r = await c.get(path)
            err = assert_error(r, 401, "unauthorized")
            assert r.headers["www-authenticate"].startswith("Bearer"), path
            assert "token" in err["message"]
            assert_error(await c.get(path, headers={"Authorization": "Bearer wrong"}), 401, "unauthorized")
            assert_error(await c.get(path, headers={"Authorization": "Basic dXNlcjpwdw=="}), 401)
        assert_error(await c.post("/api/v1/cases/x/transitions", json={"action": "dispatch"}), 401)
        assert_error(await c.post("/open311/v2/requests.json", data={"service_code": "event:0103"}), 401)

    api.run(scenario)


def test_roles_are_checked(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        body = {"action": "acknowledge"}
        err = assert_error(
            await c.post("/api/v1/cases/x/transitions", json=body, headers=auth("viewer")), 403, "forbidden"
        )
        assert err["details"] == {"role": "viewer", "required": "dispatcher", "citizen_allowed": False}
        assert_error(await c.post("/api/v1/cases/x/transitions", json=body, headers=auth("citizen")), 403)
        for role in ("dispatcher", "engineer", "admin"):  # allowed; the case does not exist
            assert_error(await c.post("/api/v1/cases/x/transitions", json=body, headers=auth(role)), 404)
        # citizen tokens reach Open311 only
        assert_error(await c.get("/api/v1/cases", headers=auth("citizen")), 403)
        assert_error(await c.get("/metrics", headers=auth("citizen")), 403)
        assert (await c.get("/open311/v2/services.json", headers=auth("citizen"))).status_code == 200
        assert_error(
            await c.post(
                "/open311/v2/requests.json", data={"service_code": "event:0103"}, headers=auth("viewer")
            ),
            403,
        )

    api.run(scenario)


def test_add_token_stores_only_the_hash(tmp_path: Path) -> None:
    path = tmp_path / "tokens.yaml"
    plain = add_token(path, "ops-li", "dispatcher", description="Li on the night shift")
    assert len(plain) >= 40 and plain not in path.read_text()
    assert hash_token(plain) in path.read_text()
    fixed = add_token(path, "wall", "viewer", plain="my-own-long-token-value")
    store = TokenStore.load(path)
    assert store.authenticate(plain).role == "dispatcher"  # type: ignore[union-attr]
    assert store.authenticate(fixed).id == "wall"  # type: ignore[union-attr]
    with pytest.raises(ConfigError, match="already exists"):
        add_token(path, "wall", "viewer")
    with pytest.raises(ConfigError, match="invalid token"):
        add_token(path, "root", "superuser")
