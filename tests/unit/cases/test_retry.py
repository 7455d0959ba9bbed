"""The one retry policy for case-store conflicts (cases/retry.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from gridsentinel.cases.retry import CONFLICT_RETRY, ConflictRetry
from gridsentinel.cases.store_protocol import StoreConflict

pytestmark = pytest.mark.unit


def _losing(times: int, calls: list[int]) -> Callable[[], Awaitable[str]]:
    async def transaction() -> str:
        calls.append(1)
        if len(calls) <= times:
            raise StoreConflict(f"lost race {len(calls)}")
        return "committed"
    return transaction


def test_a_transaction_that_loses_races_is_run_again_until_it_commits() -> None:
    calls: list[int] = []
    assert asyncio.run(ConflictRetry(attempts=5).run(_losing(4, calls), "detection d1")) == "committed"
    assert len(calls) == 5


def test_after_the_last_attempt_the_conflict_names_what_gave_up() -> None:
    calls: list[int] = []
    with pytest.raises(StoreConflict, match="detection d1: gave up after 3 conflicting attempts") as info:
        asyncio.run(ConflictRetry(attempts=3).run(_losing(10, calls), "detection d1"))
    assert len(calls) == 3
    assert str(info.value.__cause__) == "lost race 3"


def test_other_errors_are_not_retried() -> None:
    calls: list[int] = []

    async def outage() -> None:
        calls.append(1)
        raise OSError("database away")

    with pytest.raises(OSError):
        asyncio.run(CONFLICT_RETRY.run(outage, "batch"))
    assert calls == [1]


def test_the_shared_policy_allows_what_the_case_stage_allowed() -> None:
    assert CONFLICT_RETRY.attempts == 15
    with pytest.raises(ValueError, match="at least 1"):
        ConflictRetry(attempts=0)
