"""``/api/v1/me`` (who the token belongs to: role, center, department, the role ladder) and
``/api/v1/centers`` (the centers the holder is shown, with each one's queue counts)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from gridsentinel.api.auth import LADDER, ROLES
from gridsentinel.api.deps import CaseReader, StateDep
from gridsentinel.api.errors import responses
from gridsentinel.api.scope import actor_of, sees_everything
from gridsentinel.api.stats import queue_counts
from gridsentinel.cases.authority import QUEUES, center_level, center_prefix, parent_center
from gridsentinel.cases.centers import in_scope, related
from gridsentinel.cases.handovers import HANDOVER_ACTIONS, HandoverCounts, count_handovers

router = APIRouter(prefix="/api/v1", tags=["centers"])


class CenterRef(BaseModel):
    id: str = Field(description="The center id, level:prefix (street:320582004).")
    level: str = Field(description="city, district, street or community.")
    prefix: str = Field(description="The grid-code prefix the center owns.")
    parent: str | None = Field(description="The center one level up (None for the city).")
    name: str = Field(description="From the grid's GeoJSON when it names the center, else level and prefix.")


class MeOut(BaseModel):
    name: str = Field(description="The user (actor user:<name> in case logs).")
    role: str
    center: CenterRef | None = Field(description="The user's center; null: the whole city.")
    department: str | None = Field(description="A department user's department (routing key).")
    department_name: str | None
    ladder: list[str] = Field(description="The role ladder, lowest first (citizen and department are off it).")
    roles: list[str] = Field(description="Every role.")
    queues: list[str] = Field(description="The queue names GET /api/v1/cases?queue= takes.")


class CenterOut(CenterRef):
    cells: int = Field(description="Grid cells the center owns.")
    relation: str = Field(description="own, ancestor or descendant (of the user's center); city-wide: descendant.")
    queues: dict[str, int] | None = Field(
        description="Cases in each queue of this center (only those the user sees); null for a center above "
                    "the user's (its queues hold other centers' cases).")
    handovers: dict[str, int] | None = Field(
        description="Hand-overs of the period (`days` before now): escalated_in / escalated_out, "
                    "coordination_requested / coordination_received, handed_back / handed_back_in, refusals "
                    "(docs/cases.md); null for a center above the user's.")


class CentersOut(BaseModel):
    items: list[CenterOut]
    now: float = Field(description="The time the overdue counts were taken at (Unix s).")
    since: float = Field(description="Start of the hand-over counts' period (Unix s): `days` before `now`.")


def _ref(state: Any, center: str) -> CenterRef:
    info = state.centers.get(center)
    if info is not None:
        return CenterRef(id=info.id, level=info.level, prefix=info.prefix, parent=info.parent, name=info.name)
    # a center the grid does not (or no longer) hold: still say what it is
    return CenterRef(id=center, level=center_level(center), prefix=center_prefix(center),
                     parent=parent_center(center), name=f"{center_level(center)} {center_prefix(center)}")


@router.get("/me", response_model=MeOut, summary="Who the token belongs to: role, center, department",
            responses=responses(401, 403))
async def me(state: StateDep, token: CaseReader) -> MeOut:
    dept = state.catalog.routing.departments.get(token.department or "")
    return MeOut(name=token.id, role=token.role, center=_ref(state, token.center) if token.center else None,
                 department=token.department, department_name=dept.name if dept else None, ladder=list(LADDER),
                 roles=list(ROLES), queues=list(QUEUES))


@router.get("/centers", response_model=CentersOut, summary="The centers you are shown, with queue counts",
            description="Your center, the centers above it and those below it (every center for a city-wide "
                        "user), from the unit grid. `queues` counts, per center at or below yours, the cases "
                        "of each queue that you may see.", responses=responses(401, 403))
async def centers(
    state: StateDep,
    token: CaseReader,
    days: Annotated[float, Query(gt=0, le=3660, description="Period of the hand-over counts, in days.")] = 30,
) -> CentersOut:
    actor = actor_of(token)
    now = state.clock()
    since = now - days * 86400
    handovers = count_handovers(await state.case_store().log_entries(HANDOVER_ACTIONS, since=since, until=now))
    shown = related(state.centers, token.center)
    counted = in_scope(state.centers, token.center)
    counts = await queue_counts(state.case_store(), counted, now=now,
                                actor=None if sees_everything(actor) else actor)
    own = token.center
    items = []
    for center in shown:
        info = state.centers[center]
        relation = "own" if center == own else "descendant" if center in counted else "ancestor"
        items.append(CenterOut(**_ref(state, center).model_dump(), cells=info.cells, relation=relation,
                               queues={str(q): n for q, n in counts[center].items()} if center in counts else None,
                               handovers=(handovers[center].to_dict() if center in handovers else
                                          HandoverCounts().to_dict()) if center in counted else None))
    return CentersOut(items=items, now=now, since=since)
