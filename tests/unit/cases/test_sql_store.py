"""The SQL case store against a real SQLite file (no server needed)."""

from __future__ import annotations

import asyncio
import random
import sqlite3
from dataclasses import replace
from pathlib import Path

import pytest

from gridsentinel.cases.case import Case, CaseChange, apply_action, chain
from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.dedup import apply_detection, open_case
from gridsentinel.cases.store import SqlCaseStore, async_url, upgrade_database
from gridsentinel.cases.store_protocol import CaseQuery, StoreConflict
from gridsentinel.cases.workflow import sweep, transition_case
from gridsentinel.core.records import Detection
from gridsentinel.errors import ConfigError

from .conftest import CELL, MONDAY_10H, detection

pytestmark = pytest.mark.unit
OTHER = "320582110152103"


def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'cases.db'}"


def test_open_migrates_to_head_and_is_idempotent(tmp_path: Path) -> None:
    async def scenario() -> None:
        async with SqlCaseStore.open(url(tmp_path)):
            pass
        store = await SqlCaseStore.open(url(tmp_path))  # second open: already at head
        await store.close()

    asyncio.run(scenario())
    with sqlite3.connect(tmp_path / "cases.db") as db:
        tables = {r[0] for r in db.execute("select name from sqlite_master where type = 'table'")}
        version = db.execute("select version_num from alembic_version").fetchone()[0]
        index_sql = db.execute("select sql from sqlite_master where name = ?",
                               ("uq_cases_active_cell_category",)).fetchone()[0]
    assert {"cases", "case_log", "applied_detections", "case_outbox", "api_users", "api_tokens",
            "alert_subscribers", "hotline_calls", "citizen_reports", "incidents", "incident_members", "incident_log",
            "forecast_models", "alembic_version"} <= tables
    assert version == "0012"
    assert "WHERE status <> 'closed'" in index_sql


def test_upgrade_database_from_sync_code(tmp_path: Path) -> None:
    upgrade_database(url(tmp_path))

    async def scenario() -> list[Case]:
        async with SqlCaseStore.open(url(tmp_path), migrate=False) as store:
            return await store.list_cases(CaseQuery())

    assert asyncio.run(scenario()) == []


def test_urls_get_async_drivers() -> None:
    assert async_url("sqlite+aiosqlite:///x.db").drivername == "sqlite+aiosqlite"
    assert async_url("postgresql+asyncpg://u@h/db").drivername == "postgresql+asyncpg"
    with pytest.raises(ConfigError, match="expected sqlite"):
        async_url("mysql://u@h/db")


def test_dedup_on_sql_cross_channel_and_replay(tmp_path: Path, catalog: Catalog) -> None:
    dets = [detection("s1", kind="ponding", severity="warning", observed_at=MONDAY_10H + 30),
            detection("c1", source="camera", kind="waterlogging", severity="alarm", observed_at=MONDAY_10H),
            detection("p1", source="citizen", kind="citizen_report", category_code="event:L001",
                      severity="advisory", grid_code=OTHER, observed_at=MONDAY_10H + 90)]

    async def scenario():
        async with SqlCaseStore.open(url(tmp_path)) as store:
            events = []
            for d in dets + dets[::-1]:
                events.extend(await apply_detection(d, store, catalog, {CELL: {OTHER}, OTHER: {CELL}},
                                                    now=MONDAY_10H + 100))
            cases = await store.list_cases(CaseQuery())
            return events, cases, await store.case_log(cases[0].case_id), \
                await store.case_detections(cases[0].case_id)

    events, cases, log, applied = asyncio.run(scenario())
    assert len(cases) == 1
    case = cases[0]
    assert case.sources == {"sensor": 1, "camera": 1, "citizen": 1} and case.detection_count == 3
    assert (case.first_seen_at, case.last_seen_at, case.severity) == (MONDAY_10H, MONDAY_10H + 90, "alarm")
    assert case.version == 3 and case.kinds == ("citizen_report", "ponding", "waterlogging")
    assert [e.type for e in events] == ["open", "evidence", "raise_severity", "evidence"]
    assert [(e.seq, e.action) for e in log] == [(1, "open"), (2, "evidence"), (3, "raise_severity"),
                                                (4, "evidence")]
    assert [(d["detection_id"], d["outcome"]) for d in applied] == [("c1", "attached"), ("s1", "opened"),
                                                                    ("p1", "merged")]


