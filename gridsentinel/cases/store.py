"""The SQL case store: SQLAlchemy 2 (async Core) on SQLite (aiosqlite, the default) or PostgreSQL (asyncpg).

The schema is owned by the Alembic migrations in ``cases/migrations`` (:func:`upgrade`,
:func:`upgrade_database`); the tables below mirror them for queries. Invariants live in the database:

- a partial unique index allows one non-closed case per (grid cell, category type, category code);
- ``applied_detections`` has the detection id as primary key and is written in the same transaction
  as the case change, so a detection is applied at most once whatever crashes or replays happen;
- updates carry the version they read (optimistic lock);
- ``case_outbox`` receives the case events of every change in the same transaction (the transactional
  outbox): the cases stage publishes them to ``gs.case-events`` and then deletes them, so a crash
  between the commit and the publish delays events but never loses them.

A write that breaks one of them raises :class:`StoreConflict` and the transaction rolls back.

Open a store with ``store = await SqlCaseStore.open(url)`` (runs the migrations) and ``await
store.close()``, or ``async with SqlCaseStore.open(url) as store``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Collection, Generator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar

import msgspec
import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from gridsentinel.cases.authority import Actor, Queue, center_prefix
from gridsentinel.cases.case import ACTIVE_STATUSES, CLOSING_REASONS, STATUSES, Case, CaseChange, LogEntry, evolve
from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.incidents import Incident, IncidentLogEntry, LinkPlan, region_lock_key
from gridsentinel.cases.store_protocol import BatchWrite, CaseQuery, IncidentQuery, StoreConflict
from gridsentinel.core.records import Detection
from gridsentinel.errors import ConfigError

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
DEFAULT_URL = "sqlite+aiosqlite:///gridsentinel-cases.db"

metadata = sa.MetaData()

cases = sa.Table(
    "cases", metadata,
    sa.Column("case_id", sa.String(64), primary_key=True),
    sa.Column("grid_code", sa.String(15), nullable=False),
    sa.Column("category_type", sa.String(16), nullable=False),
    sa.Column("category_code", sa.String(16), nullable=False),
    sa.Column("category_standard", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("severity", sa.String(16), nullable=False),
    sa.Column("opened_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("first_seen_at", sa.Double, nullable=False),
    sa.Column("last_seen_at", sa.Double, nullable=False),
    sa.Column("detection_count", sa.Integer, nullable=False),
    sa.Column("sources", sa.JSON, nullable=False),
    sa.Column("kinds", sa.JSON, nullable=False),
    sa.Column("title", sa.Text, nullable=False),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
    sa.Column("department", sa.String(64)),
    sa.Column("center", sa.String(32), nullable=False),
    sa.Column("escalation_level", sa.Integer, nullable=False),
    sa.Column("due_at", sa.Double),
    sa.Column("dispatched_at", sa.Double),
    sa.Column("acknowledged_at", sa.Double),
    sa.Column("last_reminded_at", sa.Double),
    sa.Column("closed_at", sa.Double),
    sa.Column("closing_reason", sa.String(16)),
    sa.Column("duplicate_of", sa.String(64)),
    sa.Column("reopen_count", sa.Integer, nullable=False),
    sa.Column("rework_count", sa.Integer, nullable=False),
    sa.Column("home_center", sa.String(32), nullable=False),
    sa.Column("assisting_departments", sa.JSON, nullable=False),
    sa.Column("refusal_count", sa.Integer, nullable=False),
    sa.Column("refused_at", sa.Double),
    sa.Column("pending_action", sa.JSON),
    sa.Column("headline", sa.Text, nullable=False),
    sa.Column("headlines", sa.JSON, nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("log_count", sa.Integer, nullable=False),
    sa.CheckConstraint(f"status IN ({', '.join(repr(s) for s in STATUSES)})", name="ck_cases_status"),
    sa.CheckConstraint(f"closing_reason IS NULL OR closing_reason IN "
                       f"({', '.join(repr(r) for r in CLOSING_REASONS)})", name="ck_cases_closing_reason"),
    sa.Index("uq_cases_active_cell_category", "grid_code", "category_type", "category_code", unique=True,
             sqlite_where=sa.text("status <> 'closed'"), postgresql_where=sa.text("status <> 'closed'")),
    # cell first: the dedup reads (candidate_cases, family_cases) ask for grid_code = ANY(...); migration 0012
    sa.Index("ix_cases_cell_category", "grid_code", "category_type", "category_code", "status"),
    sa.Index("ix_cases_due_at", "due_at"),
    sa.Index("ix_cases_opened_at", "opened_at"),
    sa.Index("ix_cases_center", "center"),
)

case_log = sa.Table(
    "case_log", metadata,
    sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id"), primary_key=True),
    sa.Column("seq", sa.Integer, primary_key=True),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("from_status", sa.String(16)),
    sa.Column("to_status", sa.String(16)),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

applied_detections = sa.Table(
    "applied_detections", metadata,
    sa.Column("detection_id", sa.String(255), primary_key=True),
    sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id"), nullable=False, index=True),
    sa.Column("outcome", sa.String(16), nullable=False),
    sa.Column("applied_at", sa.Double, nullable=False),
    sa.Column("observed_at", sa.Double, nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("detection", sa.JSON, nullable=False),
)

case_outbox = sa.Table(
    "case_outbox", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.String(96), nullable=False, unique=True),
    sa.Column("case_id", sa.String(64), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("event", sa.Text, nullable=False),
)

incidents = sa.Table(
    "incidents", metadata,
    sa.Column("incident_id", sa.String(64), primary_key=True),
    sa.Column("family", sa.String(64), nullable=False),
    sa.Column("opened_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("merged_into", sa.String(64)),
)

incident_members = sa.Table(
    "incident_members", metadata,
    sa.Column("case_id", sa.String(64), sa.ForeignKey("cases.case_id"), primary_key=True),
    sa.Column("incident_id", sa.String(64), sa.ForeignKey("incidents.incident_id"), nullable=False),
    sa.Column("linked_at", sa.Double, nullable=False),
)

incident_log = sa.Table(
    "incident_log", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("incident_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("action", sa.String(32), nullable=False),
    sa.Column("note", sa.Text, nullable=False),
    sa.Column("data", sa.JSON, nullable=False),
)

_CASE_COLUMNS = [c.name for c in cases.columns]


def _row_incident(row: sa.Row[Any]) -> Incident:
    return Incident(**dict(row._mapping))


def _row_case(row: sa.Row[Any] | _MappingRow) -> Case:
    data = dict(row._mapping)
    data["kinds"] = tuple(data["kinds"] or ())
    data["sources"] = dict(data["sources"] or {})
    data["assisting_departments"] = tuple(data["assisting_departments"] or ())
    data["headlines"] = dict(data["headlines"] or {})
    return Case(**data)


def _row_log(row: sa.Row[Any]) -> LogEntry:
    return LogEntry(**dict(row._mapping))


def _category_filter(category_key: str) -> sa.ColumnElement[bool]:
    category_type, _, code = category_key.partition(":")
    return sa.and_(cases.c.category_type == category_type, cases.c.category_code == code)


def visible_condition(actor: Actor) -> sa.ColumnElement[bool]:
    """:func:`gridsentinel.cases.authority.visible` as a WHERE clause (so a big store filters in SQL)."""
    if actor.role == "citizen":
        return sa.false()
    in_prefix = cases.c.grid_code.startswith(actor.prefix, autoescape=True)
    if actor.role == "department":
        if actor.department is None:
            return sa.false()
        # assisting_departments is a JSON list of routing keys ([a-z0-9_], no quotes): as text, an element
        # is exactly the quoted key
        assisting = sa.cast(cases.c.assisting_departments, sa.Text).contains(f'"{actor.department}"',
                                                                               autoescape=True)
        return sa.and_(sa.or_(cases.c.department == actor.department, assisting), in_prefix)
    if actor.center is None:
        return in_prefix
    return sa.or_(in_prefix, cases.c.center == actor.center)


def queue_condition(queue: Queue, center: str, now: float) -> sa.ColumnElement[bool]:
    """:func:`gridsentinel.cases.authority.queues` for one queue of ``center`` as a WHERE clause."""
    active = cases.c.status != "closed"
    here = cases.c.center == center
    home = sa.func.coalesce(sa.func.nullif(cases.c.home_center, ""), cases.c.center)
    prefix = center_prefix(center)
    if queue == "new":
        return sa.and_(active, here, cases.c.status == "open", cases.c.refused_at.is_(None), home == center)
    if queue == "escalated_in":
        return sa.and_(active, here, home != center)
    if queue == "refused":
        return sa.and_(active, here, cases.c.status == "open", cases.c.refused_at.is_not(None))
    if queue == "overdue":
        return sa.and_(active, here, cases.c.due_at.is_not(None), cases.c.due_at < now)
    # escalated_out: a case of this center's cells whose center (a level:prefix id) is not at or below it
    return sa.and_(active, sa.not_(here), cases.c.grid_code.startswith(prefix, autoescape=True),
                   sa.not_(cases.c.center.like(f"%:{prefix}%")))


# PostgreSQL's "serialization failure" and "deadlock detected": the transaction lost a race, retry it.
_RACE_SQLSTATES = frozenset({"40001", "40P01"})
_IN_CHUNK = 500  # values per IN (...) list: far below every driver's bind-parameter limit

# Hot-path statements, built once (SQLAlchemy caches their compiled form).
_INSERT_CASE = sa.insert(cases)
_INSERT_LOG = sa.insert(case_log)
_INSERT_APPLIED = sa.insert(applied_detections)
_INSERT_OUTBOX = sa.insert(case_outbox)
# executemany: SET takes the case columns from each parameter set, WHERE the id and the version read.
_UPDATE_CASE_AT_VERSION = sa.update(cases).where(
    cases.c.case_id == sa.bindparam("b_case_id"), cases.c.version == sa.bindparam("b_expected"))
_LOCK_REGIONS = sa.text("SELECT pg_advisory_xact_lock(k) FROM unnest(:keys) WITH ORDINALITY AS t(k, i) ORDER BY i"
                        ).bindparams(sa.bindparam("keys", type_=postgresql.ARRAY(sa.BigInteger)))
# JSON column values as text for asyncpg: None is JSON null (as SQLAlchemy's JSON type stores it)
_JSON_ENCODE = msgspec.json.Encoder().encode

# PostgreSQL: a dedup batch's three reads as statements built once, the batch's values as array parameters.
# Built per batch (expression trees, a cache key walked each time) they cost the cases worker 2.4 - 3.0 ms of
# CPU per batch, built once 1.2 - 1.3 ms (a quick script: applied ids, candidate cases, family cases in one
# transaction, 30 cells); in a steady stream the stage runs 40 batches a second whatever the rate (issue 15,
# docs/cases.md, session 16). Each category is matched by type and code in the index on the cell
# (ix_cases_cell_category: cell, type, code, status), then exactly by its key: component and event codes
# overlap, so the two ANYs alone would also match e.g. event:0103 for component:0103 and event:L005.
_TEXTS = postgresql.ARRAY(sa.String)
_PG_IN_CELLS = cases.c.grid_code == sa.any_(sa.bindparam("cells", type_=_TEXTS))
_PG_OF_CATEGORIES = sa.and_(
    cases.c.category_type == sa.any_(sa.bindparam("types", type_=_TEXTS)),
    cases.c.category_code == sa.any_(sa.bindparam("codes", type_=_TEXTS)),
    (cases.c.category_type + ":" + cases.c.category_code) == sa.any_(sa.bindparam("keys", type_=_TEXTS)))
_PG_APPLIED_IDS = sa.select(applied_detections.c.detection_id).where(
    applied_detections.c.detection_id == sa.any_(sa.bindparam("ids", type_=_TEXTS)))
# FOR UPDATE in id order: see candidate_cases
_PG_CANDIDATES_ACTIVE = (sa.select(cases).where(_PG_IN_CELLS, _PG_OF_CATEGORIES, cases.c.status != "closed")
                         .order_by(cases.c.case_id).with_for_update())
_PG_CANDIDATES_SINCE = (sa.select(cases).where(_PG_IN_CELLS, _PG_OF_CATEGORIES, sa.or_(
    cases.c.status != "closed", cases.c.closed_at >= sa.bindparam("since", type_=sa.Float)))
    .order_by(cases.c.case_id).with_for_update())
_PG_FAMILY_CASES = sa.select(cases).where(_PG_IN_CELLS, _PG_OF_CATEGORIES, cases.c.status != "closed",
                                          sa.not_(cases.c.case_id == sa.any_(sa.bindparam("known", type_=_TEXTS))))


def _pg_categories(category_keys: Collection[str]) -> dict[str, list[str]]:
    """The array parameters of ``_PG_OF_CATEGORIES``.

    >>> _pg_categories({"event:L005", "component:0103"})
    {'types': ['component', 'event'], 'codes': ['0103', 'L005'], 'keys': ['component:0103', 'event:L005']}
    """
    keys = sorted(set(category_keys))
    parts = [k.partition(":") for k in keys]
    return {"types": sorted({t for t, _, _ in parts}), "codes": sorted({c for _, _, c in parts}), "keys": keys}


def _chunks(items: Sequence[str]) -> list[Sequence[str]]:
    return [items[i:i + _IN_CHUNK] for i in range(0, len(items), _IN_CHUNK)]


def _one_of(conn: AsyncConnection, column: sa.ColumnElement[str], values: Collection[str]
            ) -> list[sa.ColumnElement[bool]]:
    """``column IN values`` as one condition per statement to run: on PostgreSQL one ``= ANY(array)`` with
    the values as a single array parameter; elsewhere ``IN (...)`` per chunk of ``_IN_CHUNK``.

    A prepared ``IN ($1, ..., $500)`` took the batch's candidate cases 147 ms among 10,000 cases of the
    category; one array parameter 83 ms under PostgreSQL's generic plan, where the array is matched row by
    row, and 5 - 7 ms with custom plans (``create_engine``), where it is hashed or sent to the index on the
    cell (``gridsentinel bench cases``, issue 15).
    """
    ordered = sorted(set(values))
    if conn.dialect.name == "postgresql":
        return [column == sa.any_(sa.bindparam(None, ordered, type_=postgresql.ARRAY(sa.String)))]
    return [column.in_(chunk) for chunk in _chunks(ordered)]


@asynccontextmanager
async def _conflicts_as_store_conflict(what: str) -> AsyncIterator[None]:
    try:
        yield
    except IntegrityError as exc:
        raise StoreConflict(f"{what}: {exc.orig}") from exc
    except DBAPIError as exc:
        if getattr(exc.orig, "sqlstate", None) in _RACE_SQLSTATES:
            raise StoreConflict(f"{what}: {exc.orig}") from exc
        raise


def _applied_row(detection: Detection, case_id: str, outcome: str, at: float, *,
                 as_object: bool = False) -> dict[str, Any]:
    """An ``applied_detections`` row; ``as_object``: the detection itself in the ``detection`` column, for a
    row msgspec encodes (to the same bytes as its ``to_dict()``), instead of a copy as a dict."""
    return {"detection_id": detection.detection_id, "case_id": case_id, "outcome": outcome,
            "applied_at": at, "observed_at": detection.observed_at, "source": detection.source,
            "kind": detection.kind, "detection": detection if as_object else detection.to_dict()}




def _outbox_row(event: CaseEvent, at: float) -> dict[str, Any]:
    return {"event_id": event.event_id, "case_id": event.case_id, "created_at": at,
            "event": event.to_json().decode()}


class _PgBatchInsert:
    """A batch's new cases, log entries, applied ids and outbox events in one PostgreSQL statement: four
    data-modifying CTEs, each table's rows sent as one JSON array (msgspec) and expanded by
    ``json_populate_recordset`` with the table's own row type. One round trip where SQLAlchemy's four
    ``executemany`` made four and processed every parameter of every row in Python (a fifth of the cases
    worker's CPU with a backlog; every round trip waits for a CPU when the machine is busy:
    ``gridsentinel bench cases``, issue 15). The foreign keys are checked at the end of the statement, when
    every CTE has inserted its rows. Errors come back as SQLAlchemy's (``IntegrityError`` for a broken
    constraint, ``DBAPIError`` otherwise), so conflicts and outages are handled as on the other path.
    """

    TABLES = (cases, case_log, applied_detections, case_outbox)

    def __init__(self) -> None:
        parts = []
        for i, table in enumerate(self.TABLES, 1):
            names = ", ".join(f'"{c.name}"' for c in table.columns if not (c.primary_key and c.autoincrement is True))
            parts.append(f'w{i} AS (INSERT INTO "{table.name}" ({names}) SELECT {names} '
                         f'FROM json_populate_recordset(NULL::"{table.name}", ${i}::json))')
        self.sql = "WITH " + ",\n     ".join(parts) + "\nSELECT 1"

    async def insert(self, driver: Any, *rows: Sequence[Any]) -> None:
        """``rows``: per table, dicts of column values, or dataclass instances whose fields are the columns."""
        import asyncpg

        try:
            await driver.execute(self.sql, *(_JSON_ENCODE(list(r)).decode() for r in rows))
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(self.sql, None, exc) from exc
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise DBAPIError(self.sql, None, exc) from exc


_PG_BATCH_INSERT = _PgBatchInsert()


class _SqlTx:
    def __init__(self, conn: AsyncConnection) -> None:
        self._conn = conn

    async def is_applied(self, detection_id: str) -> bool:
        col = applied_detections.c.detection_id
        found = await self._conn.scalar(sa.select(col).where(col == detection_id))
        return found is not None

    async def active_cases(self, category_key: str, grid_codes: Collection[str]) -> list[Case]:
        rows = await self._conn.execute(sa.select(cases).where(
            _category_filter(category_key), cases.c.grid_code.in_(list(grid_codes)),
            cases.c.status.in_(ACTIVE_STATUSES)))
        return [_row_case(r) for r in rows]

    async def closed_cases(self, category_key: str, grid_codes: Collection[str],
                           closed_since: float) -> list[Case]:
        rows = await self._conn.execute(sa.select(cases).where(
            _category_filter(category_key), cases.c.grid_code.in_(list(grid_codes)),
            cases.c.status == "closed", cases.c.closed_at >= closed_since))
        return [_row_case(r) for r in rows]

    async def get_case(self, case_id: str) -> Case | None:
        row = (await self._conn.execute(sa.select(cases).where(cases.c.case_id == case_id))).first()
        return _row_case(row) if row else None

    async def save(self, change: CaseChange, expected_version: int | None) -> Case:
        case = change.case
        async with _conflicts_as_store_conflict(f"case {case.case_id}"):
            if change.created:
                saved = evolve(case, version=1)
                await self._conn.execute(sa.insert(cases).values(saved.row()))
            else:
                if expected_version is None:
                    raise StoreConflict(f"case {case.case_id}: update without the version it was read at")
                saved = evolve(case, version=expected_version + 1)
                values = saved.row()
                del values["case_id"]
                result = await self._conn.execute(sa.update(cases).where(
                    cases.c.case_id == case.case_id, cases.c.version == expected_version).values(values))
                if result.rowcount != 1:
                    raise StoreConflict(f"case {case.case_id} changed since it was read "
                                        f"(version {expected_version})")
            if change.entries:
                await self._conn.execute(sa.insert(case_log), [e.to_dict() for e in change.entries])
        return saved

    async def record_detection(self, detection: Detection, case_id: str, outcome: str, at: float) -> None:
        async with _conflicts_as_store_conflict(f"detection {detection.detection_id}"):
            await self._conn.execute(_INSERT_APPLIED, _applied_row(detection, case_id, outcome, at))

    async def add_events(self, events: Sequence[CaseEvent], at: float) -> None:
        if events:
            await self._conn.execute(_INSERT_OUTBOX, [_outbox_row(e, at) for e in events])

    async def applied_ids(self, detection_ids: Collection[str]) -> set[str]:
        if self._conn.dialect.name == "postgresql":
            return set(await self._conn.scalars(_PG_APPLIED_IDS, {"ids": sorted(set(detection_ids))}))
        col = applied_detections.c.detection_id
        found: set[str] = set()
        for condition in _one_of(self._conn, col, detection_ids):
            found.update(await self._conn.scalars(sa.select(col).where(condition)))
        return found

    async def candidate_cases(self, category_keys: Collection[str], grid_codes: Collection[str],
                              closed_since: float | None) -> list[Case]:
        if not category_keys or not grid_codes:
            return []
        if self._conn.dialect.name == "postgresql":
            params: dict[str, Any] = {"cells": sorted(set(grid_codes)), **_pg_categories(category_keys)}
            stmt = _PG_CANDIDATES_ACTIVE
            if closed_since is not None:
                stmt, params["since"] = _PG_CANDIDATES_SINCE, closed_since
            return [_row_case(r) for r in await self._conn.execute(stmt, params)]
        wanted = (cases.c.status != "closed" if closed_since is None
                  else sa.or_(cases.c.status != "closed", cases.c.closed_at >= closed_since))
        category = sa.or_(*(_category_filter(k) for k in sorted(category_keys)))
        found: list[Case] = []
        for in_cells in _one_of(self._conn, cases.c.grid_code, grid_codes):
            # FOR UPDATE (PostgreSQL; SQLite's BEGIN IMMEDIATE already excludes other writers): nobody can
            # change these cases before the commit, so write_batch's version checks cannot be overtaken.
            # Locked in id order, so two batches never deadlock on each other.
            stmt = (sa.select(cases).where(category, in_cells, wanted)
                    .order_by(cases.c.case_id).with_for_update())
            found += [_row_case(r) for r in await self._conn.execute(stmt)]
        return found

    async def write_batch(self, batch: BatchWrite) -> None:
        driver = await self._pg_driver()
        async with _conflicts_as_store_conflict("batch"):
            outbox = [_outbox_row(e, batch.at) for e in batch.events]
            if driver is not None:
                # msgspec encodes the cases, log entries and detections themselves, to the bytes their dicts
                # (Case.row, to_dict) give, without those copies first (test_pg_rows_encode_as_their_dicts)
                applied = [_applied_row(d, case_id, outcome, batch.at, as_object=True)
                           for d, case_id, outcome in batch.applied]
                await _PG_BATCH_INSERT.insert(driver, batch.created, batch.entries, applied, outbox)
            else:
                created = [c.row() for c in batch.created]
                logs = [e.to_dict() for e in batch.entries]
                applied = [_applied_row(d, case_id, outcome, batch.at) for d, case_id, outcome in batch.applied]
                for statement, rows in ((_INSERT_CASE, created), (_INSERT_LOG, logs), (_INSERT_APPLIED, applied),
                                        (_INSERT_OUTBOX, outbox)):
                    if rows:
                        await self._conn.execute(statement, rows)
            if batch.updated:
                rows = []
                for case, expected in batch.updated:
                    row = case.row()
                    row["b_case_id"] = row.pop("case_id")
                    row["b_expected"] = expected
                    rows.append(row)
                result = await self._conn.execute(_UPDATE_CASE_AT_VERSION, rows)
                # asyncpg reports no row count for executemany; there the rows are locked since they
                # were read (candidate_cases), so the version check cannot fail.
                if self._conn.dialect.supports_sane_multi_rowcount and result.rowcount != len(rows):
                    raise StoreConflict("a case of the batch changed since it was read")

    async def _pg_driver(self) -> Any | None:
        """The asyncpg connection under this transaction, for :class:`_PgBatchInsert` (PostgreSQL only), once
        the transaction has begun there (SQLAlchemy begins it at the first statement); else None."""
        if self._conn.dialect.name != "postgresql":
            return None
        raw = await self._conn.get_raw_connection()
        driver = raw.driver_connection
        return driver if driver is not None and driver.is_in_transaction() else None

    async def lock_incident_regions(self, family_id: str, regions: Sequence[str]) -> None:
        # SQLite: this transaction began IMMEDIATE and already excludes every other writer.
        if self._conn.dialect.name == "postgresql" and regions:
            # One round trip for all of them, taken in the order given: unnest returns the array in order,
            # and PostgreSQL evaluates the target list row by row.
            await self._conn.execute(_LOCK_REGIONS, {"keys": [region_lock_key(family_id, r) for r in regions]})

    async def family_cases(self, category_keys: Collection[str], grid_codes: Collection[str],
                           known: Collection[str] = ()) -> list[Case]:
        if not category_keys or not grid_codes:
            return []
        if self._conn.dialect.name == "postgresql":
            params = {"cells": sorted(set(grid_codes)), **_pg_categories(category_keys), "known": sorted(set(known))}
            return [_row_case(r) for r in await self._conn.execute(_PG_FAMILY_CASES, params)]
        category = sa.or_(*(_category_filter(k) for k in sorted(category_keys)))
        wanted = [category, cases.c.status != "closed"]
        if known:
            wanted += [sa.not_(c) for c in _one_of(self._conn, cases.c.case_id, known)]
        found: list[Case] = []
        for in_cells in _one_of(self._conn, cases.c.grid_code, grid_codes):
            rows = await self._conn.execute(sa.select(cases).where(in_cells, *wanted))
            found += [_row_case(r) for r in rows]
        return found

    async def incident_links(self, case_ids: Collection[str]) -> dict[str, str]:
        links: dict[str, str] = {}
        for condition in _one_of(self._conn, incident_members.c.case_id, case_ids):
            rows = await self._conn.execute(sa.select(incident_members.c.case_id, incident_members.c.incident_id)
                                            .where(condition))
            links.update((r.case_id, r.incident_id) for r in rows)
        return links

    async def incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]:
        found: dict[str, Incident] = {}
        for condition in _one_of(self._conn, incidents.c.incident_id, incident_ids):
            rows = await self._conn.execute(sa.select(incidents).where(condition))
            found.update((r.incident_id, _row_incident(r)) for r in rows)
        return found

    async def write_incident_links(self, plan: LinkPlan, at: float) -> None:
        async with _conflicts_as_store_conflict("incident links"):
            await self._check_unmerged(plan)
            if plan.created:
                await self._conn.execute(sa.insert(incidents), [
                    {"incident_id": i.incident_id, "family": i.family, "opened_at": i.opened_at,
                     "updated_at": i.updated_at, "merged_into": None} for i in plan.created])
            for loser, survivor in plan.merged:
                await self._conn.execute(sa.update(incident_members).where(
                    incident_members.c.incident_id == loser).values(incident_id=survivor))
                await self._conn.execute(sa.update(incidents).where(
                    incidents.c.incident_id == loser).values(merged_into=survivor, updated_at=at))
            if plan.joined:
                await self._conn.execute(sa.insert(incident_members), [
                    {"case_id": c, "incident_id": i, "linked_at": at} for c, i in plan.joined])
            touched = sorted(plan.touched() - {m for m, _ in plan.merged})
            if touched:
                await self._conn.execute(sa.update(incidents).where(incidents.c.incident_id.in_(touched))
                                         .values(updated_at=at))
            if plan.log:
                await self._conn.execute(sa.insert(incident_log), [e.to_dict() for e in plan.log])

    async def _check_unmerged(self, plan: LinkPlan) -> None:
        """Lock the stored incidents ``plan`` joins or merges (in id order) and check none was merged since
        it was read. The region locks keep linkers of nearby cases apart, but an incident can stretch across
        regions: a linker elsewhere may have merged it meanwhile."""
        created = {i.incident_id for i in plan.created}
        ids = sorted(({i for _, i in plan.joined} | {i for pair in plan.merged for i in pair}) - created)
        if not ids:
            return
        rows = (await self._conn.execute(
            sa.select(incidents.c.incident_id, incidents.c.merged_into)
            .where(incidents.c.incident_id.in_(ids)).order_by(incidents.c.incident_id).with_for_update())).all()
        live = {r.incident_id for r in rows if r.merged_into is None}
        if live != set(ids):
            raise StoreConflict(f"incidents {sorted(set(ids) - live)} were merged or removed since they were read")

    async def attention_cases(self, now: float, reminder_severities: Collection[str]) -> list[Case]:
        rows = await self._conn.execute(sa.select(cases).where(
            cases.c.status.in_(ACTIVE_STATUSES),
            sa.or_(cases.c.due_at <= now,
                   sa.and_(cases.c.status == "open", cases.c.acknowledged_at.is_(None),
                           cases.c.severity.in_(list(reminder_severities))))).order_by(cases.c.case_id))
        return [_row_case(r) for r in rows]


def async_url(url: str) -> sa.URL:
    """``url`` with an async driver: ``sqlite://`` → aiosqlite, ``postgresql://`` → asyncpg.

    >>> async_url("sqlite:///cases.db").render_as_string()
    'sqlite+aiosqlite:///cases.db'
    >>> async_url("postgresql://gs@db/gs").drivername
    'postgresql+asyncpg'
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend == "postgresql":
        return parsed.set(drivername="postgresql+asyncpg")
    raise ConfigError(f"case store URL {parsed.render_as_string()!r}: expected sqlite:// or postgresql://")


