"""``/api/v1/reports/weekly``: the weekly coordination report as HTML (what `gridsentinel report weekly` writes),
and ``/dashboard/report``, the dashboard page that shows it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import FileResponse, HTMLResponse

from gridsentinel.analytics.report import store_report
from gridsentinel.analytics.weekly import ReportError, parse_week, render_html
from gridsentinel.api.deps import StateDep, Viewer
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.scope import actor_of, narrow

router = APIRouter(tags=["reports"])
PAGE = Path(__file__).resolve().parent.parent / "static" / "report.html"


@router.get("/dashboard/report", include_in_schema=False)
async def page() -> FileResponse:
    """The dashboard's report page (public like the dashboard: it holds no data, it asks the API)."""
    return FileResponse(PAGE, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


@router.get(
    "/api/v1/reports/weekly",
    summary="The weekly coordination report (HTML)",
    description="The ISO week's figures from the case store: new and closed per day, hotspots, forecast against "
                "actual and next week's forecast, cases stuck between departments with their history, escalations "
                "and refusals, selective-reporting flags with their reasoning, department and center performance. "
                "Without `week`, the current week to date. A user of a center gets its center's cells (a "
                "`center` outside them: 404). Methods: docs/analytics.md.",
    # The page is HTML; errors stay JSON like every route's (so no response_class=HTMLResponse here).
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}, "description": "The report page"},
               **responses(401, 403, 404, 422)},
)
async def weekly(
    state: StateDep,
    token: Viewer,
    week: Annotated[str | None, Query(pattern=r"^[0-9]{4}-W[0-9]{2}$", description="ISO week, e.g. 2026-W49.")] = None,
    center: Annotated[str | None, Query(pattern=r"^[0-9]{1,15}$",
                                        description="Only cells under this grid-code prefix.")] = None,
    forecast: Annotated[bool, Query(description="Include the hotspot forecast (two model fits).")] = True,
) -> HTMLResponse:
    prefix = narrow(center, actor_of(token).prefix)
    if prefix is None:
        raise ApiError(404, f"no center with prefix {center} in your scope")
    try:
        monday = parse_week(week) if week else None
        report = await store_report(state.case_store(), tz=state.catalog.calendar.timezone, monday=monday,
                                    center=prefix or None, now=state.clock(), forecast=forecast)
    except ReportError as exc:
        raise ApiError(422, str(exc)) from exc
    return HTMLResponse(render_html(report), headers={"Cache-Control": "no-store"})
