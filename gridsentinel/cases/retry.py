"""The one retry policy for case-store transactions that lose a race (:class:`StoreConflict`).

A transaction that loses to a concurrent writer (a stale version, a second active case for a cell, a
detection applied meanwhile) is re-run from the start, reading again, up to ``attempts`` times; after that
the caller gives up (the case stage dead-letters the detection: a hot spot, not bad data, and it must not
block the partition). Every path that applies detections uses it: :func:`~gridsentinel.cases.dedup.
apply_detection` (the API tests, backtests, shadow runs) and the batch fallback of
:func:`~gridsentinel.cases.batch.apply_detections` (the case stage). Database outages are not conflicts:
they propagate, and the stage waits for the database.

>>> import asyncio
>>> tries = []
>>> async def flaky() -> str:
...     tries.append(1)
...     if len(tries) < 3:
...         raise StoreConflict("lost a race")
...     return "done"
>>> asyncio.run(ConflictRetry(attempts=3).run(flaky, "detection d1")), len(tries)
('done', 3)
>>> tries.clear()
>>> asyncio.run(ConflictRetry(attempts=2).run(flaky, "detection d1"))
Traceback (most recent call last):
...
gridsentinel.cases.store_protocol.StoreConflict: detection d1: gave up after 2 conflicting attempts
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from gridsentinel.cases.store_protocol import StoreConflict

T = TypeVar("T")


class ConflictCounts:
    """Process-wide counts for /metrics: transaction attempts that lost a race (``conflicts``), and
    transactions that lost every attempt (``gave_up``). Plain ints: the worker's collector reads them."""

    conflicts = 0
    gave_up = 0


@dataclass(frozen=True, slots=True)
class ConflictRetry:
    """Re-run a transaction that raised :class:`StoreConflict`, at most ``attempts`` times in all."""

    # 15 = what the case stage allowed before (three rounds of five): concurrent writers of one cell
    # (several stage instances during a rebalance, the API) rarely collide more than twice in a row.
    attempts: int = 15

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"attempts must be at least 1, got {self.attempts}")

    async def run(self, transaction: Callable[[], Awaitable[T]], what: str) -> T:
        """``await transaction()`` until it does not raise StoreConflict; StoreConflict naming ``what``
        once every attempt lost (other exceptions propagate at once)."""
        last: StoreConflict | None = None
        for _ in range(self.attempts):
            try:
                return await transaction()
            except StoreConflict as exc:
                last = exc
                ConflictCounts.conflicts += 1
        ConflictCounts.gave_up += 1
        raise StoreConflict(f"{what}: gave up after {self.attempts} conflicting attempts") from last


CONFLICT_RETRY = ConflictRetry()
