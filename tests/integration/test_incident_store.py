"""Incidents on the real databases (SQLite file, then PostgreSQL): two batches in different partitions (two
store connections, as two workers have) open two close flood cases at the same moment. Each already has a
linked-to-be neighbour on its own side; whichever commits second must find the first one's case and incident,
so the round ends with ONE incident of four cases, never two (or none)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from gridsentinel.cases.batch import apply_detections
from gridsentinel.cases.categories import load_catalog
from gridsentinel.cases.incidents import LinkPlan, load_families
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.store_protocol import CaseQuery, IncidentQuery, StoreConflict
from gridsentinel.core.records import Detection
from gridsentinel.settings import REPO_ROOT

pytestmark = pytest.mark.integration
CATALOG = load_catalog(REPO_ROOT / "config")
FAMILIES = load_families(REPO_ROOT / "config", CATALOG)
T0 = 1749434400.0
ROUNDS = 12


def _row(i: int) -> list[str]:
    return [f"320582{i:03d}001{k:03d}" for k in range(1, 7)]


def _cells(i: int) -> list[str]:
    """Round ``i``'s cases in a row of six cells, west to east: A1 . C1 | C2 . A2. With the flooding radius (2
    rings) C1 reaches A1 and C2 but not A2, C2 reaches A2 and C1 but not A1: only C1 + C2 tie the sides."""
    row = _row(i)
    return [row[0], row[2], row[3], row[5]]


def _adjacency() -> dict[str, set[str]]:
    adjacency: dict[str, set[str]] = {}
    for i in range(ROUNDS):
        row = _row(i)
        for a, b in zip(row, row[1:], strict=False):
            adjacency.setdefault(a, set()).add(b)
            adjacency.setdefault(b, set()).add(a)
    return adjacency


def _drain(detection_id: str, cell: str) -> Detection:
    return Detection(detection_id=detection_id, source="sensor", detector="drain_level", detector_version="1",
                     kind="drain_overflow", category_code="0103", category_standard="GB/T 30428.2-2013",
                     severity="alarm", device_id=f"dev-{detection_id}", grid_code=cell, observed_at=T0)


def _blocked(detection_id: str, cell: str) -> Detection:
    """A blocked sewer (event:0404): not the ponding's category, so dedup keeps it a case of its own."""
    return Detection(detection_id=detection_id, source="sensor", detector="drain_level", detector_version="1",
                     kind="drain_blockage_suspected", category_code="0404", category_standard="CJ/T 214-2007",
                     severity="warning", device_id=f"dev-{detection_id}", grid_code=cell, observed_at=T0 + 30)


def _ponding(detection_id: str, cell: str) -> Detection:
    return Detection(detection_id=detection_id, source="camera", detector="waterlogging", detector_version="1",
                     kind="waterlogging", category_code="L001", category_standard="", severity="warning",
                     device_id=f"cam-{detection_id}", grid_code=cell, observed_at=T0 + 60)


def test_two_cases_opened_at_once_in_different_partitions_make_one_incident(case_store_url: str) -> None:
    family = FAMILIES.file.families["flooding"]
    assert family.radius_rings == 2
    adjacency = _adjacency()

    async def scenario() -> None:
        west = await SqlCaseStore.open(case_store_url)
        east = await SqlCaseStore.open(case_store_url)  # a second engine: another worker's connections
        try:
            for i in range(ROUNDS):
                a1, c1, c2, a2 = _cells(i)
                # the outer cases first, one at a time (5 rings apart: no incident yet)
                await apply_detections([_drain(f"r{i}-a1", a1)], west, CATALOG, adjacency, now=T0, families=FAMILIES)
                await apply_detections([_drain(f"r{i}-a2", a2)], east, CATALOG, adjacency, now=T0, families=FAMILIES)
                # then two batches at once, one per "partition"
                done = await asyncio.gather(
                    apply_detections([_ponding(f"r{i}-c1", c1)], west, CATALOG, adjacency, now=T0 + 60,
                                     families=FAMILIES),
                    apply_detections([_blocked(f"r{i}-c2", c2)], east, CATALOG, adjacency, now=T0 + 60,
                                     families=FAMILIES))
                assert all(a.error is None for batch in done for a in batch), done
            incidents = await west.list_incidents(IncidentQuery(limit=100))
            members = await west.incident_cases([x.incident_id for x in incidents])
            rows = sorted(sorted(c.grid_code for c in cases) for cases in members.values())
            assert rows == [_cells(i) for i in range(ROUNDS)], rows  # one incident of four cases per round
        finally:
            await west.close()
            await east.close()

    asyncio.run(scenario())


def test_linking_survives_a_restart_of_the_store(tmp_path: Path) -> None:
    """An incident is in the database, not in a worker's memory: a new store (a restarted worker) extends it."""
    url = f"sqlite:///{tmp_path / 'cases.db'}"
    adjacency = _adjacency()
    a1, c1, c2, _ = _cells(0)

    async def scenario() -> None:
        async with SqlCaseStore.open(url) as store:
            await apply_detections([_drain("s-a1", a1), _ponding("s-c1", c1)], store, CATALOG, adjacency, now=T0,
                                   families=FAMILIES)
        async with SqlCaseStore.open(url) as store:
            await apply_detections([_blocked("s-c2", c2)], store, CATALOG, adjacency, now=T0 + 60, families=FAMILIES)
            [incident] = await store.list_incidents(IncidentQuery())
            cases = (await store.incident_cases([incident.incident_id]))[incident.incident_id]
            assert sorted(c.grid_code for c in cases) == [a1, c1, c2]

    asyncio.run(scenario())


