"""``/healthz`` (no token) and ``/metrics`` (Prometheus text; viewer token)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import PlainTextResponse

from gridsentinel.api.deps import CityViewer, StateDep
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.metrics import CONTENT_TYPE, Metric, render
from gridsentinel.api.schemas.responses import HealthOut
from gridsentinel.api.stats import count_cases, ping
from gridsentinel.cases.case import STATUSES

router = APIRouter(tags=["ops"])


@router.get(
    "/healthz",
    response_model=HealthOut,
    summary="Liveness and case-store check (no token)",
    responses=responses(503),
)
async def healthz(state: StateDep) -> HealthOut:
    try:
        await ping(state.case_store())
    except Exception as exc:  # any failure of the store means "not healthy", with the reason
        raise ApiError(
            503, f"case store unavailable: {type(exc).__name__}: {exc}", code="unavailable"
        ) from exc
    return HealthOut(status="ok", store="ok")


@router.get(
    "/metrics",
    response_model=None,
    summary="Prometheus metrics",
    responses={
        200: {
            "content": {CONTENT_TYPE: {"example": '# TYPE gs_cases gauge\ngs_cases{status="open"} 3\n'}},
            "description": "Prometheus text format 0.0.4 (city-wide figures: a user of a center gets 403)",
        },
        **responses(401, 403),
    },
)
async def metrics(state: StateDep, _: CityViewer) -> PlainTextResponse:
    store = state.case_store()
    now = state.clock()
    by_status = await count_cases(store, "status")
    by_category = await count_cases(store, "category_key", active_only=True)
    by_severity = await count_cases(store, "severity", active_only=True)
    overdue = await count_cases(store, "category_key", overdue_at=now)
    out = [
        Metric(
            "gs_cases",
            "gauge",
            "Cases by status.",
            {(("status", s),): float(by_status.get(s, 0)) for s in STATUSES},
        ),
        Metric(
            "gs_cases_active",
            "gauge",
            "Cases not closed, by category.",
            {(("category", k),): float(v) for k, v in by_category.items()},
        ),
        Metric(
            "gs_cases_active_by_severity",
            "gauge",
            "Cases not closed, by severity.",
            {(("severity", k),): float(v) for k, v in by_severity.items()},
        ),
        Metric(
            "gs_cases_overdue",
            "gauge",
            "Active cases past their due time, by category.",
            {(("category", k),): float(v) for k, v in overdue.items()},
        ),
        Metric(
            "gs_case_events_published_total",
            "counter",
            "Case events handed to SSE subscribers.",
            {(): float(state.hub.published)},
        ),
        Metric("gs_sse_subscribers", "gauge", "Open SSE streams.", {(): float(state.hub.subscribers)}),
        Metric(
            "gs_open311_requests_total",
            "counter",
            "Open311 requests posted, by dedup outcome.",
            {(("outcome", k),): float(v) for k, v in state.open311_posts.items()},
        ),
        Metric(
            "gs_http_requests_total",
            "counter",
            "HTTP requests by method, route and status.",
            {
                (("method", m), ("route", r), ("status", str(c))): float(n)
                for (m, r, c), n in state.requests.items()
            },
        ),
    ]
    return PlainTextResponse(render(out), media_type=CONTENT_TYPE)
