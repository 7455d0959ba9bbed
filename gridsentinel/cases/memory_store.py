"""An in-memory case store for backtests and tests: same contract as the SQL store, no persistence.

Transactions are serialised by a lock (like SQLite's single writer) and staged, so an exception inside
``transaction()`` leaves the store untouched. The same invariants are enforced: one active case per
(cell, category), each detection id applied once, versions checked on update.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import Any

from gridsentinel.cases.authority import Actor, queues, visible
from gridsentinel.cases.case import Case, CaseChange, LogEntry, evolve
from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.incidents import Incident, IncidentLogEntry, LinkPlan, incident_status
from gridsentinel.cases.store_protocol import BatchWrite, CaseQuery, IncidentQuery, StoreConflict
from gridsentinel.core.records import Detection


class _MemoryTx:
    def __init__(self, store: MemoryCaseStore) -> None:
        self._store = store
        self.cases: dict[str, Case] = {}
        self.logs: list[LogEntry] = []
        self.detections: dict[str, dict[str, Any]] = {}
        self.events: list[tuple[float, CaseEvent]] = []
        self.staged_incidents: dict[str, Incident] = {}
        self.members: dict[str, str] = {}  # case id -> incident id (staged changes)
        self.incident_log: list[IncidentLogEntry] = []

    def _case(self, case_id: str) -> Case | None:
        return self.cases.get(case_id) or self._store._cases.get(case_id)

    def _all_cases(self) -> list[Case]:
        merged = dict(self._store._cases)
        merged.update(self.cases)
        return list(merged.values())

    async def is_applied(self, detection_id: str) -> bool:
        return detection_id in self.detections or detection_id in self._store._detections

    async def active_cases(self, category_key: str, grid_codes: Collection[str]) -> list[Case]:
        cells = set(grid_codes)
        return [c for c in self._all_cases()
                if c.is_active and c.category_key == category_key and c.grid_code in cells]

    async def closed_cases(self, category_key: str, grid_codes: Collection[str],
                           closed_since: float) -> list[Case]:
        cells = set(grid_codes)
        return [c for c in self._all_cases()
                if not c.is_active and c.category_key == category_key and c.grid_code in cells
                and c.closed_at is not None and c.closed_at >= closed_since]

    async def get_case(self, case_id: str) -> Case | None:
        return self._case(case_id)

    async def save(self, change: CaseChange, expected_version: int | None) -> Case:
        case = change.case
        current = self._case(case.case_id)
        if change.created:
            if current is not None:
                raise StoreConflict(f"case {case.case_id} already exists")
            new_version = 1
        else:
            if current is None or current.version != expected_version:
                raise StoreConflict(f"case {case.case_id} changed since it was read")
            new_version = current.version + 1
        if case.is_active:
            clash = [c for c in self._all_cases() if c.is_active and c.case_id != case.case_id
                     and c.grid_code == case.grid_code and c.category_key == case.category_key]
            if clash:
                raise StoreConflict(f"cell {case.grid_code} already has active {case.category_key} case "
                                    f"{clash[0].case_id}")
        saved = evolve(case, version=new_version)
        self.cases[case.case_id] = saved
        self.logs.extend(change.entries)
        return saved

    async def record_detection(self, detection: Detection, case_id: str, outcome: str, at: float) -> None:
        if await self.is_applied(detection.detection_id):
            raise StoreConflict(f"detection {detection.detection_id} already applied")
        self.detections[detection.detection_id] = {**detection.to_dict(), "case_id": case_id,
                                                   "outcome": outcome, "applied_at": at}

    async def add_events(self, events: Sequence[CaseEvent], at: float) -> None:
        if self._store.outbox is not None:
            self.events.extend((at, e) for e in events)

    async def applied_ids(self, detection_ids: Collection[str]) -> set[str]:
        return {d for d in detection_ids if d in self.detections or d in self._store._detections}

    async def candidate_cases(self, category_keys: Collection[str], grid_codes: Collection[str],
                              closed_since: float | None) -> list[Case]:
        keys, cells = set(category_keys), set(grid_codes)
        return [c for c in self._all_cases() if c.category_key in keys and c.grid_code in cells and (
            c.is_active or (closed_since is not None and c.closed_at is not None
                            and c.closed_at >= closed_since))]

    async def write_batch(self, batch: BatchWrite) -> None:
        for case in batch.created:
            if self._case(case.case_id) is not None:
                raise StoreConflict(f"case {case.case_id} already exists")
        for case, expected in batch.updated:
            current = self._case(case.case_id)
            if current is None or current.version != expected:
                raise StoreConflict(f"case {case.case_id} changed since it was read")
        staged = {c.case_id: c for c in batch.created}
        staged.update((c.case_id, c) for c, _ in batch.updated)
        merged = {c.case_id: c for c in self._all_cases()}
        merged.update(staged)
        active = [(c.grid_code, c.category_key) for c in merged.values() if c.is_active]
        if len(active) != len(set(active)):
            raise StoreConflict("a cell would have two active cases of one category")
        ids = [d.detection_id for d, _, _ in batch.applied]
        if len(ids) != len(set(ids)) or await self.applied_ids(ids):
            raise StoreConflict("a detection of the batch is already applied")
        self.cases.update(staged)
        self.logs.extend(batch.entries)
        for det, case_id, outcome in batch.applied:
            self.detections[det.detection_id] = {**det.to_dict(), "case_id": case_id, "outcome": outcome,
                                                 "applied_at": batch.at}
        await self.add_events(batch.events, batch.at)

    async def attention_cases(self, now: float, reminder_severities: Collection[str]) -> list[Case]:
        return sorted((c for c in self._all_cases() if c.is_active and (
            (c.due_at is not None and c.due_at <= now)
            or (c.status == "open" and c.acknowledged_at is None and c.severity in reminder_severities))),
            key=lambda c: c.case_id)

    async def lock_incident_regions(self, family_id: str, regions: Sequence[str]) -> None:
        return None  # transactions are serialised by the store's lock

    async def family_cases(self, category_keys: Collection[str], grid_codes: Collection[str],
                           known: Collection[str] = ()) -> list[Case]:
        keys, cells, skip = set(category_keys), set(grid_codes), set(known)
        return [c for c in self._all_cases() if c.is_active and c.category_key in keys and c.grid_code in cells
                and c.case_id not in skip]

    async def incident_links(self, case_ids: Collection[str]) -> dict[str, str]:
        merged = {**self._store._members, **self.members}
        return {c: merged[c] for c in case_ids if c in merged}

    async def incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]:
        merged = {**self._store._incidents, **self.staged_incidents}
        return {i: merged[i] for i in incident_ids if i in merged}

    async def write_incident_links(self, plan: LinkPlan, at: float) -> None:
        known = {**self._store._incidents, **self.staged_incidents}
        for incident in plan.created:
            if incident.incident_id in known:
                raise StoreConflict(f"incident {incident.incident_id} already exists")
            self.staged_incidents[incident.incident_id] = incident
        members = {**self._store._members, **self.members}
        for loser, survivor in plan.merged:
            for case_id, incident_id in members.items():
                if incident_id == loser:
                    self.members[case_id] = survivor
            self.staged_incidents[loser] = replace(known[loser], merged_into=survivor, updated_at=at)
        for case_id, incident_id in plan.joined:
            if case_id in members:
                raise StoreConflict(f"case {case_id} is already in incident {members[case_id]}")
            self.members[case_id] = incident_id
        known = {**self._store._incidents, **self.staged_incidents}
        for incident_id in plan.touched() - {m for m, _ in plan.merged}:
            self.staged_incidents[incident_id] = replace(known[incident_id], updated_at=at)
        self.incident_log.extend(plan.log)

    def commit(self) -> None:
        self._store._incidents.update(self.staged_incidents)
        self._store._members.update(self.members)
        self._store._incident_log.extend(self.incident_log)
        self._store._cases.update(self.cases)
        for entry in self.logs:
            self._store._logs.setdefault(entry.case_id, []).append(entry)
        self._store._detections.update(self.detections)
        if self._store.outbox is not None:
            self._store.outbox.update({e.event_id: (at, e) for at, e in self.events})


class MemoryCaseStore:
    """Cases, logs and applied detections in dicts."""

    def __init__(self, *, outbox: bool = False) -> None:
        """With ``outbox`` the case events are kept until :meth:`mark_published` (like the SQL store);
        without it (backtests) they are only returned to the caller."""
        self.outbox: dict[str, tuple[float, CaseEvent]] | None = {} if outbox else None
        self._cases: dict[str, Case] = {}
        self._logs: dict[str, list[LogEntry]] = {}
        self._detections: dict[str, dict[str, Any]] = {}
        self._incidents: dict[str, Incident] = {}
        self._members: dict[str, str] = {}
        self._incident_log: list[IncidentLogEntry] = []
        self._lock = asyncio.Lock()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[_MemoryTx]:
        async with self._lock:
            tx = _MemoryTx(self)
            yield tx
            tx.commit()

    async def get_case(self, case_id: str) -> Case | None:
        return self._cases.get(case_id)

    async def case_log(self, case_id: str) -> list[LogEntry]:
        return list(self._logs.get(case_id, []))

    async def log_entries(self, actions: Collection[str], *, since: float, until: float) -> list[LogEntry]:
        found = [e for entries in self._logs.values() for e in entries
                 if e.action in actions and since <= e.at < until]
        return sorted(found, key=lambda e: (e.at, e.case_id, e.seq))

    async def case_detections(self, case_id: str) -> list[dict[str, object]]:
        rows = [d for d in self._detections.values() if d["case_id"] == case_id]
        return sorted(rows, key=lambda d: (d["observed_at"], d["detection_id"]))

    async def list_cases(self, query: CaseQuery) -> list[Case]:
        def keep(c: Case) -> bool:
            return ((query.grid_prefix is None or c.grid_code.startswith(query.grid_prefix))
                    and (query.statuses is None or c.status in query.statuses)
                    and (query.category_key is None or c.category_key == query.category_key)
                    and (query.category_keys is None or c.category_key in query.category_keys)
                    and (query.opened_from is None or c.opened_at >= query.opened_from)
                    and (query.opened_to is None or c.opened_at < query.opened_to)
                    and (query.visible_to is None or visible(query.visible_to, c))
                    and (query.queue is None or query.queue in queues(
                        c, query.queue_center or "", now=query.now or 0.0)))
        found = sorted(filter(keep, self._cases.values()), key=lambda c: (-c.opened_at, c.case_id))
        return found[query.offset:query.offset + query.limit]

    async def pending_events(self, *, created_before: float | None = None,
                             limit: int = 1000) -> list[CaseEvent]:
        items = (self.outbox or {}).values()
        return [e for at, e in items if created_before is None or at < created_before][:limit]

    async def mark_published(self, event_ids: Collection[str]) -> None:
        for event_id in event_ids:
            (self.outbox or {}).pop(event_id, None)

    async def durable(self) -> None:
        """Nothing to wait for: a memory store has no disk (and loses everything in a crash anyway)."""

    async def incident_of(self, case_id: str) -> str | None:
        return self._members.get(case_id)

    async def get_incident(self, incident_id: str) -> Incident | None:
        seen: set[str] = set()
        incident = self._incidents.get(incident_id)
        while incident is not None and incident.merged_into is not None and incident.incident_id not in seen:
            seen.add(incident.incident_id)
            incident = self._incidents.get(incident.merged_into)
        return incident

    async def incident_cases(self, incident_ids: Collection[str],
                             visible_to: Actor | None = None) -> dict[str, list[Case]]:
        out: dict[str, list[Case]] = {i: [] for i in incident_ids}
        for case_id, incident_id in self._members.items():
            case = self._cases.get(case_id)
            if incident_id in out and case is not None and (visible_to is None or visible(visible_to, case)):
                out[incident_id].append(case)
        for found in out.values():
            found.sort(key=lambda c: (c.first_seen_at, c.case_id))
        return out

    async def list_incidents(self, query: IncidentQuery) -> list[Incident]:
        members = await self.incident_cases(list(self._incidents), query.visible_to)

        def keep(incident: Incident) -> bool:
            shown = members[incident.incident_id]
            if incident.merged_into is not None or not shown:
                return False
            if query.family is not None and incident.family != query.family:
                return False
            return query.status is None or incident_status(shown) == query.status

        found = sorted(filter(keep, self._incidents.values()), key=lambda i: (-i.updated_at, i.incident_id))
        return found[query.offset:query.offset + query.limit]

    async def incident_log(self, incident_id: str) -> list[IncidentLogEntry]:
        ids = {incident_id}
        while True:
            more = {i.incident_id for i in self._incidents.values() if i.merged_into in ids} - ids
            if not more:
                break
            ids |= more
        return sorted((e for e in self._incident_log if e.incident_id in ids), key=lambda e: e.at)

    async def add_incident_log(self, entries: Sequence[IncidentLogEntry]) -> None:
        self._incident_log.extend(entries)
        for entry in entries:
            if entry.incident_id in self._incidents:
                self._incidents[entry.incident_id] = replace(self._incidents[entry.incident_id],
                                                             updated_at=max(entry.at, self._incidents[
                                                                 entry.incident_id].updated_at))

    def all_cases(self) -> list[Case]:
        """Every case, for backtests and tests."""
        return sorted(self._cases.values(), key=lambda c: (c.opened_at, c.case_id))
