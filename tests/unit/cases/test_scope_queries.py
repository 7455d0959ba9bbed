"""Scope and queues in the stores: the SQL store's WHERE clauses and the memory store's filter select exactly
the cases :mod:`gridsentinel.cases.authority` says, on generated cases (escalated, refused, overdue, closed,
joint dispatches)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from gridsentinel.api.stats import queue_counts
from gridsentinel.cases.authority import QUEUES, Actor, queues, visible
from gridsentinel.cases.case import STATUSES, Case, CaseChange, new_case_for_test
from gridsentinel.cases.centers import count_queues
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.store_protocol import CaseQuery

pytestmark = pytest.mark.unit
NOW = 1_000_000.0
CELLS = ["320582004001001", "320582004001002", "320582004002001", "320582005001001", "320582005003004",
         "320583001001001"]
DEPARTMENTS = ["drainage", "sanitation", "water_supply"]
CENTERS = ["city:3205", "district:320582", "district:320583", "street:320582004", "street:320582005",
           "community:320582004001", "community:320582005003", "street:320583001"]
ACTORS = [
    Actor("city", "dispatcher"),
    Actor("citizen", "citizen"),
    *(Actor(f"d-{c}", "dispatcher", c) for c in CENTERS),
    Actor("dept", "department", None, "drainage"),
    Actor("dept-street", "department", "street:320582004", "sanitation"),
    Actor("dept-none", "department", "street:320582005", "water_supply"),
]


def generated_cases(n: int, seed: int) -> list[Case]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        cell = rng.choice(CELLS)
        ladder = [f"street:{cell[:9]}", f"district:{cell[:6]}", f"city:{cell[:4]}"]
        level = rng.choice([0, 0, 0, 1, 2])
        home = ladder[0]
        out.append(new_case_for_test(
            case_id=f"c{i:04d}", grid_code=cell, category_code=f"{i:04d}", status=rng.choice(STATUSES),
            opened_at=float(i), center=ladder[level], escalation_level=level,
            # cases escalated before migration 0005 have no home center: the case's center counts
            home_center=rng.choice([home, home, ""]) if level else home,
            refused_at=rng.choice([None, None, NOW - 10]), due_at=rng.choice([None, NOW - 5, NOW + 5]),
            department=rng.choice([None, *DEPARTMENTS]),
            assisting_departments=tuple(rng.sample(DEPARTMENTS, rng.randint(0, 2)))))
    return out


async def compare_stores(url: str) -> None:
    """Seed the same generated cases into the SQL store at ``url`` and a memory store; both must list exactly
    what authority.visible and authority.queues select (also used on PostgreSQL: tests/integration)."""
    cases = generated_cases(400, seed=16)
    memory = MemoryCaseStore()
    async with SqlCaseStore.open(url) as sql:
        for store in (memory, sql):
            async with store.transaction() as tx:
                for case in cases:
                    await tx.save(CaseChange(case, (), created=True), None)

        async def both(query: CaseQuery) -> list[str]:
            from_sql = [c.case_id for c in await sql.list_cases(query)]
            from_memory = [c.case_id for c in await memory.list_cases(query)]
            assert from_sql == from_memory, query
            return sorted(from_sql)

        for actor in ACTORS:
            expected = sorted(c.case_id for c in cases if visible(actor, c))
            assert await both(CaseQuery(visible_to=actor, limit=1000)) == expected, actor
        seen_queues = set()
        street = Actor("s", "dispatcher", "street:320582004")
        for center in CENTERS:
            for queue in QUEUES:
                expected = sorted(c.case_id for c in cases if queue in queues(c, center, now=NOW))
                if expected:
                    seen_queues.add(queue)
                assert await both(CaseQuery(queue=queue, queue_center=center, now=NOW, limit=1000)) \
                    == expected, (center, queue)
                # a queue as a street user sees it
                expected = sorted(c.case_id for c in cases
                                  if queue in queues(c, center, now=NOW) and visible(street, c))
                assert await both(CaseQuery(queue=queue, queue_center=center, now=NOW, visible_to=street,
                                            limit=1000)) == expected
        assert seen_queues == set(QUEUES)  # the generated cases fill every queue somewhere
        counts = count_queues(((c, 1) for c in cases), CENTERS, now=NOW)
        for center in CENTERS:
            for queue in QUEUES:
                assert counts[center][queue] == sum(queue in queues(c, center, now=NOW) for c in cases)
        # the per-center counts of /api/v1/centers: one GROUP BY on SQL, a scan on memory
        for viewer in (None, street, ACTORS[-2]):
            expected_counts = {center: {queue: sum(queue in queues(c, center, now=NOW)
                                                   and (viewer is None or visible(viewer, c)) for c in cases)
                                        for queue in QUEUES} for center in CENTERS}
            assert await queue_counts(sql, CENTERS, now=NOW, actor=viewer) == expected_counts
            assert await queue_counts(memory, CENTERS, now=NOW, actor=viewer) == expected_counts


def test_sql_and_memory_select_what_authority_says(tmp_path: Path) -> None:
    asyncio.run(compare_stores(f"sqlite:///{tmp_path / 'cases.db'}"))


def test_a_queue_filter_needs_its_center_and_time() -> None:
    with pytest.raises(ValueError, match="queue_center and now"):
        CaseQuery(queue="new")
