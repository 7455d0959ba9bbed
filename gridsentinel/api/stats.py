"""Case counts for the grid map and the metrics (a GROUP BY on SQL, a scan on other stores)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection
from typing import Literal

import sqlalchemy as sa

from gridsentinel.cases.authority import Actor, Queue
from gridsentinel.cases.case import ACTIVE_STATUSES, Case
from gridsentinel.cases.centers import count_queues, representative
from gridsentinel.cases.store import SqlCaseStore, cases, visible_condition
from gridsentinel.cases.store_protocol import CaseQuery, CaseStore

GroupBy = Literal["status", "grid_code", "category_key", "severity"]
_PAGE = 1000


async def count_cases(
    store: CaseStore, by: GroupBy, *, active_only: bool = False, overdue_at: float | None = None
) -> dict[str, int]:
    """Number of cases per value of ``by``; only active ones with ``active_only``; with ``overdue_at``
    only active cases whose due time is before it."""
    if isinstance(store, SqlCaseStore):
        return await _count_sql(store, by, active_only or overdue_at is not None, overdue_at)
    counts: Counter[str] = Counter()
    statuses = ACTIVE_STATUSES if active_only or overdue_at is not None else None
    offset = 0
    while True:
        page = await store.list_cases(CaseQuery(statuses=statuses, limit=_PAGE, offset=offset))
        for case in page:
            if overdue_at is None or (case.due_at is not None and case.due_at < overdue_at):
                counts[case.category_key if by == "category_key" else str(getattr(case, by))] += 1
        if len(page) < _PAGE:
            return dict(counts)
        offset += _PAGE


async def _count_sql(
    store: SqlCaseStore, by: GroupBy, active_only: bool, overdue_at: float | None
) -> dict[str, int]:
    if by == "category_key":
        key: sa.ColumnElement[str] = cases.c.category_type + sa.literal(":") + cases.c.category_code
    else:
        key = cases.c[by]
    stmt = sa.select(key.label("k"), sa.func.count().label("n")).group_by(key)
    if active_only:
        stmt = stmt.where(cases.c.status.in_(ACTIVE_STATUSES))
    if overdue_at is not None:
        stmt = stmt.where(cases.c.due_at < overdue_at)
    async with store.engine.connect() as conn:
        return {str(row.k): int(row.n) for row in await conn.execute(stmt)}


async def queue_counts(store: CaseStore, centers: Collection[str], *, now: float,
                       actor: Actor | None = None) -> dict[str, dict[Queue, int]]:
    """Per center, the number of cases in each of its queues (only the cases ``actor`` sees): one GROUP BY
    on SQL (by what the queues look at), then :func:`gridsentinel.cases.centers.count_queues`."""
    if isinstance(store, SqlCaseStore):
        overdue = sa.and_(cases.c.due_at.is_not(None), cases.c.due_at < now)
        refused = cases.c.refused_at.is_not(None)
        cols = (cases.c.grid_code, cases.c.center, cases.c.home_center, cases.c.status, refused.label("refused"),
                overdue.label("overdue"))
        stmt = sa.select(*cols, sa.func.count().label("n")).where(cases.c.status != "closed").group_by(*cols)
        if actor is not None:
            stmt = stmt.where(visible_condition(actor))
        async with store.engine.connect() as conn:
            rows = list(await conn.execute(stmt))
        groups = [(representative(r.grid_code, r.center, r.home_center, r.status, bool(r.refused),
                                  bool(r.overdue), now=now), int(r.n)) for r in rows]
        return count_queues(groups, centers, now=now)
    found: list[tuple[Case, int]] = []
    offset = 0
    while True:
        page = await store.list_cases(CaseQuery(statuses=ACTIVE_STATUSES, visible_to=actor, limit=_PAGE,
                                                offset=offset))
        found += [(c, 1) for c in page]
        if len(page) < _PAGE:
            return count_queues(found, centers, now=now)
        offset += _PAGE


async def ping(store: CaseStore) -> None:
    """Raise if the store cannot answer a trivial query."""
    await store.list_cases(CaseQuery(limit=1))


async def case_for_detection(store: CaseStore, detection_id: str) -> str | None:
    """The id of the case a detection was applied to, or None when it was not applied."""
    if isinstance(store, SqlCaseStore):
        from gridsentinel.cases.store import applied_detections

        col = applied_detections.c
        async with store.engine.connect() as conn:
            found = await conn.scalar(sa.select(col.case_id).where(col.detection_id == detection_id))
        return str(found) if found is not None else None
    applied = getattr(store, "_detections", {})  # the memory store keeps applied detections by id
    row = applied.get(detection_id)
    return str(row["case_id"]) if row else None
