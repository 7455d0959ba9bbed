"""``/api/v1/patrol/plan``: the inspectors' patrol plan for a day, and ``/dashboard/patrol``, the phone-sized page
that lists it (an inspectors' page links there)."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse

from gridsentinel.analytics.patrol import PatrolError, PatrolParams
from gridsentinel.analytics.patrol_plan import SHIFT_START, store_plan
from gridsentinel.analytics.weather import rain_source
from gridsentinel.api.deps import StateDep, Viewer
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.scope import actor_of

router = APIRouter(tags=["patrol"])
PAGE = Path(__file__).resolve().parent.parent / "static" / "patrol.html"


@router.get("/dashboard/patrol", include_in_schema=False)
async def page() -> FileResponse:
    """The plan page (public like the dashboard: it holds no data, it asks the API with the tab's token)."""
    return FileResponse(PAGE, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


@router.get(
    "/api/v1/patrol/plan",
    summary="Patrol plan: cells in order per inspector for a day",
    description="From the case store: the expected problems per unit-grid cell for the day (the hotspot forecast, "
                "or the last 28 days' mean on a short history: `method` says which), then per inspector an ordered "
                "list of cells with arrival times that fits the shift, chosen greedily by expected problems per "
                "minute of walking and visiting and ordered by 2-opt. Every inspector starts and ends at `depot`. "
                "A user of a center gets a plan of its center's cells, from its cases. "
                "`model_version` names the stored forecast model used (the newest trained before today, at most 7 days "
                "old; see /api/v1/forecast/models), or is null when one was fitted for the plan or the history is "
                "short. Method and evaluation: docs/analytics.md 'Patrol plan'.",
    responses=responses(401, 403, 422),
)
async def plan(
    state: StateDep,
    token: Viewer,
    date_: Annotated[date | None, Query(alias="date", description="The day (default tomorrow, city time).")] = None,
    inspectors: Annotated[int, Query(ge=1, le=200)] = 4,
    shift_h: Annotated[float, Query(gt=0, le=24, description="Shift length in hours.")] = 6.0,
    speed_kmh: Annotated[float, Query(ge=0.5, le=30, description="Walking speed.")] = 4.0,
    visit_min: Annotated[float, Query(ge=0, le=240, description="Minutes spent in each cell.")] = 10.0,
    shift_start: Annotated[str, Query(pattern=r"^([01]?[0-9]|2[0-3]):[0-5][0-9]$")] = SHIFT_START,
    depot_lat: Annotated[float | None, Query(ge=-90, le=90)] = None,
    depot_lon: Annotated[float | None, Query(ge=-180, le=180)] = None,
) -> dict[str, Any]:
    if (depot_lat is None) != (depot_lon is None):
        raise ApiError(422, "give both depot_lat and depot_lon, or neither (default: the grid's centre)")
    depot = (depot_lat, depot_lon) if depot_lat is not None and depot_lon is not None else None
    try:
        return await store_plan(state.case_store(), state.grid, tz=state.catalog.calendar.timezone,
                                now=state.clock(),
                                params=PatrolParams(inspectors=inspectors, shift_min=shift_h * 60,
                                                    speed_kmh=speed_kmh, visit_min=visit_min),
                                day=date_, depot=depot, shift_start=shift_start,
                                grid_prefix=actor_of(token).prefix or None, models=state.models,
                                is_working_day=state.catalog.calendar.is_working_day,
                                rain_source=rain_source(state.settings, state.catalog.calendar.timezone))
    except PatrolError as exc:
        raise ApiError(422, str(exc)) from exc


@router.get(
    "/api/v1/forecast/models",
    summary="The hotspot forecast's stored models, newest first",
    description="Each model's version, when it was trained, the days of case history it learnt from, its families, "
                "sizes, hyperparameters, scikit-learn version and SHA-256 (not the model itself). The API trains "
                "one every night after GS_FORECAST_RETRAIN_AT (city time); `gridsentinel forecast train` does it "
                "by hand. Method: docs/analytics.md 'Stored models'.",
    responses=responses(401, 403, 503),
)
async def models(
    state: StateDep,
    token: Viewer,
    limit: Annotated[int, Query(ge=1, le=200)] = 30,
) -> list[dict[str, Any]]:
    if state.models is None:
        raise ApiError(503, "the model store is not open (the app's lifespan has not run)")
    return [m.summary() for m in await state.models.versions(limit=limit)]
