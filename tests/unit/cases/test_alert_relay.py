"""The alerts agent without Faust: notified events delivered once, silent ones not decoded, bad ones dead-lettered."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.stage import NOTIFY_HEADER, AlertRelay
from gridsentinel.core.records import DeadLetter

pytestmark = pytest.mark.unit


class FakeDelivery:
    def __init__(self) -> None:
        self.delivered: list[str] = []

    async def start(self) -> None:
        pass

    async def deliver(self, event: CaseEvent) -> Any:
        self.delivered.append(event.event_id)

    async def close(self) -> None:
        pass


def event(event_id: str, notify: bool = True) -> CaseEvent:
    return CaseEvent(event_id=event_id, case_id=event_id.split(":")[0], type="opened", at=1.0, actor="system",
                     grid_code="320582110152101", category_key="0103", status="new", severity="alarm",
                     notify=notify)


def test_notified_events_are_delivered_once_and_bad_ones_dead_lettered() -> None:
    delivery, letters = FakeDelivery(), []

    async def dead_letter(letter: DeadLetter, key: bytes | None) -> None:
        letters.append((letter.reason, letter.origin, key))

    async def play() -> None:
        relay = AlertRelay(delivery, dead_letter=dead_letter, origin="t.gs.case-events")
        yes, no = {NOTIFY_HEADER: b"1"}, {NOTIFY_HEADER: b"0"}
        await relay.on_event(b"c1", event("c1:1").to_json(), yes)
        await relay.on_event(b"c1", event("c1:1").to_json(), yes)  # a repeat of the at-least-once stream
        await relay.on_event(b"c2", b"{not json", no)  # not to be told: not even decoded
        await relay.on_event(b"c3", b"{not json", yes)
        await relay.on_event(b"c4", event("c4:1").to_json(), {})  # no header (older producers): decoded

    asyncio.run(play())
    assert delivery.delivered == ["c1:1", "c4:1"]
    assert letters == [("bad_record", "t.gs.case-events", b"c3")]