def test_store_enforces_one_active_case_per_cell_and_category(tmp_path: Path, catalog: Catalog) -> None:
    async def scenario() -> None:
        async with SqlCaseStore.open(url(tmp_path)) as store:
            def new(d: Detection) -> CaseChange:
                return open_case(d, catalog.resolve(d), now=MONDAY_10H, catalog=catalog)

            first, second = new(detection("d1")), new(detection("d2"))
            async with store.transaction() as tx:
                saved = await tx.save(first, None)
            with pytest.raises(StoreConflict):
                async with store.transaction() as tx:
                    await tx.save(second, None)
            # Another category in the same cell is fine; so is a second case once the first is closed.
            dumping = detection("d3", kind="static_object")
            async with store.transaction() as tx:
                await tx.save(new(dumping), None)
            # A sensor case: the false alarm takes two users (four eyes), one change here.
            asked = apply_action(saved, "false_alarm", actor="u", at=MONDAY_10H + 1)
            closed = chain(asked, apply_action(asked.case, "false_alarm", actor="v", at=MONDAY_10H + 1))
            async with store.transaction() as tx:
                await tx.save(closed, saved.version)
                await tx.save(second, None)
            assert len(await store.list_cases(CaseQuery(statuses=("open",)))) == 2

    asyncio.run(scenario())


def test_detection_id_and_case_change_commit_together(tmp_path: Path, catalog: Catalog) -> None:
    async def scenario() -> None:
        async with SqlCaseStore.open(url(tmp_path)) as store:
            await apply_detection(detection("d1"), store, catalog, {}, now=MONDAY_10H)
            case = (await store.list_cases(CaseQuery()))[0]
            # A transaction that changes the case and then re-applies d1 fails as a whole.
            with pytest.raises(StoreConflict, match="d1"):
                async with store.transaction() as tx:
                    change = apply_action(case, "acknowledge", actor="u", at=MONDAY_10H + 5)
                    await tx.save(change, case.version)
                    await tx.record_detection(detection("d1"), case.case_id, "attached", MONDAY_10H + 5)
            after = await store.get_case(case.case_id)
            assert after == case and len(await store.case_log(case.case_id)) == 1

    asyncio.run(scenario())


def test_stale_version_is_a_conflict(tmp_path: Path, catalog: Catalog) -> None:
    async def scenario() -> None:
        async with SqlCaseStore.open(url(tmp_path)) as store:
            await apply_detection(detection("d1"), store, catalog, {}, now=MONDAY_10H)
            case = (await store.list_cases(CaseQuery()))[0]
            await transition_case(store, catalog, case.case_id, "acknowledge", actor="u", now=MONDAY_10H + 1)
            with pytest.raises(StoreConflict, match="changed since"):
                async with store.transaction() as tx:
                    stale = apply_action(case, "dispatch", actor="u", at=MONDAY_10H + 2, department="d")
                    await tx.save(stale, case.version)

    asyncio.run(scenario())


def test_two_workers_on_one_database_open_one_case(tmp_path: Path, catalog: Catalog) -> None:
    dets = [detection(f"d{i}", source=random.Random(i).choice(["sensor", "camera"]),
                      observed_at=MONDAY_10H + i) for i in range(12)]

    async def worker(store: SqlCaseStore, order: list[Detection]) -> None:
        for d in order:
            await apply_detection(d, store, catalog, {}, now=MONDAY_10H + 60)

    async def scenario():
        async with SqlCaseStore.open(url(tmp_path)) as a, \
                SqlCaseStore.open(url(tmp_path), migrate=False) as b:
            shuffled = dets[:]
            random.Random(7).shuffle(shuffled)
            await asyncio.gather(worker(a, dets), worker(b, shuffled))
            return await a.list_cases(CaseQuery())

    cases = asyncio.run(scenario())
    assert len(cases) == 1 and cases[0].detection_count == 12


