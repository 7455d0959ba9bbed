"""/api/v1/cases/stream: server-sent case events from the hub, filtered, resumable."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from gridsentinel.cases.events import CaseEvent

from .conftest import CELL, FAR_CELL, Harness, auth

pytestmark = pytest.mark.unit


def parse_sse(text: str) -> list[dict[str, str]]:
    messages = []
    for block in text.split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line and not line.startswith(":"):
                name, _, value = line.partition(": ")
                fields[name] = value
        if "data" in fields:
            messages.append(fields)
    return messages


async def stream_while(
    c: httpx.AsyncClient,
    api: Harness,
    params: dict[str, object],
    events: list[CaseEvent],
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    """Open the stream, publish ``events`` once it is subscribed, return the finished response."""
    task = asyncio.create_task(
        c.get(
            "/api/v1/cases/stream",
            params=params,  # type: ignore[arg-type]
            headers={**auth("viewer"), **(headers or {})},
        )
    )
    for _ in range(500):
        if api.state.hub.subscribers:
            break
        await asyncio.sleep(0.01)
    api.state.hub.publish_many(events)
    return await asyncio.wait_for(task, 10)


def test_stream_delivers_published_events_in_order_with_filters(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        here = await api.detect("d1")  # open (notify) + nothing else
        api.now += 10
        here += await api.detect("d2")  # evidence (no notify)
        there = await api.detect("d3", grid_code="320582004002001")
        r = await stream_while(c, api, {"limit": 2, "grid_prefix": "320582004001"}, [*here, *there])
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        messages = parse_sse(r.text)
        assert [m["id"] for m in messages] == [e.event_id for e in here]
        assert all(m["event"] == "case" for m in messages)
        assert CaseEvent(**json.loads(messages[0]["data"])) == here[0]

        # Already published events are not sent again (the hub drops replays); new ones are.
        api.now += 10
        fresh = await api.detect("d4", grid_code=FAR_CELL)
        r = await stream_while(
            c, api, {"limit": 1, "notify_only": True, "category": "component:0103"}, [*here, *fresh]
        )
        assert [m["id"] for m in parse_sse(r.text)] == [fresh[0].event_id]

    api.run(scenario)


def test_last_event_id_resumes_from_kept_history(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        events = await api.detect("d1") + await api.detect("d2") + await api.detect("d3")
        api.state.hub.publish_many(events)
        r = await c.get(
            "/api/v1/cases/stream",
            params={"limit": 2},
            headers={**auth("viewer"), "Last-Event-ID": events[0].event_id},
        )
        assert [m["id"] for m in parse_sse(r.text)] == [e.event_id for e in events[1:]]

    api.run(scenario)


def test_idle_stream_sends_keepalive_comments(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        async def publish_later() -> None:
            await asyncio.sleep(0.5)  # keep-alive interval in the harness is 0.2 s
            api.state.hub.publish_many(await api.detect("d1", grid_code=CELL))

        task = asyncio.create_task(publish_later())
        r = await c.get("/api/v1/cases/stream", params={"limit": 1}, headers=auth("viewer"))
        await task
        assert ": keep-alive" in r.text and len(parse_sse(r.text)) == 1

    api.run(scenario)


def test_closing_the_hub_ends_open_streams_after_what_they_hold(api: Harness) -> None:
    """What the server does on shutdown (ApiServer): an SSE response never ends by itself, and uvicorn
    waits for open responses before it stops."""

    async def scenario(c: httpx.AsyncClient) -> None:
        events = await api.detect("d1")
        task = asyncio.create_task(c.get("/api/v1/cases/stream", headers=auth("viewer")))
        for _ in range(500):
            if api.state.hub.subscribers:
                break
            await asyncio.sleep(0.01)
        api.state.hub.publish_many(events)
        api.state.hub.close()
        r = await asyncio.wait_for(task, 30)  # a bound on waiting: without close() it never returns
        assert r.status_code == 200
        assert [m["id"] for m in parse_sse(r.text)] == [e.event_id for e in events]
        late = await asyncio.wait_for(c.get("/api/v1/cases/stream", headers=auth("viewer")), 30)
        assert late.status_code == 200 and parse_sse(late.text) == []  # subscribed after the close

    api.run(scenario)
