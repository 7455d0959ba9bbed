"""``/api/v1/grid``: the unit grid as GeoJSON, with the number of open (active) cases per cell."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query

from gridsentinel.api.deps import StateDep, Viewer
from gridsentinel.api.errors import responses
from gridsentinel.api.schemas.responses import GridOut
from gridsentinel.api.scope import actor_of, narrow
from gridsentinel.api.stats import count_cases

router = APIRouter(prefix="/api/v1/grid", tags=["grid"])


@router.get(
    "",
    response_model=GridOut,
    summary="Grid cells (GeoJSON) with open-case counts",
    description="`properties.open_cases` counts the cell's cases that are not closed. A user of a center gets "
    "its center's cells only.",
    responses=responses(401, 403, 422),
)
async def grid(
    state: StateDep,
    token: Viewer,
    grid_prefix: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,15}$", description="Only cells under this prefix.")
    ] = None,
) -> dict[str, Any]:
    prefix = narrow(grid_prefix, actor_of(token).prefix)
    counts = await count_cases(state.case_store(), "grid_code", active_only=True) if prefix is not None else {}
    features = []
    for feature in state.grid_geojson.get("features", []):
        props = dict(feature.get("properties") or {})
        code = str(props.get("code", ""))
        if prefix is None or not code.startswith(prefix):
            continue
        props["open_cases"] = counts.get(code, 0)
        features.append({**feature, "properties": props})
    out = {k: v for k, v in state.grid_geojson.items() if k != "features"}
    out["features"] = features
    return out
