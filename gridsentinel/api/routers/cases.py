"""``/api/v1/cases``: list with filters and paging, one case with its log and detections, transitions."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Path, Query

from gridsentinel.api.deps import CaseReader, CaseWorker, StateDep
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.privacy import redact_detection
from gridsentinel.api.schemas.requests import TransitionRequest
from gridsentinel.api.schemas.responses import (
    CaseDetailOut,
    CaseEventOut,
    CaseListOut,
    CaseOut,
    ChoiceOut,
    LogEntryOut,
    TransitionOut,
)
from gridsentinel.api.scope import actor_of, sees_everything, visible_case
from gridsentinel.api.state import ApiState
from gridsentinel.cases.authority import QUEUES, Actor, Queue, center_prefix, choices, is_center_id
from gridsentinel.cases.case import NOTE_REQUIRED, STATUSES, NotAllowed, available_actions
from gridsentinel.cases.store_protocol import CaseQuery
from gridsentinel.cases.workflow import transition_case

router = APIRouter(prefix="/api/v1/cases", tags=["cases"])
CaseId = Annotated[
    str,
    Path(
        min_length=1,
        max_length=64,
        description="The case id.",
        examples=["6c1b2b9e-3a43-5d2f-9a52-1d3f0f1e2a10"],
    ),
]


def unix(value: datetime) -> float:
    """Seconds since the epoch; a time without an offset is taken as UTC."""
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def queue_center(state: ApiState, actor: Actor, center: str | None) -> str:
    """The center whose queue is asked for: ``center`` (one the user sees), else the user's own, else (a
    city-wide user) the grid's city center. 404 for a center the user does not see or the grid lacks."""
    if center is None:
        if actor.center is not None:
            return actor.center
        cities = [c for c, info in state.centers.items() if info.level == "city"]
        if len(cities) != 1:
            raise ApiError(422, f"the grid has {len(cities)} city centers; name one with center=",
                           details={"cities": cities})
        return cities[0]
    if not is_center_id(center) or center not in state.centers or not (
            center_prefix(center).startswith(actor.prefix) or center == actor.center):
        raise ApiError(404, f"no center {center}")
    return center


@router.get("", response_model=CaseListOut, summary="List cases",
            description="Only the cases the token's holder may see (its center's cells, and the cases in its "
                        "center's hands; a department user: its department's). With `queue`, the cases in "
                        "that queue of `center` (default: the user's own center; the city's for a city-wide "
                        "user).", responses=responses(401, 403, 404, 422))
