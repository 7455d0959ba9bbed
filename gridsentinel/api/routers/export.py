"""``/api/v1/export/cases.csv`` and ``.geojson``: the desensitised case export for other departments
(:mod:`gridsentinel.cases.export`: no personal data, points snapped to the cell's centroid, free text
scrubbed), streamed page by page, limited to what the caller may see like ``GET /api/v1/cases``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.deps import CaseReader, StateDep
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.routers.cases import unix
from gridsentinel.api.scope import actor_of, sees_everything
from gridsentinel.api.state import ApiState
from gridsentinel.cases import export
from gridsentinel.cases.case import STATUSES
from gridsentinel.cases.store_protocol import CaseQuery

router = APIRouter(prefix="/api/v1/export", tags=["export"])
CATEGORY = r"(component|event):[0-9A-Za-z]{2,8}"


def category_names(state: ApiState) -> dict[str, tuple[str, str]]:
    return {k: (p.spec.name, p.spec.name_zh) for k, p in state.catalog.policies.items()}


def split_list(values: list[str] | None, pattern: str, what: str, known: tuple[str, ...] | None = None
               ) -> tuple[str, ...] | None:
    """Repeated and/or comma-separated values; 422 naming the bad one."""
    if not values:
        return None
    items = tuple(dict.fromkeys(v.strip() for item in values for v in item.split(",") if v.strip()))
    bad = [v for v in items if not re.fullmatch(pattern, v) or (known is not None and v not in known)]
    if bad:
        raise ApiError(422, f"bad {what} {', '.join(bad)}" + (f"; known: {', '.join(known)}" if known else ""),
                       code="validation_error",
                       details=[{"loc": ["query", what], "msg": f"bad {what}", "type": "value_error"}])
    return items


async def _export(state: ApiState, token: TokenEntry, fmt: Literal["csv", "geojson"], since: datetime | None,
                  until: datetime | None, category: list[str] | None, status: list[str] | None,
                  grid_prefix: str | None) -> StreamingResponse:
    if since and until and unix(since) >= unix(until):
        raise ApiError(400, "since must be before until")
    actor = actor_of(token)
    query = CaseQuery(  # scope: visible_to, as GET /api/v1/cases (a center's cells and the cases in its hands)
        grid_prefix=grid_prefix,
        statuses=split_list(status, "|".join(STATUSES), "status", STATUSES),
        category_keys=split_list(category, CATEGORY, "category", tuple(state.catalog.policies)),
        opened_from=unix(since) if since else None,
        opened_to=unix(until) if until else None,
        visible_to=None if sees_everything(actor) else actor,
    )
    names = category_names(state)
    store = state.case_store()

    async def body() -> AsyncIterator[str]:
        yield export.csv_header() if fmt == "csv" else export.geojson_head()
        first = True
        async for case in export.iter_cases(store, query):
            row = export.export_row(case, state.grid, names)
            yield export.csv_line(row) if fmt == "csv" else export.geojson_feature(row, first)
            first = False
        if fmt == "geojson":
            yield export.geojson_tail()

    return StreamingResponse(body(), media_type=export.MEDIA_TYPES[fmt], headers={
        "Content-Disposition": f'attachment; filename="gridsentinel-cases.{fmt}"', "Cache-Control": "no-store"})


DESCRIPTION = (
    "Cases the caller may see, newest first, without personal data: no account, phone, device or name (only "
    "counts per source), the point snapped to the centroid of the case's grid cell, and `title`/`headline` "
    "with phone numbers, resident ID numbers and e-mail addresses replaced by `[phone]`, `[id]`, `[email]` "
    "(docs/channels.md, \"Desensitised export\"). Filters: `since`/`until` on the opening time, `category` "
    "and `status` (repeat or comma-separate), `grid_prefix`. Streamed: any size."
)
Since = Annotated[datetime | None, Query(description="Opened at or after (ISO 8601 or Unix s).")]
Until = Annotated[datetime | None, Query(description="Opened before (ISO 8601 or Unix s).")]
Category = Annotated[list[str] | None, Query(description="Category keys (repeat or comma-separate).",
                                             examples=["component:0103,event:0404"])]
Status = Annotated[list[str] | None, Query(description=f"Statuses: {', '.join(STATUSES)}.")]
Prefix = Annotated[str | None, Query(pattern=r"^[0-9]{1,15}$", description="Cells whose code starts with this.")]


@router.get("/cases.csv", summary="Desensitised case export (CSV, UTF-8 with BOM)", description=DESCRIPTION,
            response_class=StreamingResponse,
            responses={200: {"content": {"text/csv": {}}}, **responses(400, 401, 403, 422)})
async def cases_csv(state: StateDep, token: CaseReader, since: Since = None, until: Until = None,
                    category: Category = None, status: Status = None,
                    grid_prefix: Prefix = None) -> StreamingResponse:
    return await _export(state, token, "csv", since, until, category, status, grid_prefix)


@router.get("/cases.geojson", summary="Desensitised case export (GeoJSON FeatureCollection)",
            description=DESCRIPTION, response_class=StreamingResponse,
            responses={200: {"content": {"application/geo+json": {}}}, **responses(400, 401, 403, 422)})
async def cases_geojson(state: StateDep, token: CaseReader, since: Since = None, until: Until = None,
                        category: Category = None, status: Status = None,
                        grid_prefix: Prefix = None) -> StreamingResponse:
    return await _export(state, token, "geojson", since, until, category, status, grid_prefix)
