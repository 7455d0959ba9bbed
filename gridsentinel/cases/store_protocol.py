"""What the case logic needs from a case store: one interface, two implementations.

:class:`~gridsentinel.cases.memory_store.MemoryCaseStore` (backtests, tests) and
:class:`~gridsentinel.cases.store.SqlCaseStore` (SQLite, PostgreSQL). Everything inside one
``transaction()`` commits together or not at all; a write that loses a race (a second open case for one
cell and category, a detection id already applied, a case changed since it was read) raises
:class:`StoreConflict`, and the caller retries the whole transaction.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from gridsentinel.cases.authority import Actor, Queue
from gridsentinel.cases.case import Case, CaseChange, CaseError, LogEntry
from gridsentinel.cases.incidents import IncidentTx
from gridsentinel.core.records import Detection

if TYPE_CHECKING:
    from gridsentinel.cases.events import CaseEvent
    from gridsentinel.cases.incidents import Incident, IncidentLogEntry


class StoreConflict(CaseError):
    """A concurrent write won; retry the transaction (the API answers 409 if it does not retry)."""


@dataclass(frozen=True, slots=True)
class CaseQuery:
    """Filters for listing cases; ``None`` means no filter. Times are Unix seconds.

    ``visible_to``: only the cases this actor may see (:func:`gridsentinel.cases.authority.visible`).
    ``queue``: only the cases in this queue of ``queue_center`` at ``now``
    (:func:`gridsentinel.cases.authority.queues`); all three go together.
    """

    grid_prefix: str | None = None
    statuses: tuple[str, ...] | None = None
    category_key: str | None = None
    category_keys: tuple[str, ...] | None = None  # any of these (with category_key: both must hold)
    opened_from: float | None = None
    opened_to: float | None = None
    limit: int = 100
    offset: int = 0
    visible_to: Actor | None = None
    queue: Queue | None = None
    queue_center: str | None = None
    now: float | None = None

    def __post_init__(self) -> None:
        if self.queue is not None and (self.queue_center is None or self.now is None):
            raise ValueError("a queue filter needs queue_center and now")


@dataclass(frozen=True, slots=True)
class IncidentQuery:
    """Filters for listing incidents. ``visible_to``: only incidents with a case this actor may see (and
    ``status`` then counts only those cases)."""

    status: str | None = None  # open | closed
    family: str | None = None
    visible_to: Actor | None = None
    limit: int = 50
    offset: int = 0


class CaseTx(Protocol):
    """One transaction against the case store."""

    async def is_applied(self, detection_id: str) -> bool:
        """Whether this detection id has already been applied to a case."""
        ...

    async def active_cases(self, category_key: str, grid_codes: Collection[str]) -> list[Case]:
        """Cases not closed, of this category, in any of these cells."""
        ...

    async def closed_cases(self, category_key: str, grid_codes: Collection[str],
                           closed_since: float) -> list[Case]:
        """Closed cases of this category in these cells, closed at or after ``closed_since``."""
        ...

    async def get_case(self, case_id: str) -> Case | None:
        ...

    async def save(self, change: CaseChange, expected_version: int | None) -> Case:
        """Insert (``change.created``) or update the case and append its log entries.

        An update succeeds only when the stored version is ``expected_version``; the stored case gets
        ``expected_version + 1`` (a new one gets 1) and is returned.
        """
        ...

    async def record_detection(self, detection: Detection, case_id: str, outcome: str, at: float) -> None:
        """Remember that ``detection`` was applied to ``case_id``; StoreConflict if it already was."""
        ...

    async def add_events(self, events: Sequence[CaseEvent], at: float) -> None:
        """Put the case events of this transaction's change in the outbox (committed with it)."""
        ...

    async def attention_cases(self, now: float, reminder_severities: Collection[str]) -> list[Case]:
        """Active cases past their due time, and open unacknowledged cases of these severities."""
        ...


@dataclass(frozen=True, slots=True)
class BatchWrite:
    """Everything a batch of detections changed, written by :meth:`BatchCaseTx.write_batch` at once.

    ``created`` and ``updated`` hold each case's final state (its version already counts every change the
    batch made); ``updated`` pairs it with the version the batch read, checked like :meth:`CaseTx.save`.
    """

    at: float
    created: Sequence[Case]
    updated: Sequence[tuple[Case, int]]
    entries: Sequence[LogEntry]
    applied: Sequence[tuple[Detection, str, str]]  # (detection, case id, outcome), in order
    events: Sequence[CaseEvent]


class StoreTx(CaseTx, IncidentTx, Protocol):
    """A transaction of a real store (SQL, memory): the case rules' reads and writes, and incident linking."""


class BatchCaseTx(StoreTx, Protocol):
    """A transaction that can read and write for a whole batch of detections in a few statements."""

    async def applied_ids(self, detection_ids: Collection[str]) -> set[str]:
        """Which of these detection ids have already been applied."""
        ...

    async def candidate_cases(self, category_keys: Collection[str], grid_codes: Collection[str],
                              closed_since: float | None) -> list[Case]:
        """Active cases of these categories in these cells, and the closed ones closed at or after
        ``closed_since`` (none when it is None). The SQL store locks them until the commit."""
        ...

    async def write_batch(self, batch: BatchWrite) -> None:
        """Insert the created cases, update the others (version-checked), append the log entries, record
        the applied ids and put the events in the outbox. StoreConflict if any invariant breaks."""
        ...


class IncidentReader(Protocol):
    """The incidents' read side and audit log (cases/incidents.py; linking itself runs in a CaseTx)."""

    async def incident_of(self, case_id: str) -> str | None:
        """The incident the case belongs to, if any."""
        ...

    async def get_incident(self, incident_id: str) -> Incident | None:
        """The incident, following ``merged_into`` to the one that lives on."""
        ...

    async def incident_cases(self, incident_ids: Collection[str],
                             visible_to: Actor | None = None) -> dict[str, list[Case]]:
        ...

    async def list_incidents(self, query: IncidentQuery) -> list[Incident]:
        ...

    async def incident_log(self, incident_id: str) -> list[IncidentLogEntry]:
        ...

    async def add_incident_log(self, entries: Sequence[IncidentLogEntry]) -> None:
        ...


class CaseStore(IncidentReader, Protocol):
    """A case store: hands out transactions, answers the API's reads (incidents' too)."""

    def transaction(self) -> AbstractAsyncContextManager[StoreTx]:
        ...

    async def get_case(self, case_id: str) -> Case | None:
        ...

    async def case_log(self, case_id: str) -> list[LogEntry]:
        ...

    async def case_detections(self, case_id: str) -> list[dict[str, object]]:
        """The detections applied to a case: detection fields plus ``outcome`` and ``applied_at``."""
        ...

    async def list_cases(self, query: CaseQuery) -> list[Case]:
        """Cases matching ``query``, newest opened first."""
        ...

    async def log_entries(self, actions: Collection[str], *, since: float, until: float) -> list[LogEntry]:
        """Log entries of any case with one of ``actions``, ``since`` <= at < ``until``, in time order."""
        ...


class Outbox(Protocol):
    """The publishing side of the outbox (the cases stage): read what is pending, drop what went out."""

    async def pending_events(self, *, created_before: float | None = None,
                             limit: int = 1000) -> list[CaseEvent]:
        ...

    async def mark_published(self, event_ids: Collection[str]) -> None:
        ...

    async def durable(self) -> None:
        """Return once every transaction committed before the call is on disk (the stage acks its input
        only after this)."""
        ...
