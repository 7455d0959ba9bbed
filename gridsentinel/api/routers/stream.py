"""``/api/v1/cases/stream``: case events as server-sent events, fed by the in-process hub."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse

from gridsentinel.api.deps import CaseReader, StateDep
from gridsentinel.api.errors import responses
from gridsentinel.api.hub import CaseEventHub
from gridsentinel.api.scope import actor_of, event_visible, sees_everything
from gridsentinel.cases.authority import Actor
from gridsentinel.cases.events import CaseEvent

router = APIRouter(prefix="/api/v1/cases", tags=["stream"])

_SSE_EXAMPLE = (
    "id: 6c1b2b9e-3a43-5d2f-9a52-1d3f0f1e2a10:2\nevent: case\n"
    'data: {"event_id":"6c1b2b9e-…:2","type":"dispatch","status":"dispatched",…}\n\n'
)


def sse_frame(event: CaseEvent) -> bytes:
    """One SSE message: ``id`` (for Last-Event-ID), ``event: case``, the event JSON as ``data``."""
    data = json.dumps(event.to_dict(), separators=(",", ":"), sort_keys=True)
    return f"id: {event.event_id}\nevent: case\ndata: {data}\n\n".encode()


async def _frames(
    hub: CaseEventHub,
    *,
    actor: Actor | None,
    grid_prefix: str | None,
    category: str | None,
    notify_only: bool,
    last_event_id: str | None,
    limit: int | None,
    keepalive_s: float,
) -> AsyncIterator[bytes]:
    def accept(e: CaseEvent) -> bool:
        return (
            (grid_prefix is None or e.grid_code.startswith(grid_prefix))
            and (category is None or e.category_key == category)
            and (e.notify or not notify_only)
            and (actor is None or event_visible(actor, e))
        )

    with hub.subscribe(accept, last_event_id) as sub:
        yield f"retry: 3000\n: {hub.subscribers} subscriber(s)\n\n".encode()
        sent = 0
        while limit is None or sent < limit:
            event = await sub.get(timeout=keepalive_s)
            if event is None:
                if sub.closed:  # the server is shutting down: end the response so it can stop
                    return
                yield b": keep-alive\n\n"
                continue
            yield sse_frame(event)
            sent += 1


@router.get(
    "/stream",
    summary="Live case events (server-sent events)",
    description="Each message has `id` (the event id; send it back as `Last-Event-ID` to resume "
    "from the events the server still keeps), `event: case` and the case event JSON as "
    "`data`. Comment lines keep idle connections alive. Only the events of cases the token's holder may see "
    "(its center's, or its department's).",
    response_model=None,
    responses={
        200: {
            "content": {"text/event-stream": {"example": _SSE_EXAMPLE}},
            "description": "An endless event stream (or `limit` events).",
        },
        **responses(401, 403, 422),
    },
)
async def stream(
    state: StateDep,
    token: CaseReader,
    grid_prefix: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,15}$", description="Only events of cells under this prefix.")
    ] = None,
    category: Annotated[
        str | None,
        Query(
            pattern=r"^(component|event):[0-9A-Za-z]{2,8}$", description="Only events of this category key."
        ),
    ] = None,
    notify_only: Annotated[bool, Query(description="Only events the alert policy notifies about.")] = False,
    limit: Annotated[
        int | None, Query(ge=1, le=100_000, description="Close the stream after this many events.")
    ] = None,
    last_event_id: Annotated[str | None, Header(alias="Last-Event-ID", max_length=200)] = None,
) -> StreamingResponse:
    actor = actor_of(token)
    frames = _frames(
        state.hub,
        actor=None if sees_everything(actor) else actor,
        grid_prefix=grid_prefix,
        category=category,
        notify_only=notify_only,
        last_event_id=last_event_id,
        limit=limit,
        keepalive_s=state.config.sse_keepalive_s,
    )
    return StreamingResponse(
        frames,
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )
