"""API users and tokens in the case database: made, stored hashed, expiring, revoked, listed without
secrets, and read by the running API on every request (no restart)."""

from __future__ import annotations

import asyncio
import hashlib
import json
import sqlite3
from pathlib import Path

import httpx
import pytest

from gridsentinel.api.users import (
    DEFAULT_EXPIRES_S,
    TokenRejected,
    UserError,
    UserStore,
    ensure_first_admin,
    parse_duration,
)
from gridsentinel.cli import main

from .conftest import MONDAY_10H, Harness, assert_error

pytestmark = pytest.mark.unit


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cases.db'}"


def test_tokens_are_stored_hashed_expire_and_are_revoked(tmp_path: Path) -> None:
    clock = Clock(1_000_000.0)

    async def scenario() -> None:
        async with UserStore.open(url(tmp_path), clock=clock) as store:
            li = await store.create_user("li", "dispatcher", expires_in_s=3600, description="night shift")
            assert li.secret.startswith("gst_") and len(li.secret) == 4 + 43  # 256 random bits
            assert li.record.expires_at == clock.now + 3600 and li.record.role == "dispatcher"
            wang = await store.create_user("wang", "viewer")
            assert wang.record.expires_at == clock.now + DEFAULT_EXPIRES_S and wang.secret != li.secret
            second = await store.issue("li")  # a new token for an existing user, with its role
            assert second.record.role == "dispatcher" and second.record.id != li.record.id

            entry = await store.authenticate(li.secret)
            assert entry is not None and (entry.id, entry.role) == ("li", "dispatcher")
            assert await store.authenticate("gst_" + "A" * 43) is None  # never issued
            assert await store.authenticate(li.secret[:-1]) is None

            listed = {t.id: t.to_dict(clock.now) for t in await store.tokens()}
            assert listed[li.record.id]["last_used_at"] == clock.now  # recorded on use
            assert listed[wang.record.id]["last_used_at"] is None
            for row in listed.values():  # no secret, no hash in what is listed
                assert not any(isinstance(v, str) and (v.startswith("gst_") or v.startswith("sha256:"))
                               for v in row.values()), row
            assert [t.id for t in await store.tokens(user="li")] == [li.record.id, second.record.id]

            clock.now += 3600  # li's first token expires now; the second lasts 90 days
            with pytest.raises(TokenRejected, match=r"token tok_\w+ expired on \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC"):
                await store.authenticate(li.secret)
            assert (await store.tokens(user="li"))[0].state(clock.now) == "expired"
            assert await store.authenticate(second.secret) is not None

            revoked = await store.revoke(second.record.id, actor="cli:test")
            assert revoked.revoked_by == "cli:test" and revoked.state(clock.now) == "revoked"
            assert (await store.revoke(second.record.id)).revoked_at == revoked.revoked_at  # idempotent
            with pytest.raises(TokenRejected, match="was revoked on"):
                await store.authenticate(second.secret)

            with pytest.raises(UserError, match="exists already"):
                await store.create_user("li", "admin")
            with pytest.raises(UserError, match="no user 'zhao'"):
                await store.issue("zhao")
            with pytest.raises(UserError, match="no token"):
                await store.revoke("tok_000000000000")
            with pytest.raises(UserError, match="role 'root'"):
                await store.create_user("zhao", "root")
            with pytest.raises(UserError, match="user name"):
                await store.create_user("Zhao Wei", "viewer")
            assert await store.users() == {"li": "dispatcher", "wang": "viewer"}
            secrets_made = [li.secret, wang.secret, second.secret]
        raw = (tmp_path / "cases.db").read_bytes() + b"".join(
            p.read_bytes() for p in tmp_path.glob("cases.db-*"))  # WAL too
        for secret in secrets_made:
            assert secret.encode() not in raw
        with sqlite3.connect(tmp_path / "cases.db") as db:
            hashes = {r[0] for r in db.execute("select hash from api_tokens")}
        assert hashes == {"sha256:" + hashlib.sha256(s.encode()).hexdigest() for s in secrets_made}

    asyncio.run(scenario())


def test_expiry_durations() -> None:
    assert parse_duration("90d") == 90 * 86400 and parse_duration("30m") == 1800 and parse_duration("45") == 45
    for bad in ("", "soon", "-1d", "0", "6000d"):
        with pytest.raises(UserError):
            parse_duration(bad)


def test_first_admin_is_made_once(tmp_path: Path) -> None:
    first = ensure_first_admin(url(tmp_path))
    assert first is not None and first.record.user == "admin" and first.record.role == "admin"
    assert ensure_first_admin(url(tmp_path)) is None  # idempotent: nothing secret the second time