async def list_cases(
    state: StateDep,
    token: CaseReader,
    grid_prefix: Annotated[
        str | None,
        Query(
            pattern=r"^[0-9]{1,15}$",
            description="Cells whose code starts with this (district 6, street 9, community 12 digits).",
            examples=["320582004"],
        ),
    ] = None,
    status: Annotated[
        list[str] | None,
        Query(
            description=f"Repeat or comma-separate; one of {', '.join(STATUSES)}.",
            examples=["open,dispatched"],
        ),
    ] = None,
    category: Annotated[
        str | None,
        Query(
            pattern=r"^(component|event):[0-9A-Za-z]{2,8}$",
            description="Category key.",
            examples=["component:0103"],
        ),
    ] = None,
    opened_from: Annotated[
        datetime | None,
        Query(description="Opened at or after (ISO 8601 or Unix s).", examples=["2025-06-09T00:00:00+08:00"]),
    ] = None,
    opened_to: Annotated[datetime | None, Query(description="Opened before (ISO 8601 or Unix s).")] = None,
    limit: Annotated[int, Query(ge=1, le=500, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Cases to skip.")] = 0,
    queue: Annotated[
        Queue | None,
        Query(description=f"Only the cases in this queue of the center: {', '.join(QUEUES)}.",
              examples=["escalated_in"]),
    ] = None,
    center: Annotated[
        str | None,
        Query(pattern=r"^(city|district|street|community):[0-9]{4,12}$",
              description="The center whose queue to list (one the user sees; default the user's own).",
              examples=["street:320582004"]),
    ] = None,
) -> CaseListOut:
    statuses: tuple[str, ...] | None = None
    if status:
        statuses = tuple(s.strip() for item in status for s in item.split(",") if s.strip())
        unknown = sorted(set(statuses) - set(STATUSES))
        if unknown:
            raise ApiError(
                422,
                f"unknown status {', '.join(unknown)}; known: {', '.join(STATUSES)}",
                code="validation_error",
                details=[{"loc": ["query", "status"], "msg": "unknown status", "type": "enum"}],
            )
    if opened_from and opened_to and unix(opened_from) > unix(opened_to):
        raise ApiError(400, "opened_from is after opened_to")
    actor = actor_of(token)
    if center is not None and queue is None:
        raise ApiError(422, "center= names the center of a queue; give queue= too", code="validation_error",
                       details=[{"loc": ["query", "center"], "msg": "needs queue", "type": "value_error"}])
    query = CaseQuery(
        grid_prefix=grid_prefix,
        statuses=statuses,
        category_key=category,
        opened_from=unix(opened_from) if opened_from else None,
        opened_to=unix(opened_to) if opened_to else None,
        limit=limit + 1,
        offset=offset,
        visible_to=None if sees_everything(actor) else actor,
        queue=queue,
        queue_center=queue_center(state, actor, center) if queue is not None else None,
        now=state.clock() if queue is not None else None,
    )
    found = await state.case_store().list_cases(query)
    more = len(found) > limit
    return CaseListOut(
        items=[CaseOut.model_validate(c.to_dict()) for c in found[:limit]],
        limit=limit,
        offset=offset,
        next_offset=offset + limit if more else None,
    )


@router.get(
    "/{case_id}",
    response_model=CaseDetailOut,
    summary="One case with its log and detections",
    description="404 for a case that does not exist and for one outside the holder's scope alike.",
    responses=responses(401, 403, 404, 422),
)
async def get_case(case_id: CaseId, state: StateDep, token: CaseReader) -> CaseDetailOut:
    """``choices`` are for the caller: the same case offers a street's dispatcher, its district's and a
    department different buttons (cases/authority.py decides; the transition route checks it again)."""
    store = state.case_store()
    case = await visible_case(state, token, case_id)
    entries = await store.case_log(case_id)
    # a citizen's account, device and phone: pseudonyms below dispatcher (api/privacy.py)
    detections = [redact_detection(d, token.role, state.pseudonym_key) for d in await store.case_detections(case_id)]
    return CaseDetailOut(
        case=CaseOut.model_validate(case.to_dict()),
        incident_id=await store.incident_of(case_id),
        log=[LogEntryOut.model_validate(e.to_dict()) for e in entries],
        detections=detections,
        allowed_actions=available_actions(case),
        choices=[ChoiceOut(action=c.action, allowed=c.allowed, reason=c.reason)
                 for c in choices(actor_of(token), case, top_level=state.catalog.routing.max_level)],
    )


@router.post(
    "/{case_id}/transitions",
    response_model=TransitionOut,
    summary="Apply a workflow action (dispatcher or higher, or department staff)",
    description="An action not allowed from the case's state answers 409 with code "
    "`invalid_transition` and `details.allowed` listing the allowed actions; an action this user may not "
    "take (docs/cases.md, who may do what) answers 403 with code `not_allowed` and `details.reason`; a case "
    "outside the user's scope 404. `false_alarm` on a machine-found case first records a request: the "
    "answer's `waiting_for` says a second user must confirm it.",
    responses=responses(401, 403, 404, 409, 413, 422),
)
async def transition(
    case_id: CaseId, body: TransitionRequest, state: StateDep, token: CaseWorker
) -> TransitionOut:
    known = state.catalog.routing.departments
    unknown = [d for d in [body.department, *body.assisting_departments] if d is not None and d not in known]
    if unknown:
        raise ApiError(
            422,
            f"unknown department {', '.join(repr(d) for d in unknown)}",
            code="validation_error",
            details={"known": sorted(known)},
        )
    await visible_case(state, token, case_id)  # scope: a case the holder cannot see is not found (404)
    if body.action in NOTE_REQUIRED and not body.note.strip():
        what = "the instructions" if body.action == "hand_back" else "the reason"
        raise ApiError(
            422,
            f"{body.action} needs a note: {what}",
            code="validation_error",
            details=[{"loc": ["body", "note"], "msg": f"required by {body.action}", "type": "missing"}],
        )
    who = actor_of(token)
    store = state.case_store()
    try:
        # Scope (404) and who may act (403) are checked on the case as read in the transition's transaction.
        events = await transition_case(
            store,
            state.catalog,
            case_id,
            body.action,
            actor=who.log_name,
            now=state.clock(),
            note=body.note,
            department=body.department,
            duplicate_of=body.duplicate_of,
            assisting_departments=body.assisting_departments,
            who=who,
        )
    except NotAllowed as exc:
        raise ApiError(
            403,
            str(exc),
            code="not_allowed",
            details={"case_id": exc.case_id, "action": exc.action, "reason": exc.reason},
        ) from None
    await state.emit(events)
    case = await store.get_case(case_id)
    assert case is not None
    waiting = next((e.data.get("waiting_for") for e in events if e.type == "request_false_alarm"), None)
    return TransitionOut(
        case=CaseOut.model_validate(case.to_dict()),
        events=[CaseEventOut.model_validate(e.to_dict()) for e in events],
        waiting_for=str(waiting) if waiting else None,
    )