class _HeldOpen:
    """A store whose transactions, once their work is done, stay open (holding their locks) until
    ``release`` is set: a worker's batch caught between linking and its commit."""

    def __init__(self, store: SqlCaseStore) -> None:
        self.store = store
        self.holding = asyncio.Event()
        self.release = asyncio.Event()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Any]:
        async with self.store.transaction() as tx:
            yield tx
            self.holding.set()
            await self.release.wait()


async def _blocked_or_done(url: str, task: asyncio.Task[Any]) -> str:
    """"waiting" once ``task``'s transaction waits for an advisory lock, "done" once it finished."""
    import asyncpg

    conn = await asyncpg.connect(url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        while not task.done():
            if await conn.fetchval("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted "
                                   "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"):
                return "waiting"
            await asyncio.sleep(0.02)
        return "done"
    finally:
        await conn.close()


def test_linkers_in_far_apart_streets_do_not_wait_and_in_one_street_still_link(
        postgres_url: Callable[[], str]) -> None:
    """Linking locks a family per street (and the streets its cases' rings reach): a batch holding its
    locks until it commits does not hold up a batch in another street, and does hold up (then link with)
    a batch next to it in its own street."""
    url = postgres_url()
    adjacency = _adjacency()
    a1, c1, c2, _ = _cells(0)
    far = _cells(5)[0]  # another street, no rings in common with round 0's

    async def scenario() -> None:
        first, second = await SqlCaseStore.open(url), await SqlCaseStore.open(url)
        try:
            await apply_detections([_drain("a1", a1)], first, CATALOG, adjacency, now=T0, families=FAMILIES)
            held = _HeldOpen(first)
            pending = asyncio.create_task(apply_detections([_ponding("c1", c1)], held, CATALOG,  # type: ignore[arg-type]
                                                           adjacency, now=T0 + 60, families=FAMILIES))
            await held.holding.wait()  # c1 linked with a1 (an incident), not committed, locks held

            elsewhere = asyncio.create_task(apply_detections([_drain("far", far)], second, CATALOG, adjacency,
                                                             now=T0 + 60, families=FAMILIES))
            far_state = await _blocked_or_done(url, elsewhere)
            nearby = asyncio.create_task(apply_detections([_blocked("c2", c2)], second, CATALOG, adjacency,
                                                          now=T0 + 60, families=FAMILIES))
            near_state = await _blocked_or_done(url, nearby)
            held.release.set()
            done = [await pending, await elsewhere, await nearby]
            assert (far_state, near_state) == ("done", "waiting")
            assert all(a.error is None for batch in done for a in batch), done
            [incident] = await second.list_incidents(IncidentQuery())
            cases = (await second.incident_cases([incident.incident_id]))[incident.incident_id]
            assert sorted(c.grid_code for c in cases) == [a1, c1, c2]  # c2 saw c1 once it was committed
        finally:
            await first.close()
            await second.close()

    asyncio.run(scenario())


def test_a_link_to_an_incident_merged_meanwhile_is_refused(case_store_url: str) -> None:
    """An incident can stretch over streets, so a linker holding other streets' locks may have merged it
    since another linker read it: that linker's plan (a case joining the merged incident) is refused (its
    batch then retries) instead of leaving a case in an incident that no longer exists."""
    adjacency = _adjacency()
    west_a, west_c, _, alone = _cells(0)
    east_a, east_c, _, _ = _cells(1)

    async def scenario() -> None:
        async with SqlCaseStore.open(case_store_url) as store:
            for batch in ([_drain("wa", west_a), _ponding("wc", west_c)], [_drain("ea", east_a),
                          _ponding("ec", east_c)], [_drain("alone", alone)]):
                await apply_detections(batch, store, CATALOG, adjacency, now=T0, families=FAMILIES)
            cases = {c.grid_code: c.case_id for c in await store.list_cases(CaseQuery(limit=100))}
            links = {}
            for incident in await store.list_incidents(IncidentQuery()):
                for case in (await store.incident_cases([incident.incident_id]))[incident.incident_id]:
                    links[case.grid_code] = incident.incident_id
            west, east = links[west_a], links[east_a]
            assert alone not in links and west != east
            async with store.transaction() as tx:  # a linker elsewhere merges east into west
                await tx.write_incident_links(LinkPlan(merged=[(east, west)]), T0 + 60)
            with pytest.raises(StoreConflict):  # a linker that read east before the merge
                async with store.transaction() as tx:
                    await tx.write_incident_links(LinkPlan(joined=[(cases[alone], east)]), T0 + 60)
            async with store.transaction() as tx:  # joining the surviving incident is fine
                await tx.write_incident_links(LinkPlan(joined=[(cases[alone], west)]), T0 + 60)
            members = (await store.incident_cases([west]))[west]
            assert sorted(c.grid_code for c in members) == sorted([west_a, west_c, east_a, east_c, alone])

    asyncio.run(scenario())
