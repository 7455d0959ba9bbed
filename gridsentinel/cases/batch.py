"""Dedup for a batch of detections in one transaction: same results as one by one, a few statements.

:func:`apply_detections` gives exactly what :func:`~gridsentinel.cases.dedup.apply_detection` called
on each detection in order (with the same ``now``) gives: the same cases, log entries, applied ids,
outbox events and returned events. It reads once for the whole batch (which ids are applied; the active
and recently closed cases of the batch's categories in its cells, locked until the commit), runs the
unchanged per-detection rules (:func:`~gridsentinel.cases.dedup.apply_prepared`) against those cases
in memory, then writes every change in a handful of bulk statements in the same transaction.

The store's invariants stay the store's: the final writes are version-checked, the unique index still
allows one active case per (cell, category) and each detection id once. If a concurrent writer wins
(:class:`StoreConflict`), the whole batch rolls back and is applied one detection at a time.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass, field

from gridsentinel.cases.case import Case, CaseChange, LogEntry, evolve
from gridsentinel.cases.categories import Catalog, UnknownCategory
from gridsentinel.cases.dedup import Prepared, apply_detection, apply_prepared, prepare
from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.gridcode import Adjacency, GridCodeError
from gridsentinel.cases.incidents import IncidentFamilies, link_cases
from gridsentinel.cases.retry import CONFLICT_RETRY, ConflictRetry
from gridsentinel.cases.store_protocol import BatchCaseTx, BatchWrite, CaseStore, StoreConflict
from gridsentinel.core.records import Detection


@dataclass(frozen=True, slots=True)
class Applied:
    """The outcome of one detection of a batch: its events (empty for a replay), or why it was refused:
    ``UnknownCategory``/``GridCodeError`` (dead-letter it) or ``StoreConflict`` (writers kept racing)."""

    detection: Detection
    events: list[CaseEvent] = field(default_factory=list)
    error: UnknownCategory | GridCodeError | StoreConflict | None = None


class _BufferTx:
    """The per-detection transaction interface over the cases loaded for a batch; writes are collected.

    It enforces what the store would (versions, one active case per cell and category, each id once), so
    a batch that would break an invariant fails here or, for rows it did not load, in the database.
    """

    def __init__(self, loaded: Sequence[Case], applied: set[str]) -> None:
        self.cases: dict[str, Case] = {}
        # case ids by (category key, cell): a detection looks only at its own cells, not at the whole batch's
        self._by_cell: dict[tuple[str, str], set[str]] = {}
        self._order: dict[str, int] = {}  # the order of self.cases, which the rules see candidates in
        for case in loaded:
            self._put(case)
        self.read_version: dict[str, int] = {c.case_id: c.version for c in loaded}
        self.created: set[str] = set()
        self.applied = applied
        self.entries: list[LogEntry] = []
        self.recorded: list[tuple[Detection, str, str]] = []
        self.events: list[CaseEvent] = []

    async def is_applied(self, detection_id: str) -> bool:
        return detection_id in self.applied

    def _put(self, case: Case) -> None:
        old = self.cases.get(case.case_id)
        if old is not None:
            self._by_cell[(old.category_key, old.grid_code)].discard(case.case_id)
        self._order.setdefault(case.case_id, len(self._order))
        self.cases[case.case_id] = case
        self._by_cell.setdefault((case.category_key, case.grid_code), set()).add(case.case_id)

    def _in_cells(self, category_key: str, grid_codes: Collection[str]) -> list[Case]:
        """The cases of ``category_key`` in ``grid_codes``, in the order they were loaded or created."""
        ids = set().union(*(self._by_cell.get((category_key, cell), ()) for cell in set(grid_codes)))
        return [self.cases[i] for i in sorted(ids, key=self._order.__getitem__)]

    async def active_cases(self, category_key: str, grid_codes: Collection[str]) -> list[Case]:
        return [c for c in self._in_cells(category_key, grid_codes) if c.is_active]

    async def closed_cases(self, category_key: str, grid_codes: Collection[str],
                           closed_since: float) -> list[Case]:
        return [c for c in self._in_cells(category_key, grid_codes)
                if not c.is_active and c.closed_at is not None and c.closed_at >= closed_since]

    async def get_case(self, case_id: str) -> Case | None:
        return self.cases.get(case_id)

    async def save(self, change: CaseChange, expected_version: int | None) -> Case:
        case = change.case
        current = self.cases.get(case.case_id)
        if change.created:
            if current is not None:
                raise StoreConflict(f"case {case.case_id} already exists")
            saved = evolve(case, version=1)
            self.created.add(case.case_id)
        else:
            if current is None or current.version != expected_version:
                raise StoreConflict(f"case {case.case_id} changed since it was read")
            saved = evolve(case, version=current.version + 1)
        if saved.is_active and any(
                self.cases[i].is_active and i != saved.case_id
                for i in self._by_cell.get((saved.category_key, saved.grid_code), ())):
            raise StoreConflict(f"cell {saved.grid_code} already has an active {saved.category_key} case")
        self._put(saved)
        self.entries.extend(change.entries)
        return saved

    async def record_detection(self, detection: Detection, case_id: str, outcome: str, at: float) -> None:
        if detection.detection_id in self.applied:
            raise StoreConflict(f"detection {detection.detection_id} already applied")
        self.applied.add(detection.detection_id)
        self.recorded.append((detection, case_id, outcome))

    async def add_events(self, events: Sequence[CaseEvent], at: float) -> None:
        self.events.extend(events)

    async def attention_cases(self, now: float, reminder_severities: Collection[str]) -> list[Case]:
        raise NotImplementedError("the escalation sweep does not run in a dedup batch")

    def writes(self, at: float) -> BatchWrite:
        changed = {e.case_id for e in self.entries}
        return BatchWrite(
            at=at,
            created=[self.cases[i] for i in sorted(self.created)],
            updated=[(self.cases[i], self.read_version[i]) for i in sorted(changed - self.created)],
            entries=self.entries, applied=self.recorded, events=self.events)


async def _apply_batch(store: CaseStore, prepared: Sequence[Prepared], catalog: Catalog, adjacency: Adjacency,
                       families: IncidentFamilies | None, now: float) -> list[list[CaseEvent]]:
    keys = {p.resolved.policy.key for p in prepared}
    cells = {cell for p in prepared for cell in p.dist}
    windows = [p.detection.observed_at - p.window_s for p in prepared if p.window_s > 0]
    async with store.transaction() as tx:
        btx: BatchCaseTx = tx  # type: ignore[assignment]  # checked by the caller
        applied = await btx.applied_ids([p.detection.detection_id for p in prepared])
        loaded = await btx.candidate_cases(keys, cells, min(windows) if windows else None)
        buffer = _BufferTx(loaded, applied)
        results = [await apply_prepared(buffer, p, now=now, catalog=catalog) for p in prepared]
        if buffer.recorded:
            writes = buffer.writes(now)
            await btx.write_batch(writes)
            if families:  # the batch's opened and changed cases join their incidents, in this transaction
                await link_cases(btx, [*writes.created, *(c for c, _ in writes.updated)], families, adjacency,
                                 now=now)
    return results


async def apply_detections(detections: Sequence[Detection], store: CaseStore, catalog: Catalog,
                           adjacency: Adjacency, *, now: float,
                           retry: ConflictRetry = CONFLICT_RETRY,
                           families: IncidentFamilies | None = None) -> list[Applied]:
    """Apply ``detections`` in order, in one transaction; one :class:`Applied` per detection, in order.

    Equivalent to ``apply_detection`` on each in turn with the same ``now``. A detection that cannot
    become a case does not stop the others (its ``error`` says why). With ``families``, the cases the batch
    opened or changed are linked into incidents (:func:`~gridsentinel.cases.incidents.link_cases`) in the
    same transaction. When a concurrent writer wins, the
    batch is applied one detection at a time (each with the tries ``retry`` allows); a detection whose tries
    all lose gets ``StoreConflict`` as its error. Database outages (``DBAPIError``, ``OSError``) propagate:
    what committed before them is applied and in the outbox, the rest is not.
    """
    out: list[Applied | None] = []
    prepared: list[Prepared] = []
    for d in detections:
        try:
            prepared.append(prepare(d, catalog, adjacency))
            out.append(None)
        except (UnknownCategory, GridCodeError) as exc:
            out.append(Applied(d, error=exc))
    results: list[list[CaseEvent] | StoreConflict] = []
    if prepared:
        try:
            results = list(await _apply_batch(store, prepared, catalog, adjacency, families, now))
        except StoreConflict:
            results = []
            for p in prepared:  # someone else wrote meanwhile: the per-detection path retries each one
                try:
                    results.append(await apply_detection(p.detection, store, catalog, adjacency, now=now,
                                                          retry=retry, families=families))
                except StoreConflict as exc:
                    results.append(exc)
    it = iter(zip(prepared, results, strict=True))
    final: list[Applied] = []
    for slot in out:
        if slot is not None:
            final.append(slot)
            continue
        p, result = next(it)
        final.append(Applied(p.detection, error=result) if isinstance(result, StoreConflict)
                     else Applied(p.detection, events=result))
    return final
