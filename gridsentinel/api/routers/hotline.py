"""``/api/v1/hotline``: the 12345 hotline intake for call-takers (dispatcher or higher).

A call is stored at once with the gazetteer's candidates for its address and the categories suggested from
its text; the call-taker confirms the category (or corrects it) and, when the address did not resolve,
picks a candidate or gives the point. A call whose address stays unresolved waits in the queue
(``GET queue``) until someone places it: only then does its ``hotline`` detection, with the call's own
time, go to ``gs.detections``. See docs/channels.md.
"""

from __future__ import annotations

import uuid
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from fastapi.responses import FileResponse

from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.deps import Dispatcher, StateDep
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.intake import submit
from gridsentinel.api.routers.cases import unix
from gridsentinel.api.schemas.channels import (
    HotlineCallIn,
    HotlineCallOut,
    HotlineConfirmIn,
    HotlineLocateIn,
    HotlineQueueOut,
)
from gridsentinel.api.scope import scope_prefix
from gridsentinel.api.state import ApiState
from gridsentinel.cases.hotline_store import HotlineCall
from gridsentinel.cases.intake import Channels, check_observed_at, hotline_detection_id
from gridsentinel.core.records import Detection

router = APIRouter(prefix="/api/v1/hotline", tags=["hotline"])
CallId = Annotated[str, Path(pattern=r"^[0-9a-f-]{36}$", description="The call id the intake answered.")]
QUEUE_STATUSES = ("pending", "queued")
PAGE = FilePath(__file__).resolve().parent.parent / "static" / "hotline.html"


def _channels(state: ApiState) -> Channels:
    if state.channels is None:
        raise RuntimeError("the channels are not loaded (create_app loads them)")
    return state.channels


def _out(call: HotlineCall, **extra: str | None) -> HotlineCallOut:
    data = call.to_dict()
    data["category"] = data.pop("category_key")
    for key in ("confirmed_by", "confirmed_at", "resolved_by", "resolved_at"):
        data.pop(key)
    return HotlineCallOut.model_validate({**data, **extra})


async def _call(state: ApiState, call_id: str, token: TokenEntry) -> HotlineCall:
    """The call; 404 when there is none, or for a user of a center when the call is not placed in its cells and
    the user did not take it (the 12345 hotline is a city service: calls not placed yet are the city's)."""
    call = await state.hotline_store().get(call_id)
    prefix = scope_prefix(token)
    hidden = prefix is not None and call is not None and call.taken_by != token.id \
        and not (call.grid_code or "").startswith(prefix)
    if call is None or hidden:
        raise ApiError(404, f"no hotline call {call_id}")
    return call


def _locate(state: ApiState, where: HotlineLocateIn) -> tuple[str, float, float, str | None, str] | None:
    """(cell, lat, lon, place name, how) from what the call-taker gave, or None when nothing was given."""
    if where.place:
        gazetteer = _channels(state).gazetteer
        hit = gazetteer.match(where.place) if gazetteer is not None else None
        if hit is None or hit.resolved is None or hit.resolved.score < 1.0:
            raise ApiError(400, f"place {where.place!r} is not a gazetteer name or alias; give lat and lon instead",
                           code="place_not_found")
        p = hit.resolved.place
        return p.grid_code, p.lat, p.lon, p.name, "candidate"
    if (where.lat is None) != (where.lon is None):
        raise ApiError(422, "give both lat and lon", code="validation_error")
    if where.lat is not None and where.lon is not None:
        cell = state.grid.locate(where.lat, where.lon)
        if cell is None:
            raise ApiError(400, f"({where.lat}, {where.lon}) is outside the city's unit grid",
                           code="location_outside_grid")
        return cell, where.lat, where.lon, None, "point"
    if where.grid_code:
        if where.grid_code not in state.grid.cells:
            raise ApiError(400, f"no grid cell {where.grid_code}", code="location_outside_grid")
        lat, lon = state.grid.centroid(where.grid_code)
        return where.grid_code, lat, lon, None, "cell"
    return None


page_router = APIRouter()