def test_users_cli_prints_the_secret_once_and_lists_without_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GS_DATABASE_URL", url(tmp_path))
    assert main(["users", "create", "ops-li", "--role", "dispatcher", "--expires-in", "12h"]) == 0
    created = capsys.readouterr().out
    secret = next(w for w in created.split() if w.startswith("gst_"))
    token_id = next(w.rstrip(",") for w in created.split() if w.startswith("tok_"))
    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert token_id in listing and "ops-li" in listing and "active" in listing and secret not in listing
    assert main(["users", "create", "ops-li", "--role", "viewer"]) == 2  # taken: a clear error, exit 2
    assert "exists already" in capsys.readouterr().err
    assert main(["users", "revoke", token_id]) == 0
    assert "revoked" in capsys.readouterr().out
    assert main(["users", "list"]) == 0
    assert token_id not in capsys.readouterr().out  # only active tokens unless --all
    assert main(["users", "list", "--all", "--json"]) == 0
    listing = capsys.readouterr().out
    assert '"state": "revoked"' in listing and secret not in listing and "sha256:" not in listing
    assert main(["users", "token", "ops-li", "--expires-in", "soon"]) == 2
    assert "expiry 'soon'" in capsys.readouterr().err


def test_users_of_a_center_and_of_a_department(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("GS_DATABASE_URL", url(tmp_path))
    assert main(["users", "create", "li", "--role", "dispatcher", "--center", "street:320582004"]) == 0
    assert "li sees the cases of street:320582004" in capsys.readouterr().out
    # a center the grid does not have, a malformed one, a department user without (or with an unknown) department
    assert main(["users", "create", "wu", "--role", "dispatcher", "--center", "street:320582009"]) == 2
    assert "owns no cell of the grid" in capsys.readouterr().err
    assert main(["users", "create", "wu", "--role", "dispatcher", "--center", "street:3205"]) == 2
    assert "expected LEVEL:PREFIX" in capsys.readouterr().err
    assert main(["users", "create", "sa", "--role", "department"]) == 2
    assert "needs --department" in capsys.readouterr().err
    assert main(["users", "create", "sa", "--role", "department", "--department", "water_affairs"]) == 2
    assert "not in config/routing.yaml" in capsys.readouterr().err
    assert main(["users", "create", "sa", "--role", "department", "--department", "drainage"]) == 0
    capsys.readouterr()
    assert main(["users", "update", "li", "--center", "community:320582004001"]) == 0
    assert "center community:320582004001" in capsys.readouterr().out
    assert main(["users", "list"]) == 0
    listing = capsys.readouterr().out
    assert "community:320582004001" in listing and "city-wide / drainage" in listing
    assert main(["users", "list", "--json"]) == 0
    members = json.loads(capsys.readouterr().out)["members"]
    assert members["li"]["center"] == "community:320582004001" and members["sa"]["department"] == "drainage"
    assert main(["users", "update", "li", "--center", "none"]) == 0
    assert "none (the whole city)" in capsys.readouterr().out


def test_the_api_takes_new_expired_and_revoked_tokens_without_restart(api: Harness) -> None:
    made: dict[str, str] = {}

    async def scenario(c: httpx.AsyncClient) -> None:
        users = api.state.users
        assert users is not None
        # made while the API runs (as `gridsentinel users create` does, in another process, on the same DB)
        async with UserStore.open(f"sqlite:///{api.tmp_path / 'cases.db'}", clock=lambda: api.now) as other:
            li = await other.create_user("li", "dispatcher", expires_in_s=3600)
            wang = await other.create_user("wang", "viewer")
        made["li"] = li.secret
        r = await c.get("/api/v1/cases", headers={"Authorization": f"Bearer {li.secret}"})
        assert r.status_code == 200, r.text
        assert (await c.get("/dashboard/me", headers={"Authorization": f"Bearer {li.secret}"})).json()["id"] == "li"
        wang_auth = {"Authorization": f"Bearer {wang.secret}"}
        assert (await c.get("/api/v1/cases", headers=wang_auth)).status_code == 200
        assert_error(await c.post("/api/v1/cases/x/transitions", json={"action": "dispatch"}, headers=wang_auth),
                     403, "forbidden")

        async with UserStore.open(f"sqlite:///{api.tmp_path / 'cases.db'}") as other:
            await other.revoke(wang.record.id)
        r = await c.get("/api/v1/cases", headers=wang_auth)
        err = assert_error(r, 401, "unauthorized")
        assert f"token {wang.record.id} was revoked on" in err["message"]
        assert 'error="invalid_token"' in r.headers["www-authenticate"]

        api.now += 3600
        err = assert_error(await c.get("/api/v1/cases", headers={"Authorization": f"Bearer {li.secret}"}),
                           401, "unauthorized")
        assert err["message"].startswith(f"token {li.record.id} expired on ")

    api.run(scenario)
    assert api.now == MONDAY_10H + 3600 and made