def test_list_filters_and_sweep(tmp_path: Path, catalog: Catalog) -> None:
    async def scenario():
        async with SqlCaseStore.open(url(tmp_path)) as store:
            await apply_detection(detection("a", kind="ponding", severity="critical"), store, catalog, {},
                                  now=MONDAY_10H)
            await apply_detection(detection("b", kind="static_object", grid_code="320582111000001",
                                            severity="warning"), store, catalog, {}, now=MONDAY_10H + 10)
            by_prefix = await store.list_cases(CaseQuery(grid_prefix="320582110"))
            by_category = await store.list_cases(CaseQuery(category_key="event:0103"))
            newest = await store.list_cases(CaseQuery(limit=1))
            window = await store.list_cases(CaseQuery(opened_from=MONDAY_10H + 5, opened_to=MONDAY_10H + 20))
            events = await sweep(store, catalog, now=MONDAY_10H + 16 * 60)
            return by_prefix, by_category, newest, window, events, await store.list_cases(CaseQuery())

    by_prefix, by_category, newest, window, events, cases = asyncio.run(scenario())
    assert [c.category_key for c in by_prefix] == ["event:L001"]
    assert [c.category_key for c in by_category] == ["event:0103"]
    assert [c.category_key for c in newest] == [c.category_key for c in window] == ["event:0103"]
    # The critical ponding case is past its 15-minute dispatch limit: escalation and a reminder.
    assert sorted(e.type for e in events) == ["escalate", "remind"]
    ponding = next(c for c in cases if c.category_key == "event:L001")
    assert (ponding.escalation_level, ponding.center, ponding.last_reminded_at) == \
        (1, "district:320582", MONDAY_10H + 16 * 60)


def test_cases_round_trip_unchanged(tmp_path: Path, catalog: Catalog) -> None:
    async def scenario():
        async with SqlCaseStore.open(url(tmp_path)) as store:
            d = detection("d1", lat=31.3, lon=120.9, message="overflow at Xinghu St")
            change = open_case(d, catalog.resolve(d), now=MONDAY_10H, catalog=catalog)
            async with store.transaction() as tx:
                saved = await tx.save(change, None)
            return saved, await store.get_case(saved.case_id)

    saved, loaded = asyncio.run(scenario())
    assert loaded == saved == replace(saved, version=1)


def test_a_database_with_users_and_tokens_migrates_to_head(tmp_path: Path) -> None:
    """Migrations that copy api_users (SQLite batch mode) under api_tokens' rows: the user and token stay,
    every reference holds, and foreign keys are enforced again after the migration."""
    import sqlalchemy as sa

    from gridsentinel.cases.store import create_engine, upgrade

    url = f"sqlite:///{tmp_path / 'old.db'}"

    async def scenario() -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine, "0004")
            async with engine.begin() as conn:
                await conn.execute(sa.text("INSERT INTO api_users VALUES ('adm', 'admin', 0, 'up')"))
                await conn.execute(sa.text(
                    "INSERT INTO api_tokens (id, user_name, role, hash, created_at, created_by, expires_at, "
                    "description) VALUES ('tok_1', 'adm', 'admin', 'sha256:00', 0, 'up', 9e9, '')"))
            await upgrade(engine)
            async with engine.connect() as conn:
                assert (await conn.execute(sa.text("SELECT name, role, center FROM api_users"))).all() == [
                    ("adm", "admin", None)]
                assert (await conn.scalar(sa.text("SELECT count(*) FROM api_tokens"))) == 1
                assert (await conn.exec_driver_sql("PRAGMA foreign_keys")).scalar() == 1
        finally:
            await engine.dispose()

    asyncio.run(scenario())


def test_pg_rows_encode_as_their_dicts() -> None:
    """The PostgreSQL batch insert hands msgspec the cases, log entries and detections themselves: each must
    encode to the bytes of the dict the other paths insert (``Case.row``, ``to_dict``), containers and all."""
    from gridsentinel.cases.case import evolve, log, new_case_for_test
    from gridsentinel.cases.store import _JSON_ENCODE, _applied_row

    case = evolve(new_case_for_test(), sources={"sensor": 2, "camera": 1}, kinds=("drain_overflow", "flood"),
                  assisting_departments=("roads",), headlines={"zh-CN": "溢流"},
                  pending_action={"action": "close", "by": {"user": "li"}, "at": 5.0}, due_at=None)
    entry = log(case, at=6.0, actor="user:li", action="note", note="满了",
                data={"detection_id": "d1", "nested": {"x": [1, 2.5, None]}}).entries[0]
    d = detection("d1", evidence={"fill": [0.5, {"n": 1}], "ok": None, "at": (1, 2)}, message="overflow",
                  messages={"zh-CN": "溢流"}, value=float("nan"), lat=31.3, lon=120.6)
    assert _JSON_ENCODE(case) == _JSON_ENCODE(case.row())
    assert _JSON_ENCODE(entry) == _JSON_ENCODE(entry.to_dict())
    as_object = _applied_row(d, "c1", "opened", 7.0, as_object=True)
    assert as_object["detection"] is d
    assert _JSON_ENCODE(as_object) == _JSON_ENCODE(_applied_row(d, "c1", "opened", 7.0))