@page_router.get("/hotline", include_in_schema=False)
async def page() -> FileResponse:
    """The call-takers' page (public like the dashboard: it holds no data; it calls the API with a token)."""
    return FileResponse(PAGE, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


@router.get("/me", summary="Who the token belongs to, the categories to choose from and whether a gazetteer is "
            "loaded (the call-takers' page)", responses=responses(401, 403))
async def me(state: StateDep, token: Dispatcher) -> dict[str, Any]:
    channels = _channels(state)
    categories = {c.key: {"name": c.name, "name_zh": c.name_zh} for c in state.catalog.categories_file.categories}
    return {"id": token.id, "role": token.role, "center": token.center, "categories": categories,
            "gazetteer": channels.gazetteer is not None, "timezone": state.catalog.calendar.timezone}


@router.post(
    "/calls",
    status_code=201,
    response_model=HotlineCallOut,
    summary="Take a call: store it, resolve its address, suggest its category",
    description="The call is stored at once (`pending`). The answer lists the gazetteer's `candidates` for the "
    "address (best first, with scores), the point and cell when the address resolved, and up to three "
    "`suggestions` (category, confidence, the keywords found). Nothing goes to the case stage before "
    "`confirm`. With a `ticket`, a retried intake answers the call stored the first time.",
    responses=responses(400, 401, 403, 422),
)
async def take_call(body: HotlineCallIn, state: StateDep, token: Dispatcher) -> HotlineCallOut:
    channels = _channels(state)
    now = state.clock()
    called_at = unix(body.called_at) if body.called_at else now
    refused = check_observed_at(called_at, now=now, cfg=channels.config.hotline)
    if refused is not None:
        raise ApiError(400, refused.replace("observed_at", "called_at"), code="called_at_out_of_range")
    match = channels.gazetteer.match(body.address) if channels.gazetteer is not None else None
    suggestions = channels.keywords.suggest(body.text) if channels.keywords is not None else []
    best = match.resolved if match is not None else None
    call = HotlineCall(
        call_id=str(uuid.uuid4()), ticket=body.ticket, text=body.text, address=body.address, called_at=called_at,
        received_at=now, taken_by=token.id, status="pending",
        candidates=[c.to_dict() for c in match.candidates] if match is not None else [],
        suggestions=[s.to_dict() for s in suggestions],
        grid_code=best.place.grid_code if best else None, lat=best.place.lat if best else None,
        lon=best.place.lon if best else None, place=best.place.name if best else None,
        located_by="gazetteer" if best else None,
    )
    stored, created = await state.hotline_store().add(call)
    reason = match.reason if match is not None else "no gazetteer is loaded (config/gazetteer.csv): give the point"
    return _out(stored, resolution=reason if created else None)


async def _send(state: ApiState, call: HotlineCall, who: str) -> HotlineCallOut:
    """Produce the call's detection (its category and place are set) and mark it sent."""
    assert call.category_key and call.grid_code and call.lat is not None and call.lon is not None
    policy = state.catalog.policy(call.category_key)
    detection_id = hotline_detection_id(call.call_id)
    evidence = {k: v for k, v in {
        "call_id": call.call_id, "ticket": call.ticket, "address": call.address, "place": call.place,
        "located_by": call.located_by, "taken_by": call.taken_by, "confirmed_by": who,
        "suggested": [s["category"] for s in call.suggestions], "received_at": call.received_at}.items()
        if v is not None}
    detection = Detection(
        detection_id=detection_id, source="hotline", detector="hotline", detector_version="12345-v1",
        kind="hotline_call", category_code=policy.spec.code, category_standard=policy.spec.standard,
        severity=_channels(state).config.hotline.severity, grid_code=call.grid_code, observed_at=call.called_at,
        lat=call.lat, lon=call.lon, evidence=evidence, message=call.text[:200],
    )
    case_id, outcome = await submit(state, detection)
    sent = await state.hotline_store().update(call, call.status, status="sent", detection_id=detection_id)
    return _out(sent or call, case_id=case_id, outcome=outcome)


@router.post(
    "/calls/{call_id}/confirm",
    response_model=HotlineCallOut,
    summary="Confirm (or correct) a call's category, optionally with its place",
    description="`category` is the suggestion the call-taker accepts or the one they choose instead. A place "
    "given here (`place`: a gazetteer name such as a candidate's; or `lat`/`lon`; or `grid_code`) overrides "
    "the resolved address. With a place the detection goes to the case stage (`status: sent`, with `case_id` "
    "and `outcome` as for a report); without one the call is `queued` until `queue/{call_id}/resolve`. "
    "A call already confirmed answers 409.",
    responses=responses(400, 401, 403, 404, 409, 422, 503),
)
async def confirm(call_id: CallId, body: HotlineConfirmIn, state: StateDep, token: Dispatcher) -> HotlineCallOut:
    call = await _call(state, call_id, token)
    if call.status != "pending":
        raise ApiError(409, f"call {call_id} is already {call.status}", code="already_confirmed",
                       details={"status": call.status, "detection_id": call.detection_id})
    if body.category not in state.catalog.policies:
        raise ApiError(400, f"unknown category {body.category!r}", code="unknown_category")
    located = _locate(state, body)
    changes: dict[str, object] = {"category_key": body.category, "confirmed_by": token.id,
                                  "confirmed_at": state.clock()}
    if located is not None:
        cell, lat, lon, place, how = located
        changes.update(grid_code=cell, lat=lat, lon=lon, place=place, located_by=how)
    placed = located is not None or call.grid_code is not None
    updated = await state.hotline_store().update(call, "pending", status="pending" if placed else "queued",
                                                 **changes)
    if updated is None:
        raise ApiError(409, f"call {call_id} was confirmed meanwhile", code="already_confirmed")
    return await _send(state, updated, token.id) if placed else _out(updated)


@router.get(
    "/queue",
    response_model=HotlineQueueOut,
    summary="Calls waiting: unresolved addresses (queued) and, on request, unconfirmed calls (pending)",
    description="Oldest call first. A queued call leaves the queue when `queue/{call_id}/resolve` places it.",
    responses=responses(401, 403, 422),
)
async def queue(
    state: StateDep,
    token: Dispatcher,
    status: Annotated[str, Query(pattern=r"^(queued|pending)(,(queued|pending))?$",
                                 description="queued (default), pending, or both comma-separated.")] = "queued",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
) -> HotlineQueueOut:
    statuses = tuple(s for s in QUEUE_STATUSES if s in status.split(","))
    found = await state.hotline_store().list(statuses, limit=limit + 1, offset=offset,
                                             grid_prefix=scope_prefix(token))
    return HotlineQueueOut(items=[_out(c) for c in found[:limit]], limit=limit, offset=offset,
                           next_offset=offset + limit if len(found) > limit else None)


@router.get("/calls/{call_id}", response_model=HotlineCallOut, summary="One call",
            responses=responses(401, 403, 404, 422))
async def get_call(call_id: CallId, state: StateDep, token: Dispatcher) -> HotlineCallOut:
    return _out(await _call(state, call_id, token))


@router.post(
    "/queue/{call_id}/resolve",
    response_model=HotlineCallOut,
    summary="Place a queued call: its detection goes to the case stage",
    description="Give `place` (a gazetteer name), `lat`/`lon`, or `grid_code`. The detection keeps the call's "
    "own time. 409 when the call is not queued (still pending: confirm it; already sent).",
    responses=responses(400, 401, 403, 404, 409, 422, 503),
)
async def resolve(call_id: CallId, body: HotlineLocateIn, state: StateDep, token: Dispatcher) -> HotlineCallOut:
    call = await _call(state, call_id, token)
    if call.status != "queued":
        raise ApiError(409, f"call {call_id} is {call.status}, not queued", code="not_queued",
                       details={"status": call.status})
    located = _locate(state, body)
    if located is None:
        raise ApiError(422, "give place, lat and lon, or grid_code", code="validation_error")
    cell, lat, lon, place, how = located
    updated = await state.hotline_store().update(
        call, "queued", grid_code=cell, lat=lat, lon=lon, place=place, located_by=how, resolved_by=token.id,
        resolved_at=state.clock())
    if updated is None:
        raise ApiError(409, f"call {call_id} was resolved meanwhile", code="not_queued")
    return await _send(state, updated, token.id)
