"""``/open311/v2``: Open311 GeoReport v2 (JSON only) on top of the case store.

Services are the case categories (``service_code`` = category key, e.g. ``event:0103``); a service
request is a case (``service_request_id`` = case id). A citizen's POST becomes a ``citizen`` detection
that goes through the same dedup as sensors and cameras, so several reports of one problem share one
request id. See docs/api.md for the mapping.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from gridsentinel.alerts.case import ACTIVE_STATUSES, Case
from gridsentinel.alerts.dedup import apply_detection
from gridsentinel.alerts.events import CaseEvent
from gridsentinel.alerts.store_protocol import CaseQuery
from gridsentinel.api.deps import Open311Reader, Open311Writer, StateDep
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.routers.cases import unix
from gridsentinel.api.schemas.requests import Open311RequestIn
from gridsentinel.api.schemas.responses import (
    Open311PostResult,
    Open311Request,
    Open311Service,
    Open311ServiceDefinition,
)
from gridsentinel.api.state import ApiState
from gridsentinel.api.stats import case_for_detection
from gridsentinel.ingest.records import Detection

router = APIRouter(prefix="/open311/v2", tags=["open311"])
MAX_RANGE = timedelta(days=90)
MAX_RESULTS = 1000
CITIZEN_SEVERITY = "warning"
_OUTCOME_NOTICE = {
    "opened": "a new case was opened",
    "attached": "added to an existing case",
    "merged": "added to an existing case nearby",
    "reopened": "a recently closed case was reopened",
    "late": "added to a case closed after your report",
    "duplicate": "already received",
}


def _iso(ts: float | None, tz: ZoneInfo) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")


def to_open311(case: Case, state: ApiState, media_url: str | None = None) -> Open311Request:
    tz = ZoneInfo(state.catalog.calendar.timezone)
    policy = state.catalog.policies.get(case.category_key)
    dept = state.catalog.routing.departments.get(case.department or "")
    notes = case.status + (f" ({case.closing_reason})" if case.closing_reason else "")
    return Open311Request(
        service_request_id=case.case_id,
        status="closed" if case.status == "closed" else "open",
        status_notes=notes,
        service_name=policy.spec.name if policy else case.category_key,
        service_code=case.category_key,
        description=case.title,
        agency_responsible=dept.name if dept else case.department,
        service_notice=None,
        requested_datetime=_iso(case.opened_at, tz) or "",
        updated_datetime=_iso(case.updated_at, tz) or "",
        expected_datetime=_iso(case.due_at, tz),
        address=state.grid.names.get(case.grid_code),
        address_id=case.grid_code,
        zipcode=None,
        lat=case.lat,
        long=case.lon,
        media_url=media_url,
    )


@router.get(
    "/services.json",
    response_model=list[Open311Service],
    summary="Open311: list services",
    responses=responses(401, 403),
)
async def services(state: StateDep, _: Open311Reader) -> list[Open311Service]:
    return [
        Open311Service(
            service_code=key,
            service_name=p.spec.name,
            description=f"{p.spec.name} ({p.spec.type} {p.spec.code}, {p.spec.standard})",
            metadata=False,
            type="realtime",
            keywords=f"{p.spec.type},{p.spec.code},{p.spec.standard}",
            group=p.spec.type,
        )
        for key, p in state.catalog.policies.items()
    ]


@router.get(
    "/services/{service_code}.json",
    response_model=Open311ServiceDefinition,
    summary="Open311: one service's definition (no extra attributes)",
    responses=responses(401, 403, 404),
)
async def service_definition(
    service_code: Annotated[str, Path(max_length=40, examples=["event:0103"])],
    state: StateDep,
    _: Open311Reader,
) -> Open311ServiceDefinition:
    if service_code not in state.catalog.policies:
        raise ApiError(404, f"no service {service_code}")
    return Open311ServiceDefinition(service_code=service_code, attributes=[])


def _split(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


@router.get(
    "/requests.json",
    response_model=list[Open311Request],
    summary="Open311: query requests",
    description="With `service_request_id` the other filters are ignored (as the spec says). The "
    "date range defaults to the 90 days before `end_date` (or now) and may not exceed "
    "90 days; at most 1000 requests, newest first.",
    responses=responses(400, 401, 403, 422),
)
async def list_requests(
    state: StateDep,
    _: Open311Reader,
    service_request_id: Annotated[
        str | None, Query(max_length=2000, description="Comma-separated request ids.")
    ] = None,
    service_code: Annotated[
        str | None,
        Query(max_length=400, description="Comma-separated service codes.", examples=["event:0103"]),
    ] = None,
    start_date: Annotated[datetime | None, Query(description="Requested at or after (ISO 8601).")] = None,
    end_date: Annotated[datetime | None, Query(description="Requested before (ISO 8601).")] = None,
    status: Annotated[
        str | None,
        Query(
            pattern=r"^(open|closed)(,(open|closed))?$", description="open, closed or both (comma-separated)."
        ),
    ] = None,
) -> list[Open311Request]:
    store = state.case_store()
    if service_request_id:
        ids = _split(service_request_id)[:MAX_RESULTS]
        found = [c for c in [await store.get_case(i) for i in ids] if c is not None]
        return [to_open311(c, state) for c in found]
    end = unix(end_date) if end_date else None
    start = unix(start_date) if start_date else None
    if end is None:
        end = start + MAX_RANGE.total_seconds() if start is not None else state.clock()
    if start is None:
        start = end - MAX_RANGE.total_seconds()
    if start > end:
        raise ApiError(400, "start_date is after end_date")
    if end - start > MAX_RANGE.total_seconds():
        raise ApiError(400, "the date range may not exceed 90 days", code="date_range_too_long")
    wanted = set(_split(status)) or {"open", "closed"}
    statuses = tuple(
        s for s in (*ACTIVE_STATUSES, "closed") if ("closed" if s == "closed" else "open") in wanted
    )
    codes: list[str | None] = [*_split(service_code)] or [None]
    unknown = [c for c in codes if c is not None and c not in state.catalog.policies]
    if unknown:
        raise ApiError(400, f"unknown service_code {', '.join(unknown)}", code="unknown_service_code")
    cases: list[Case] = []
    for code in codes:
        cases += await store.list_cases(
            CaseQuery(
                statuses=statuses, category_key=code, opened_from=start, opened_to=end, limit=MAX_RESULTS
            )
        )
    cases.sort(key=lambda c: (-c.opened_at, c.case_id))
    return [to_open311(c, state) for c in cases[:MAX_RESULTS]]


@router.get(
    "/requests/{service_request_id}.json",
    response_model=list[Open311Request],
    summary="Open311: one request",
    responses=responses(401, 403, 404),
)
async def get_request(
    service_request_id: Annotated[str, Path(max_length=64)], state: StateDep, _: Open311Reader
) -> list[Open311Request]:
    store = state.case_store()
    case = await store.get_case(service_request_id)
    if case is None:
        raise ApiError(404, f"no request {service_request_id}")
    media = None
    for d in await store.case_detections(case.case_id):
        evidence = d.get("evidence")
        if isinstance(evidence, dict) and evidence.get("media_url"):
            media = str(evidence["media_url"])
            break
    return [to_open311(case, state, media)]


async def _read_body(request: Request, limit: int) -> dict[str, Any]:
    body = await request.body()
    if len(body) > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if ctype == "application/json":
        try:
            data = json.loads(body or b"null")
        except ValueError as exc:
            raise ApiError(400, f"body is not JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(400, "body must be a JSON object")
        return data
    if ctype in ("application/x-www-form-urlencoded", ""):
        try:
            return dict(parse_qsl(body.decode("utf-8"), keep_blank_values=False))
        except UnicodeDecodeError:
            raise ApiError(400, "form body is not UTF-8") from None
    raise ApiError(
        415,
        f"unsupported content type {ctype!r}; use application/x-www-form-urlencoded or application/json",
        code="unsupported_media_type",
    )


def _locate(state: ApiState, report: Open311RequestIn) -> tuple[str, float, float]:
    if report.lat is not None and report.long is not None:
        code = state.grid.locate(report.lat, report.long)
        if code is None:
            raise ApiError(
                400,
                f"({report.lat}, {report.long}) is outside the city's unit grid",
                code="location_outside_grid",
            )
        return code, report.lat, report.long
    if report.lat is not None or report.long is not None:
        raise ApiError(400, "give both lat and long", code="location_required")
    address = (report.address_string or "").strip()
    if not address:
        raise ApiError(
            400, "a location is required: lat and long, or address_string", code="location_required"
        )
    by_name = {n.casefold(): c for c, n in state.grid.names.items()}
    code = address if address in state.grid.cells else by_name.get(address.casefold(), "")
    if not code:
        raise ApiError(
            400,
            f"address {address!r} is not a grid code or grid cell name (street addresses "
            "are not geocoded; send lat and long)",
            code="address_not_found",
        )
    lat, lon = state.grid.centroid(code)
    return code, lat, lon


def citizen_detection_id(report: Open311RequestIn, client_key: str) -> str:
    """Same report content and same client key → same id, so a retried POST is applied once."""
    content = json.dumps(report.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    return "citizen:" + hashlib.sha256(f"{client_key}\n{content}".encode()).hexdigest()[:32]


def _outcome(events: list[CaseEvent]) -> str:
    if not events:
        return "duplicate"
    first = events[0]
    if first.type in ("open", "reopen"):
        return "opened" if first.type == "open" else "reopened"
    return {1: "attached", 2: "merged", 3: "late"}.get(int(first.data.get("rule", 1)), "attached")


@router.post(
    "/requests.json",
    status_code=201,
    response_model=list[Open311PostResult],
    summary="Open311: report a problem (dispatcher or citizen token)",
    description="Form-encoded (as the spec says) or JSON. The report becomes a `citizen` detection "
    "in the cell containing the point and is deduplicated like any other detection; the "
    "answer is the id of the case it went into. Send an `Idempotency-Key` header to make "
    "a retried POST harmless.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"$ref": "#/components/schemas/Open311RequestIn"}
                },
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Open311RequestIn"},
                    "example": {
                        "service_code": "event:0103",
                        "lat": 31.87225,
                        "long": 120.55053,
                        "description": "rubble by the road",
                    },
                },
            },
        }
    },
    responses=responses(400, 401, 403, 413, 422),
)
async def post_request(
    request: Request,
    state: StateDep,
    token: Open311Writer,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    raw = await _read_body(request, state.config.max_body_bytes)
    try:
        report = Open311RequestIn.model_validate(raw)
    except ValidationError as exc:
        details = [
            {"loc": ["body", *err["loc"]], "msg": err["msg"], "type": err["type"]} for err in exc.errors()
        ]
        raise ApiError(422, "request body is invalid", code="validation_error", details=details) from None
    policy = state.catalog.policies.get(report.service_code)
    if policy is None:
        raise ApiError(400, f"unknown service_code {report.service_code!r}", code="unknown_service_code")
    grid_code, lat, lon = _locate(state, report)
    now = state.clock()
    detection_id = citizen_detection_id(report, idempotency_key or uuid.uuid4().hex)
    evidence = {
        k: v
        for k, v in {
            "media_url": report.media_url,
            "address": report.address_string,
            "account_id": report.account_id,
            "device_id": report.device_id,
            "reported_by": token.id,
        }.items()
        if v
    }
    detection = Detection(
        detection_id=detection_id,
        source="citizen",
        detector="open311",
        detector_version="georeport-v2",
        kind="citizen_report",
        category_code=policy.spec.code,
        category_standard=policy.spec.standard,
        severity=CITIZEN_SEVERITY,
        grid_code=grid_code,
        observed_at=now,
        lat=lat,
        lon=lon,
        evidence=evidence,
        message=(report.description or policy.spec.name)[:200],
    )
    store = state.case_store()
    events = await apply_detection(detection, store, state.catalog, state.grid.neighbours(), now=now)
    await state.emit(events)
    outcome = _outcome(events)
    state.open311_posts[outcome] += 1
    case_id = events[0].case_id if events else await case_for_detection(store, detection_id)
    if case_id is None:  # applied by nobody: cannot happen after apply_detection returned
        raise ApiError(409, f"detection {detection_id} was not applied; retry", code="conflict")
    result = Open311PostResult(
        service_request_id=case_id, service_notice=_OUTCOME_NOTICE[outcome], account_id=report.account_id
    )
    return JSONResponse([result.model_dump()], status_code=201)
