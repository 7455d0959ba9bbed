"""API users and tokens on both case-store backends (SQLite file, PostgreSQL on the stack's server):
migration 0004, hashed storage, expiry, revocation and listing."""

from __future__ import annotations

import asyncio
import hashlib

import pytest
import sqlalchemy as sa

from gridsentinel.api.users import TokenRejected, UserError, UserStore, api_tokens, ensure_first_admin

pytestmark = pytest.mark.integration


def test_users_and_tokens_on_each_backend(case_store_url: str) -> None:
    now = [2_000_000_000.0]

    async def scenario() -> None:
        async with UserStore.open(case_store_url, clock=lambda: now[0]) as store:
            li = await store.create_user("li", "engineer", expires_in_s=60)
            other = await store.issue("li")
            entry = await store.authenticate(li.secret)
            assert entry is not None and (entry.id, entry.role) == ("li", "engineer")
            async with store.engine.connect() as conn:
                stored = {r.id: r.hash for r in await conn.execute(sa.select(api_tokens))}
            assert stored[li.record.id] == "sha256:" + hashlib.sha256(li.secret.encode()).hexdigest()
            assert li.secret not in str(stored)
            with pytest.raises(UserError, match="exists already"):
                await store.create_user("li", "viewer")
            await store.revoke(other.record.id)
            with pytest.raises(TokenRejected, match="was revoked on"):
                await store.authenticate(other.secret)
            now[0] += 60
            with pytest.raises(TokenRejected, match="expired on"):
                await store.authenticate(li.secret)
            states = {t.id: t.state(now[0]) for t in await store.tokens()}
            assert states == {li.record.id: "expired", other.record.id: "revoked"}
            assert not await store.has_admin()

        async with UserStore.open(case_store_url, clock=lambda: now[0]) as store:
            wu = await store.create_user("wu", "dispatcher", center="street:320582004")
            dept = await store.create_user("sa", "department", department="drainage")
            entry = await store.authenticate(wu.secret)
            assert entry is not None and (entry.center, entry.department) == ("street:320582004", None)
            await store.update_user("wu", center="district:320582")  # the user's current center, at once
            entry = await store.authenticate(wu.secret)
            assert entry is not None and entry.center == "district:320582"
            entry = await store.authenticate(dept.secret)
            assert entry is not None and (entry.role, entry.center, entry.department) == ("department", None,
                                                                                          "drainage")
            members = {u.name: (u.center, u.department) for u in await store.user_records()}
            assert members["wu"] == ("district:320582", None) and members["li"] == (None, None)

    asyncio.run(scenario())
    first = ensure_first_admin(case_store_url)
    assert first is not None and first.record.role == "admin"
    assert ensure_first_admin(case_store_url) is None