def create_engine(url: str, *, pre_ping: bool = True, async_commit: bool = False) -> AsyncEngine:
    """An async engine for the case store; SQLite gets foreign keys, WAL and real (immediate) BEGINs.

    ``async_commit`` (PostgreSQL): the engine's sessions commit with ``synchronous_commit = off``: a commit
    returns once its log records are written to PostgreSQL's buffers, not to the disk; the WAL writer flushes
    them within ~0.2 s (``wal_writer_delay``). A crash of PostgreSQL itself (not of the client) in between
    loses those transactions; :meth:`SqlCaseStore.durable` waits until they are safe. Only the cases stage
    uses it, and acks its input only after :meth:`SqlCaseStore.durable`.

    ``pre_ping`` (PostgreSQL): test each pooled connection as it is checked out, so a request after a
    database restart gets a fresh connection instead of an error. It costs three round trips per checkout
    (asyncpg's ping is BEGIN, an empty statement, ROLLBACK). A caller that retries its work on
    ``DBAPIError``/``OSError`` anyway (the cases stage) turns it off: SQLAlchemy drops the pool's connections
    on the first disconnect error, so the retry gets a fresh one.
    """
    parsed = async_url(url)
    if parsed.get_backend_name() != "sqlite":
        # force_custom_plan: asyncpg prepares every statement, and after five runs PostgreSQL may switch to a
        # generic plan, in which ``cell = ANY($1)`` cannot be hashed or sent to the index: the batch's
        # candidate cases went from 7 ms to 87 ms among 10,000 cases of their category at the sixth batch
        # (issue 15). Planning each run costs well under a millisecond for these statements.
        server_settings = {"plan_cache_mode": "force_custom_plan"}
        if async_commit:
            server_settings["synchronous_commit"] = "off"
        return create_async_engine(parsed, pool_pre_ping=pre_ping, connect_args={"server_settings": server_settings})
    engine = create_async_engine(parsed, connect_args={"timeout": 30})
    memory = parsed.database in (None, "", ":memory:")

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the driver (its legacy mode skips BEGIN before SELECT), see
        # SQLAlchemy's "Enabling Non-Legacy SQLite Transactional Modes".
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA foreign_keys = ON")
        if not memory:
            cursor.execute("PRAGMA journal_mode = WAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(conn: Connection) -> None:
        # IMMEDIATE takes the write lock up front: a read-then-write transaction never deadlocks on
        # upgrading its lock, a second writer just waits (busy timeout).
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def alembic_config() -> Any:
    """The Alembic configuration of the case store's migrations (no ini file needed)."""
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    return config


def _upgrade_sync(connection: Connection, revision: str) -> None:
    from alembic import command

    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


def _foreign_keys(connection: Connection, on: bool) -> None:
    """Turn SQLite's foreign keys on or off for this connection, outside any transaction."""
    cursor = connection.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(f"PRAGMA foreign_keys = {'ON' if on else 'OFF'}")
    finally:
        cursor.close()


# Any 64-bit number that no other user of the database takes: "GSMIGRAT" in ASCII.
_MIGRATION_LOCK = 0x47534D4947524154


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Migrate the database behind ``engine`` to ``revision`` (default: the latest).

    Processes that start together (the API, the worker, the CLI) may all migrate a fresh database at once.
    On PostgreSQL a transaction-scoped advisory lock makes them take turns: the first migrates, the others
    find the schema at ``revision`` and do nothing. SQLite serialises writers itself; a process that loses
    the race (``alembic_version`` created under it, the database locked) tries again, a few times.
    """
    for attempt in range(4):
        try:
            async with engine.connect() as conn:
                sqlite = conn.dialect.name == "sqlite"
                if sqlite:
                    # Batch mode copies a table, drops the old one and renames the copy; with foreign keys on,
                    # dropping api_users under api_tokens' rows fails. Off (SQLite ignores this pragma inside a
                    # transaction, so on the driver's connection before ours begins), checked after, on again.
                    await conn.run_sync(_foreign_keys, False)
                try:
                    async with conn.begin():  # SQLite: BEGIN IMMEDIATE, so migrators wait for each other
                        if not sqlite:
                            await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                                               {"key": _MIGRATION_LOCK})
                        await conn.run_sync(_upgrade_sync, revision)
                        if sqlite and (await conn.exec_driver_sql("PRAGMA foreign_key_check")).first() is not None:
                            raise ConfigError("the case database's migration left rows whose references do not "
                                              "hold (PRAGMA foreign_key_check); restore a backup")
                finally:
                    if sqlite:
                        await conn.run_sync(_foreign_keys, True)
            return
        except DBAPIError:
            if attempt == 3:
                raise
            await asyncio.sleep(0.2 * (attempt + 1))


def upgrade_database(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` to ``revision`` from synchronous code (CLI, scripts).

    Not from inside a running event loop: there, ``await upgrade(engine)``.
    """
    async def run() -> None:
        engine = create_engine(url)
        try:
            await upgrade(engine, revision)
        finally:
            await engine.dispose()

    asyncio.run(run())


# Wait, in the server, until the log is flushed past where it had been written when the statement began.
_WAIT_FOR_FLUSH = """DO $$
DECLARE written pg_lsn := pg_current_wal_insert_lsn();
BEGIN
    WHILE pg_current_wal_flush_lsn() < written LOOP
        PERFORM pg_sleep(0.005);
    END LOOP;
END $$"""


class SqlCaseStore:
    """The case store on SQL. Create with :meth:`open`; close with :meth:`close`."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    @classmethod
    def open(cls, url: str = DEFAULT_URL, *, migrate: bool = True, pre_ping: bool = True,
             async_commit: bool = False) -> StoreOpener[SqlCaseStore]:
        """``store = await SqlCaseStore.open(url)`` or ``async with SqlCaseStore.open(url) as store``.

        With ``migrate`` (the default) the schema is upgraded to the latest revision first. ``pre_ping`` and
        ``async_commit``: see :func:`create_engine`.
        """
        return StoreOpener(cls, url, migrate, pre_ping=pre_ping, async_commit=async_commit)

    async def close(self) -> None:
        await self.engine.dispose()

    async def durable(self) -> None:
        """Return once every transaction committed before the call is on disk, whoever committed it.

        PostgreSQL: the log is flushed in order, so once it is flushed up to where it had been written when
        the call began, every commit before the call is on disk. The server waits for that itself (one round
        trip, polling its own flush position every 5 ms); its WAL writer flushes asynchronous commits within
        ``wal_writer_delay`` (0.2 s), later while the disk stalls. (A synchronous commit would not force it: a
        transaction that writes nothing commits without a flush.) SQLite: every commit is already durable
        when it returns.
        """
        if self.engine.dialect.name != "postgresql":
            return
        async with self.engine.connect() as conn:  # errors come as SQLAlchemy's DBAPIError, as everywhere else
            await conn.exec_driver_sql(_WAIT_FOR_FLUSH)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_SqlTx]:
        async with _conflicts_as_store_conflict("commit"), self.engine.begin() as conn:
            yield _SqlTx(conn)

    async def get_case(self, case_id: str) -> Case | None:
        async with self.transaction() as tx:
            return await tx.get_case(case_id)

    async def case_log(self, case_id: str) -> list[LogEntry]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(case_log).where(case_log.c.case_id == case_id)
                                      .order_by(case_log.c.seq))
            return [_row_log(r) for r in rows]

    async def log_entries(self, actions: Collection[str], *, since: float, until: float) -> list[LogEntry]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(case_log).where(case_log.c.action.in_(list(actions)), case_log.c.at >= since,
                                          case_log.c.at < until)
                .order_by(case_log.c.at, case_log.c.case_id, case_log.c.seq))
            return [_row_log(r) for r in rows]

    async def case_detections(self, case_id: str) -> list[dict[str, object]]:
        async with self.engine.connect() as conn:
            rows = await conn.execute(
                sa.select(applied_detections).where(applied_detections.c.case_id == case_id)
                .order_by(applied_detections.c.observed_at, applied_detections.c.detection_id))
            return [{**r.detection, "case_id": r.case_id, "outcome": r.outcome, "applied_at": r.applied_at}
                    for r in rows]

    async def pending_events(self, *, created_before: float | None = None,
                             limit: int = 1000) -> list[CaseEvent]:
        """Outbox events not yet published, oldest first (optionally only those written before a time)."""
        stmt = sa.select(case_outbox.c.event).order_by(case_outbox.c.id).limit(limit)
        if created_before is not None:
            stmt = stmt.where(case_outbox.c.created_at < created_before)
        async with self.engine.connect() as conn:
            return [CaseEvent.from_json(raw) for raw in await conn.scalars(stmt)]

    async def mark_published(self, event_ids: Collection[str]) -> None:
        """Drop published events from the outbox (unknown ids are ignored: a peer got there first)."""
        if self.engine.dialect.name == "postgresql":
            # one DELETE of them all, atomic by itself: no BEGIN and COMMIT round trips (the cases stage
            # calls this after every batch it publishes)
            async with self.engine.connect() as conn:
                auto = await conn.execution_options(isolation_level="AUTOCOMMIT")
                for condition in _one_of(auto, case_outbox.c.event_id, event_ids):
                    await auto.execute(sa.delete(case_outbox).where(condition))
            return
        async with self.engine.begin() as conn:
            for condition in _one_of(conn, case_outbox.c.event_id, event_ids):
                await conn.execute(sa.delete(case_outbox).where(condition))

    async def list_cases(self, query: CaseQuery) -> list[Case]:
        conditions: list[sa.ColumnElement[bool]] = []
        if query.grid_prefix is not None:
            if not query.grid_prefix.isdigit() and query.grid_prefix:
                raise ValueError(f"grid_prefix must be digits, got {query.grid_prefix!r}")
            conditions.append(cases.c.grid_code.startswith(query.grid_prefix))
        if query.statuses is not None:
            conditions.append(cases.c.status.in_(list(query.statuses)))
        if query.category_key is not None:
            conditions.append(_category_filter(query.category_key))
        if query.category_keys is not None:
            conditions.append(sa.or_(sa.false(), *(_category_filter(k) for k in query.category_keys)))
        if query.opened_from is not None:
            conditions.append(cases.c.opened_at >= query.opened_from)
        if query.opened_to is not None:
            conditions.append(cases.c.opened_at < query.opened_to)
        if query.visible_to is not None:
            conditions.append(visible_condition(query.visible_to))
        if query.queue is not None:
            assert query.queue_center is not None and query.now is not None  # CaseQuery checks it
            conditions.append(queue_condition(query.queue, query.queue_center, query.now))
        stmt = (sa.select(cases).where(*conditions).order_by(cases.c.opened_at.desc(), cases.c.case_id)
                .limit(query.limit).offset(query.offset))
        async with self.engine.connect() as conn:
            return [_row_case(r) for r in await conn.execute(stmt)]

    # --- incidents (cases/incidents.py) -----------------------------------------------------------------

    async def incident_of(self, case_id: str) -> str | None:
        async with self.engine.connect() as conn:
            found: str | None = await conn.scalar(sa.select(incident_members.c.incident_id).where(
                incident_members.c.case_id == case_id))
            return found

    async def get_incident(self, incident_id: str) -> Incident | None:
        """The incident, following ``merged_into`` to the one that lives on; None when unknown."""
        async with self.engine.connect() as conn:
            for _ in range(64):  # a chain of merges is short; the bound only guards against a cycle
                row = (await conn.execute(sa.select(incidents).where(
                    incidents.c.incident_id == incident_id))).first()
                if row is None:
                    return None
                if row.merged_into is None:
                    return _row_incident(row)
                incident_id = row.merged_into
        return None

    async def incident_cases(self, incident_ids: Collection[str],
                             visible_to: Actor | None = None) -> dict[str, list[Case]]:
        """Member cases of each incident (only those ``visible_to`` may see), oldest first."""
        out: dict[str, list[Case]] = {i: [] for i in incident_ids}
        async with self.engine.connect() as conn:
            for chunk in _chunks(sorted(set(incident_ids))):
                stmt = (sa.select(cases, incident_members.c.incident_id.label("_incident"))
                        .join(incident_members, incident_members.c.case_id == cases.c.case_id)
                        .where(incident_members.c.incident_id.in_(chunk))
                        .order_by(cases.c.first_seen_at, cases.c.case_id))
                if visible_to is not None:
                    stmt = stmt.where(visible_condition(visible_to))
                for row in await conn.execute(stmt):
                    data = dict(row._mapping)
                    incident = data.pop("_incident")
                    out[incident].append(_row_case(_MappingRow(data)))
        return out

    async def list_incidents(self, query: IncidentQuery) -> list[Incident]:
        """Incidents (not merged away) with at least one member case ``query.visible_to`` may see (and, with
        ``query.status``, open: one such case not closed; closed: none), last changed first."""
        member = (sa.select(incident_members.c.case_id)
                  .join(cases, cases.c.case_id == incident_members.c.case_id)
                  .where(incident_members.c.incident_id == incidents.c.incident_id))
        if query.visible_to is not None:
            member = member.where(visible_condition(query.visible_to))
        conditions: list[sa.ColumnElement[bool]] = [incidents.c.merged_into.is_(None), member.exists()]
        if query.status == "open":
            conditions.append(member.where(cases.c.status != "closed").exists())
        elif query.status == "closed":
            conditions.append(sa.not_(member.where(cases.c.status != "closed").exists()))
        if query.family is not None:
            conditions.append(incidents.c.family == query.family)
        stmt = (sa.select(incidents).where(*conditions)
                .order_by(incidents.c.updated_at.desc(), incidents.c.incident_id)
                .limit(query.limit).offset(query.offset))
        async with self.engine.connect() as conn:
            return [_row_incident(r) for r in await conn.execute(stmt)]

    async def incident_log(self, incident_id: str) -> list[IncidentLogEntry]:
        """The incident's log with the logs of the incidents merged into it, in time order."""
        async with self.engine.connect() as conn:
            ids, frontier = {incident_id}, [incident_id]
            while frontier:
                frontier = [r for r in await conn.scalars(sa.select(incidents.c.incident_id).where(
                    incidents.c.merged_into.in_(frontier))) if r not in ids]
                ids.update(frontier)
            rows = await conn.execute(sa.select(incident_log).where(incident_log.c.incident_id.in_(sorted(ids)))
                                      .order_by(incident_log.c.at, incident_log.c.id))
            return [IncidentLogEntry(r.incident_id, r.at, r.actor, r.action, r.note, dict(r.data or {}))
                    for r in rows]

    async def add_incident_log(self, entries: Sequence[IncidentLogEntry]) -> None:
        if not entries:
            return
        async with self.engine.begin() as conn:
            await conn.execute(sa.insert(incident_log), [e.to_dict() for e in entries])
            await conn.execute(sa.update(incidents).where(
                incidents.c.incident_id.in_(sorted({e.incident_id for e in entries})))
                .values(updated_at=max(e.at for e in entries)))


class _MappingRow:
    """A row's mapping without one of its columns, for :func:`_row_case`."""

    def __init__(self, data: dict[str, Any]) -> None:
        self._mapping = data


class Closable(Protocol):
    async def close(self) -> None: ...


StoreT = TypeVar("StoreT", bound=Closable)


class StoreOpener(Generic[StoreT]):
    """What a store's ``open(url)`` returns: awaitable (``store = await X.open(url)``; the caller closes it) and
    an async context manager (``async with X.open(url) as store``). ``make`` builds the store on the engine,
    after the migrations when ``migrate``; a failed migration disposes of the engine."""

    def __init__(self, make: Callable[[AsyncEngine], StoreT], url: str, migrate: bool, *,
                 pre_ping: bool = True, async_commit: bool = False) -> None:
        self._make, self._url, self._migrate, self._pre_ping = make, url, migrate, pre_ping
        self._async_commit = async_commit
        self._store: StoreT | None = None

    async def _open(self) -> StoreT:
        engine = create_engine(self._url, pre_ping=self._pre_ping, async_commit=self._async_commit)
        try:
            if self._migrate:
                await upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return self._make(engine)

    def __await__(self) -> Generator[Any, None, StoreT]:
        return self._open().__await__()

    async def __aenter__(self) -> StoreT:
        self._store = await self._open()
        return self._store

    async def __aexit__(self, *exc: object) -> None:
        if self._store is not None:
            await self._store.close()
