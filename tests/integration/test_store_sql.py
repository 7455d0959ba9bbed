"""The SQL case store on both backends (SQLite file, the stack's PostgreSQL): its invariants hold under
replays and concurrent writers."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gridsentinel.cases.authority import Actor
from gridsentinel.cases.batch import Applied, apply_detections
from gridsentinel.cases.case import Case, CaseChange, CaseError, NotAllowed, new_case_for_test
from gridsentinel.cases.categories import Catalog, UnknownCategory, load_catalog
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.store_protocol import CaseQuery, StoreConflict
from gridsentinel.cases.workflow import transition_case
from gridsentinel.core.records import Detection
from gridsentinel.settings import REPO_ROOT, Settings

from ..conftest import drain_detection

pytestmark = pytest.mark.integration
CELL = "320582110152102"
T0 = 1749434400.0  # Monday 10:00 Asia/Shanghai


@pytest.fixture(scope="module")
def catalog() -> Catalog:
    return load_catalog(Path(REPO_ROOT / "config"))


def det(detection_id: str, **overrides: object) -> Detection:
    return drain_detection(detection_id, **{"grid_code": CELL, "observed_at": T0, **overrides})


def test_one_case_per_cell_and_category_and_each_detection_once(
    case_store_url: str, catalog: Catalog
) -> None:
    async def scenario() -> tuple[list[CaseEvent], list[CaseEvent], int, int]:
        async with SqlCaseStore.open(case_store_url) as store:
            first = []
            for i in range(5):
                first += await apply_detection(
                    det(f"d{i}", observed_at=T0 + i), store, catalog, {}, now=T0 + 10
                )
            replay = []
            for i in range(5):  # a full replay of the same detections
                replay += await apply_detection(
                    det(f"d{i}", observed_at=T0 + i), store, catalog, {}, now=T0 + 20
                )
            cases = await store.list_cases(CaseQuery())
            pending = await store.pending_events()
            return first, replay, len(cases), cases[0].detection_count if cases else 0, pending  # type: ignore[return-value]

    first, replay, n_cases, count, pending = asyncio.run(scenario())  # type: ignore[misc]
    assert n_cases == 1 and count == 5
    assert [e.type for e in first] == ["open"] + ["evidence"] * 4
    assert replay == []
    # Every event is also in the outbox (same transaction), in order, until published.
    assert [e.event_id for e in pending] == [e.event_id for e in first]


def test_outbox_mark_published_and_reopen_refused_while_active(case_store_url: str, catalog: Catalog) -> None:
    async def scenario() -> tuple[int, str]:
        async with SqlCaseStore.open(case_store_url) as store:
            events = await apply_detection(det("a"), store, catalog, {}, now=T0)
            case_id = events[0].case_id
            for actor in ("user:li", "user:zhao"):  # a sensor case: the false alarm takes two users
                events += await transition_case(store, catalog, case_id, "false_alarm", actor=actor, now=T0 + 60)
            # A new incident in the same cell after the false alarm: rule 3 reopens within the window.
            events += await apply_detection(det("b", observed_at=T0 + 120), store, catalog, {}, now=T0 + 120)
            await store.mark_published([e.event_id for e in events[:2]])
            pending = await store.pending_events()
            return len(pending), (await store.list_cases(CaseQuery()))[0].status

    remaining, status = asyncio.run(scenario())
    assert status == "open"
    assert remaining >= 1  # only the published ones left the outbox


def test_two_concurrent_stores_never_open_two_cases_for_one_incident(
    case_store_url: str, catalog: Catalog
) -> None:
    """Two workers (two engines, two connection pools) race on one cell and category."""
    n = 12

    async def worker(store: SqlCaseStore, name: str) -> list[CaseEvent]:
        out: list[CaseEvent] = []
        for i in range(n):
            d = det(f"{name}-{i}", source="camera" if name == "b" else "sensor", observed_at=T0 + i)
            for _ in range(10):  # what the stage does after StoreConflict: try again
                try:
                    out += await apply_detection(d, store, catalog, {}, now=T0 + 30)
                    break
                except StoreConflict:
                    continue
        return out

    async def scenario() -> tuple[list[CaseEvent], list[CaseEvent], int, int, dict[str, int]]:
        async with SqlCaseStore.open(case_store_url) as a, SqlCaseStore.open(case_store_url) as b:
            ea, eb = await asyncio.gather(worker(a, "a"), worker(b, "b"))
            cases = await a.list_cases(CaseQuery())
            return ea, eb, len(cases), cases[0].detection_count, cases[0].sources

    ea, eb, n_cases, count, sources = asyncio.run(scenario())
    assert n_cases == 1
    assert count == 2 * n and sources == {"sensor": n, "camera": n}
    assert [e.type for e in ea + eb].count("open") == 1


SOURCES = ("sensor", "camera", "citizen")
KINDS = (("drain_overflow", ""), ("ponding", ""), ("citizen_report", "event:L001"), ("no_such_kind", ""))
BATCH_CELLS = [f"320582110152{i:03d}" for i in range(100, 104)]
BATCH_LINE = {c: {n for n in BATCH_CELLS if abs(int(n[-3:]) - int(c[-3:])) == 1} for c in BATCH_CELLS}


@st.composite
def batch_scenarios(draw: st.DrawFn) -> list[tuple[str, object]]:
    pool = []
    for n in range(draw(st.integers(1, 10))):
        kind, code = draw(st.sampled_from(KINDS))
        pool.append(det(f"p{n}", kind=kind, category_code=code, source=draw(st.sampled_from(SOURCES)),
                        grid_code=draw(st.sampled_from(BATCH_CELLS)),
                        severity=draw(st.sampled_from(("advisory", "warning", "alarm", "critical"))),
                        observed_at=T0 + draw(st.integers(0, 3)) * 1800))
    steps: list[tuple[str, object]] = []
    for _ in range(draw(st.integers(1, 4))):
        steps.append(("batch", draw(st.lists(st.sampled_from(pool), max_size=10))))
        if draw(st.booleans()):
            steps.append(("false_alarm", draw(st.integers(0, 3))))
    return steps


def test_batch_equals_one_by_one_on_the_backend(
    case_store_url: str, postgres_url: object, tmp_path: Path, catalog: Catalog
) -> None:
    """apply_detections gives what apply_detection one by one gives (cases, logs, applied ids, outbox,
    returned events), on this backend, with replays, in-batch duplicates, bad kinds and reopens."""
    fresh = (lambda: f"sqlite:///{tmp_path / uuid.uuid4().hex}.db") if case_store_url.startswith(
        "sqlite") else postgres_url

    async def run(url: str, steps: list[tuple[str, object]], batched: bool) -> tuple[list[object], object]:
        seen: list[object] = []
        async with SqlCaseStore.open(url) as store:
            for i, (what, arg) in enumerate(steps):
                now = T0 + 3600 + 900 * i
                if what == "batch":
                    if batched:
                        for r in await apply_detections(arg, store, catalog, BATCH_LINE, now=now):  # type: ignore[arg-type]
                            seen.append(type(r.error).__name__ if r.error else r.events)
                    else:
                        for d in arg:  # type: ignore[attr-defined]
                            try:
                                seen.append(await apply_detection(d, store, catalog, BATCH_LINE, now=now))
                            except UnknownCategory as exc:
                                seen.append(type(exc).__name__)
                    continue
                found = await store.list_cases(CaseQuery(limit=1000))
                if found:
                    for actor in ("user:li", "user:zhao"):  # machine-found cases take two users
                        try:
                            seen.append(await transition_case(
                                store, catalog, found[arg % len(found)].case_id,  # type: ignore[operator]
                                "false_alarm", actor=actor, now=now))
                        except CaseError as exc:
                            seen.append(type(exc).__name__)
            found = await store.list_cases(CaseQuery(limit=1000))
            state = ([c.to_dict() for c in found],
                     [await store.case_log(c.case_id) for c in found],
                     [await store.case_detections(c.case_id) for c in found],
                     await store.pending_events())
        return seen, state

    @settings(max_examples=12, deadline=None, database=None,
              suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
    @given(steps=batch_scenarios())
    def check(steps: list[tuple[str, object]]) -> None:
        one = asyncio.run(run(fresh(), steps, batched=False))  # type: ignore[operator]
        many = asyncio.run(run(fresh(), steps, batched=True))  # type: ignore[operator]
        assert many == one

    check()


def test_two_concurrent_batch_writers_never_open_two_cases(case_store_url: str, catalog: Catalog) -> None:
    """Two stores apply batches for the same cells at once: the store's unique index and version checks
    (and, on PostgreSQL, the batch's row locks) keep one case per (cell, category); a batch that loses
    falls back to one by one and attaches."""
    cells = [f"320582110152{i:03d}" for i in range(200, 204)]
    rounds, size = 6, 20
    errors: set[str] = set()

    async def writer(store: SqlCaseStore, name: str) -> list[Applied]:
        out: list[Applied] = []
        for r in range(rounds):
            batch = [det(f"{name}-{r}-{k}", grid_code=cells[k % len(cells)], observed_at=T0 + r)
                     for k in range(size)]
            for _ in range(10):  # what the stage does with a detection that kept losing: try again
                results = await apply_detections(batch, store, catalog, {}, now=T0 + 60 + r)
                errors.update(type(x.error).__name__ for x in results if x.error is not None)
                out += [x for x in results if x.error is None]
                batch = [x.detection for x in results if isinstance(x.error, StoreConflict)]
                if not batch:
                    break
        return out

    async def scenario() -> tuple[list[Applied], list[Applied], list[Case]]:
        async with SqlCaseStore.open(case_store_url) as a, SqlCaseStore.open(case_store_url) as b:
            ra, rb = await asyncio.gather(writer(a, "a"), writer(b, "b"))
            return ra, rb, await a.list_cases(CaseQuery(limit=100))

    ra, rb, found = asyncio.run(scenario())
    assert errors <= {"StoreConflict"}  # losing a race is the only refusal, and it is retried
    assert len(ra) + len(rb) == 2 * rounds * size
    assert sorted(c.grid_code for c in found) == cells  # one case per cell
    assert sum(c.detection_count for c in found) == 2 * rounds * size
    opens = [e for r in ra + rb for e in r.events if e.type == "open"]
    assert len(opens) == len(cells)


def test_processes_migrating_a_fresh_database_at_once_all_start(case_store_url: str) -> None:
    """The API, the worker and the CLI may all open a fresh case database at the same moment: each must find
    the schema migrated, none may fail on the other's ``alembic_version`` (they did, on PostgreSQL)."""
    from gridsentinel.cases.store import create_engine, upgrade

    async def one() -> str:
        engine = create_engine(case_store_url)
        try:
            await upgrade(engine)
            async with engine.connect() as conn:
                return str(await conn.scalar(sa.text("SELECT version_num FROM alembic_version")))
        finally:
            await engine.dispose()

    async def scenario() -> list[str]:
        return list(await asyncio.gather(*(one() for _ in range(6))))

    versions = asyncio.run(scenario())
    assert len(set(versions)) == 1 and versions[0] >= "0008", versions


def test_refusals_hand_overs_and_four_eyes_round_trip_through_the_store(
    case_store_url: str, catalog: Catalog
) -> None:
    """Issue 16 on this backend: joint dispatch, a refusal that escalates, a hand-back, four eyes on the
    false alarm of a sensor case; every new field survives the round trip and the log names both users."""
    street, district = "street:320582110", "district:320582"
    li, zhou = Actor("li", "dispatcher", street), Actor("zhou", "dispatcher", district)
    wang = Actor("wang", "department", department="drainage")
    zhao = Actor("zhao", "supervisor", street)

    async def step(store: SqlCaseStore, case_id: str, action: str, who: Actor, now: float,
                   **kw: object) -> list[CaseEvent]:
        return await transition_case(store, catalog, case_id, action, actor=who.log_name, now=now, who=who,
                                     **kw)  # type: ignore[arg-type]

    async def scenario() -> tuple[Case, Case, list[str], list[str], dict[str, object]]:
        async with SqlCaseStore.open(case_store_url) as store:
            first = det("h1", message="drain 85% full (freeboard 0.45 m)")
            case_id = (await apply_detection(first, store, catalog, {}, now=T0))[0].case_id
            later = det("h2", severity="critical", observed_at=T0 + 30, message="drain 101% full, surcharging")
            await apply_detection(later, store, catalog, {}, now=T0 + 30)
            await step(store, case_id, "dispatch", li, T0 + 60, department="drainage",
                       assisting_departments=["road_maintenance"])
            joint = await store.get_case(case_id)
            events = await step(store, case_id, "refuse", wang, T0 + 120, note="a gas company pipe")
            refused = await store.get_case(case_id)
            assert refused is not None
            with pytest.raises(NotAllowed, match="read-only"):  # the street keeps seeing it, read-only
                await step(store, case_id, "dispatch", li, T0 + 150, department="drainage")
            await step(store, case_id, "hand_back", zhou, T0 + 180, note="gas company informed; re-dispatch")
            await step(store, case_id, "false_alarm", li, T0 + 240, note="gauge test")
            asked = await store.get_case(case_id)
            assert asked is not None and asked.status == "open"
            assert asked.pending_action == {"action": "false_alarm", "by": "user:li", "at": T0 + 240,
                                            "note": "gauge test"}
            with pytest.raises(NotAllowed, match="second user"):
                await step(store, case_id, "false_alarm", li, T0 + 250)
            await step(store, case_id, "false_alarm", zhao, T0 + 300)
            final = await store.get_case(case_id)
            log = await store.case_log(case_id)
            assert joint is not None and joint.assisting_departments == ("road_maintenance",)
            assert final is not None
            return refused, final, [e.type for e in events], [e.action for e in log], log[-1].data

    refused, final, refusal_events, actions, closing = asyncio.run(scenario())
    assert refusal_events == ["refuse", "escalate"]
    assert (refused.status, refused.department, refused.assisting_departments) == ("open", None, ())
    assert (refused.center, refused.home_center, refused.escalation_level) == (district, street, 1)
    assert (refused.refusal_count, refused.refused_at) == (1, T0 + 120)
    assert (refused.title, refused.headline) == ("drain 85% full (freeboard 0.45 m)", "drain 101% full, surcharging")
    assert actions == ["open", "evidence", "raise_severity", "dispatch", "refuse", "escalate", "hand_back",
                       "request_false_alarm", "false_alarm"]
    assert (final.status, final.closing_reason, final.pending_action, final.center) == (
        "closed", "false_alarm", None, street)
    assert (closing["requested_by"], closing["confirmed_by"]) == ("user:li", "user:zhao")


def test_a_batch_writing_a_stored_case_or_detection_again_is_a_conflict(
    case_store_url: str, catalog: Catalog
) -> None:
    """write_batch's bulk inserts (asyncpg's executemany on PostgreSQL) report a broken unique constraint as
    StoreConflict, as the per-statement path does, and leave nothing of the batch behind."""
    from gridsentinel.cases.store_protocol import BatchWrite

    async def scenario() -> tuple[str, str, int]:
        async with SqlCaseStore.open(case_store_url) as store:
            events = await apply_detection(det("first"), store, catalog, {}, now=T0 + 10)
            case = await store.get_case(events[0].case_id)
            assert case is not None
            again = BatchWrite(at=T0 + 20, created=[case], updated=[], entries=[], applied=[], events=[])
            other = await store.list_cases(CaseQuery())
            replay = BatchWrite(at=T0 + 20, created=[], updated=[], entries=[],
                                applied=[(det("first"), other[0].case_id, "attached")], events=[])
            refused = []
            for batch in (again, replay):
                try:
                    async with store.transaction() as tx:
                        await tx.applied_ids(["first"])  # the batch's reads begin its transaction
                        await tx.write_batch(batch)
                    refused.append("written")
                except StoreConflict as exc:
                    refused.append(type(exc).__name__)
            return refused[0], refused[1], len(await store.case_detections(case.case_id))

    assert asyncio.run(scenario()) == ("StoreConflict", "StoreConflict", 1)


def test_a_batch_reads_exactly_its_categories_cells_and_recently_closed_cases(case_store_url: str) -> None:
    """The batch's reads (PostgreSQL: statements built once, categories matched by type and code in the index
    and then by key) find what the per-detection reads find: component and event codes overlap, so
    component:0103 must not bring event:0103 along, nor the pair component:0103 + event:L005 their crossings."""
    other = "320582110152103"

    def case(case_id: str, key: str, cell: str = CELL, closed_at: float | None = None) -> Case:
        category_type, _, code = key.partition(":")
        return new_case_for_test(case_id=case_id, grid_code=cell, category_type=category_type, category_code=code,
                                 status="closed" if closed_at else "open", closed_at=closed_at,
                                 closing_reason="resolved" if closed_at else None)

    stored = [case("a", "component:0103"), case("b", "event:0103"), case("c", "component:0103", closed_at=T0 - 100),
              case("d", "component:0103", closed_at=T0 - 10**6), case("e", "component:0103", cell=other),
              case("f", "event:L005"), case("g", "component:L005")]

    async def scenario() -> list[set[str]]:
        async with SqlCaseStore.open(case_store_url) as store:
            async with store.transaction() as tx:
                for c in stored:
                    await tx.save(CaseChange(c, (), created=True), None)
            async with store.transaction() as tx:
                return [{c.case_id for c in found} for found in (
                    await tx.candidate_cases({"component:0103"}, [CELL], None),
                    await tx.candidate_cases({"component:0103"}, [CELL], T0 - 1000),
                    await tx.candidate_cases({"component:0103", "event:L005"}, [CELL, other], None),
                    await tx.family_cases({"component:0103", "event:L005"}, [CELL], known=["a"]),
                    await tx.family_cases({"component:0103", "event:L005"}, [CELL, other]),
                    await tx.active_cases("component:0103", [CELL, other]),
                )]

    assert asyncio.run(scenario()) == [{"a"}, {"a", "c"}, {"a", "e", "f"}, {"f"}, {"a", "e", "f"}, {"a", "e"}]


def test_a_test_database_drops_while_another_roles_session_holds_it(
    postgres_url: Callable[[], str], settings: Settings
) -> None:
    """An autovacuum worker busy on a freshly filled database is a session no ``gridsentinel`` role may end
    (CI failed on it in a fixture's ``DROP DATABASE ... WITH (FORCE)``); the stack's drop ends it. A superuser
    session stands in for the worker here, with the same refusal for the role."""
    import asyncpg

    from gridsentinel.stack.services import PostgreSQL

    pg = PostgreSQL(settings)
    url = postgres_url()
    name = url.rsplit("/", 1)[1]

    async def scenario() -> str:
        other = await asyncpg.connect(host=str(pg.socket_dir), port=pg.port, user="postgres", database=name)
        try:
            role = await asyncpg.connect(pg.url("postgres"))
            try:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await role.execute(f"DROP DATABASE {name} WITH (FORCE)")
            finally:
                await role.close()
            await asyncio.to_thread(pg.drop_database, name)
            gone = await asyncpg.connect(pg.url("postgres"))
            try:
                return str(await gone.fetchval("SELECT count(*) FROM pg_database WHERE datname = $1", name))
            finally:
                await gone.close()
        finally:
            other.terminate()

    assert asyncio.run(scenario()) == "0"
    with pytest.raises(ValueError):
        pg.drop_database("x; DROP TABLE cases")


def test_async_commits_survive_a_postgresql_crash_once_durable_returns(
    postgres_url: Callable[[], str], settings: Settings, catalog: Catalog
) -> None:
    """The cases stage's store commits without waiting for the disk (``async_commit``) and acks its input only
    after ``durable()``. Here PostgreSQL itself crashes (SIGQUIT: immediate shutdown, no flush of its log
    buffers) right after ``durable()`` returned: every case committed before the call is there after recovery.
    Also: the store's sessions do run with ``synchronous_commit = off``, and ``durable()`` leaves the log
    flushed past where it was written when the call began."""
    import os
    import signal
    import time

    from gridsentinel import stack
    from gridsentinel.stack.services import PostgreSQL

    url = postgres_url()
    pg = PostgreSQL(settings)

    async def commit_then_durable() -> tuple[str, bool]:
        async with SqlCaseStore.open(url, async_commit=True) as store:
            results = await apply_detections([det(f"crash-{k}", grid_code=f"320582110152{200 + k:03d}")
                                              for k in range(5)], store, catalog, {}, now=T0 + 60)
            assert all(r.error is None for r in results)
            async with store.engine.connect() as conn:
                mode = str(await conn.scalar(sa.text("SHOW synchronous_commit")))
                written = await conn.scalar(sa.text("SELECT (pg_current_wal_insert_lsn() - '0/0')::bigint"))
            await store.durable()
            async with store.engine.connect() as conn:
                flushed = await conn.scalar(sa.text("SELECT (pg_current_wal_flush_lsn() - '0/0')::bigint")) >= written
            return mode, flushed

    mode, flushed = asyncio.run(commit_then_durable())
    assert mode == "off" and flushed
    postmaster = pg.proc.pid()
    assert postmaster is not None
    try:
        os.kill(postmaster, signal.SIGQUIT)  # immediate shutdown: a crash, recovered from the log at start
        deadline = time.monotonic() + 30
        while pg.proc.pid() is not None and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        stack.up(settings, lambda *a: None, only=["postgresql"])

    async def read_back() -> set[str]:
        async with SqlCaseStore.open(url) as store, store.transaction() as tx:
            return await tx.applied_ids([f"crash-{k}" for k in range(5)])

    assert asyncio.run(read_back()) == {f"crash-{k}" for k in range(5)}
