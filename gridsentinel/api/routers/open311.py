"""``/open311/v2``: Open311 GeoReport v2 (JSON only) on top of the case store.

Services are the case categories (``service_code`` = category key, e.g. ``event:0103``); a service
request is a case (``service_request_id`` = case id). A citizen's POST becomes a ``citizen`` detection
produced to ``gs.detections`` (keyed by its dedup region, like every detector's), so the case stage
applies it in the partition that owns the region, with the same dedup as sensors and cameras: several
reports of one problem share one request id. The POST answers a ``token`` (and the request id when the
case stage applied the report within a short wait); ``tokens/{token}.json`` resolves it later. See
docs/api.md for the mapping.

Scope: a citizen reads every request (the public view Open311 is for); a staff token of a center reads its
center's requests only (any other is 404 / left out), like the rest of the API.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import datetime, timedelta
from typing import Annotated, Any
from urllib.parse import parse_qsl
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from fastapi import APIRouter, Header, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.datastructures import UploadFile

from gridsentinel.api import citizen_intake as intake
from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.deps import Open311Reader, Open311Writer, StateDep
from gridsentinel.api.errors import ApiError, responses, validation_details
from gridsentinel.api.routers.cases import unix
from gridsentinel.api.schemas.requests import Open311RequestIn
from gridsentinel.api.schemas.responses import (
    Open311PostResult,
    Open311Request,
    Open311Service,
    Open311ServiceDefinition,
    Open311Token,
)
from gridsentinel.api.scope import actor_of, sees_everything
from gridsentinel.api.state import ApiState
from gridsentinel.cases.authority import Actor, visible
from gridsentinel.cases.case import ACTIVE_STATUSES, Case
from gridsentinel.cases.report_store import CitizenReport
from gridsentinel.cases.store import SqlCaseStore, applied_detections
from gridsentinel.cases.store_protocol import CaseQuery, CaseStore
from gridsentinel.core.records import Detection

router = APIRouter(prefix="/open311/v2", tags=["open311"])
MAX_RANGE = timedelta(days=90)
MAX_RESULTS = 1000
CITIZEN_SEVERITY = "warning"
# Identical reports (same reporter, same content) without an Idempotency-Key within this window are one
# detection: a double tap or an app's retry does not count twice.
RESUBMIT_WINDOW_S = 600
TOKEN_PREFIX = "citizen:"  # detection id = prefix + token
_POLL_S = 0.05
_OUTCOME_NOTICE = {
    "opened": "a new case was opened",
    "attached": "added to an existing case",
    "merged": "added to an existing case nearby",
    "reopened": "a recently closed case was reopened",
    "late": "added to a case closed after your report",
    "duplicate": "already received",
    "pending": "received; the request id follows at tokens/{token}.json",
    "held": "{held}",
    "duplicate_photo": "the same photo was already reported (request {earlier}); added to it",
    "rejected": "already received; {notes}",
}
PHOTO_FIELD = "media"  # the multipart part holding the photo (as Open311 clients name it)


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


def report_as_open311(report: CitizenReport, state: ApiState, *, request_id: str,
                      duplicate_of: str | None = None) -> Open311Request:
    """A citizen report that has no case (held, rejected, or not yet applied) as an Open311 request."""
    tz = ZoneInfo(state.catalog.calendar.timezone)
    policy = state.catalog.policies.get(report.category_key)
    return Open311Request(
        service_request_id=request_id,
        status="closed" if report.state == "rejected" else "open",
        status_notes=intake.status_notes(report, duplicate_of=duplicate_of),
        service_name=policy.spec.name if policy else report.category_key,
        service_code=report.category_key,
        description=report.description or (policy.spec.name if policy else report.category_key),
        agency_responsible=None,
        service_notice=None,
        requested_datetime=_iso(report.received_at, tz) or "",
        updated_datetime=_iso(report.decided_at or report.received_at, tz) or "",
        expected_datetime=None,
        address=state.grid.names.get(report.grid_code),
        address_id=report.grid_code,
        zipcode=None,
        lat=report.lat,
        long=report.lon,
        media_url=report.detection.get("evidence", {}).get("media_url"),
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
            keywords=f"{p.spec.type},{p.spec.code},{p.spec.standard},{p.spec.name_zh}",
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


def _scope(entry: TokenEntry) -> Actor | None:
    """Whom to filter requests for: None for a citizen (the public view) and a city-wide staff user."""
    actor = actor_of(entry)
    return None if entry.role == "citizen" or sees_everything(actor) else actor


def _shown(entry: TokenEntry, case: Case) -> bool:
    scope = _scope(entry)
    return scope is None or visible(scope, case)


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
    token: Open311Reader,
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
        out: list[Open311Request] = []
        for rid in _split(service_request_id)[:MAX_RESULTS]:
            case = await store.get_case(rid)
            if case is None and intake.REPORT_ID.fullmatch(rid):  # a report's token (held, rejected, ...)
                case, shown = await _report_request(state, rid, token)
                out += [shown] if shown is not None else []
            if case is not None and _shown(token, case):
                out.append(to_open311(case, state))
        return out
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
                statuses=statuses, category_key=code, opened_from=start, opened_to=end, limit=MAX_RESULTS,
                visible_to=_scope(token),
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
    service_request_id: Annotated[str, Path(max_length=64)], state: StateDep, token: Open311Reader
) -> list[Open311Request]:
    store = state.case_store()
    case = await store.get_case(service_request_id)
    if case is None and intake.REPORT_ID.fullmatch(service_request_id):
        # a report's token: held for verification, rejected, a duplicate photo, or waiting for its case
        case, shown = await _report_request(state, service_request_id, token)
        if shown is not None:
            return [shown]
    if case is None or not _shown(token, case):
        raise ApiError(404, f"no request {service_request_id}")
    media = None
    for d in await store.case_detections(case.case_id):
        evidence = d.get("evidence")
        if isinstance(evidence, dict) and evidence.get("media_url"):
            media = str(evidence["media_url"])
            break
    return [to_open311(case, state, media)]


async def _report_request(state: ApiState, report_id: str,
                          holder: TokenEntry) -> tuple[Case | None, Open311Request | None]:
    """A report's case when it has one, else the report itself as a request (None, None: no such report, or
    one outside the holder's center)."""
    reports = intake.reports(state)
    report = await reports.get(report_id)
    if report is None:
        return None, None
    first = await intake.original(reports, report)
    scope = _scope(holder)
    if scope is not None and not first.grid_code.startswith(scope.prefix):
        return None, None
    duplicate_of = first.report_id if first is not report else None
    found = await applied_as(state.case_store(), first.detection_id)
    if found is not None:
        return await state.case_store().get_case(found[0]), None
    return None, report_as_open311(first, state, request_id=report_id, duplicate_of=duplicate_of)


async def _read_body(request: Request, state: ApiState) -> tuple[dict[str, Any], bytes | None]:
    """The report's fields and its photo (a ``media`` file part of a multipart body), if any."""
    ctype = request.headers.get("content-type", "").split(";")[0].strip().lower()
    limit = state.config.max_report_bytes if ctype == "multipart/form-data" else state.config.max_body_bytes
    body = await request.body()
    if len(body) > limit:
        raise ApiError(413, f"request body larger than {limit} bytes")
    if ctype == "multipart/form-data":
        return await _read_multipart(request, limit)
    return _read_fields(body, ctype), None


async def _read_multipart(request: Request, limit: int) -> tuple[dict[str, Any], bytes | None]:
    form = await request.form(max_files=1, max_fields=50, max_part_size=limit)
    try:
        fields: dict[str, Any] = {}
        photo: bytes | None = None
        for name, value in form.multi_items():
            if isinstance(value, UploadFile):
                if name != PHOTO_FIELD:
                    raise ApiError(400, f"unexpected file part {name!r}; send the photo as {PHOTO_FIELD!r}")
                photo = await value.read()
            else:
                fields[name] = value
        return fields, photo or None
    finally:
        await form.close()


def _read_fields(body: bytes, ctype: str) -> dict[str, Any]:
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
        f"unsupported content type {ctype!r}; use application/x-www-form-urlencoded, application/json, or "
        f"multipart/form-data (with the photo as a {PHOTO_FIELD!r} file part)",
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


def citizen_detection_id(report: Open311RequestIn, reporter: str, idempotency_key: str | None,
                         now: float, photo: bytes | None = None) -> str:
    """Same report content (photo included) from the same reporter with the same ``Idempotency-Key`` →
    same id, so a retried POST is applied once. Without a key the id comes from the content and the
    :data:`RESUBMIT_WINDOW_S` window the report falls in.

    >>> from gridsentinel.api.schemas.requests import Open311RequestIn
    >>> r = Open311RequestIn.model_validate({"service_code": "event:0103", "address_string": "x"})
    >>> citizen_detection_id(r, "t-app", None, 1000.0) == citizen_detection_id(r, "t-app", None, 1100.0)
    True
    >>> citizen_detection_id(r, "t-app", "k1", 0.0) == citizen_detection_id(r, "t-app", "k2", 0.0)
    False
    """
    content = json.dumps(report.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))
    if photo is not None:
        content += "\nphoto " + hashlib.sha256(photo).hexdigest()
    scope = f"key\n{idempotency_key}" if idempotency_key else f"window\n{int(now // RESUBMIT_WINDOW_S)}"
    digest = hashlib.sha256(f"{reporter}\n{scope}\n{content}".encode()).hexdigest()[:32]
    return TOKEN_PREFIX + digest


async def applied_as(store: CaseStore, detection_id: str) -> tuple[str, str] | None:
    """(case id, dedup outcome) of a detection the case stage applied, or None when it has not (yet)."""
    if isinstance(store, SqlCaseStore):
        col = applied_detections.c
        async with store.engine.connect() as conn:
            row = (await conn.execute(sa.select(col.case_id, col.outcome)
                                      .where(col.detection_id == detection_id))).first()
        return (str(row.case_id), str(row.outcome)) if row is not None else None
    applied = getattr(store, "_detections", {})  # the memory store keeps applied detections by id
    found = applied.get(detection_id)
    return (str(found["case_id"]), str(found["outcome"])) if found else None


async def wait_applied(store: CaseStore, detection_id: str, wait_s: float) -> tuple[str, str] | None:
    """(case id, dedup outcome) once the case stage applied the detection, or None after ``wait_s``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        found = await applied_as(store, detection_id)
        if found is not None or loop.time() >= deadline:
            return found
        await asyncio.sleep(_POLL_S)


def _token(token: str) -> str:
    if len(token) != 32 or any(c not in "0123456789abcdef" for c in token):
        raise ApiError(404, f"no token {token}")
    return token


@router.get(
    "/tokens/{token}.json",
    response_model=list[Open311Token],
    summary="Open311: the request id of a posted report",
    description="`service_request_id` is null until the case stage has applied the report (usually "
    "within a second or two).",
    responses=responses(401, 403, 404),
)
async def get_token(
    token: Annotated[str, Path(max_length=64)], state: StateDep, holder: Open311Reader
) -> list[Open311Token]:
    detection_id = TOKEN_PREFIX + _token(token)
    report = await intake.reports(state).get(token)
    if report is not None:  # a duplicate photo resolves to the case of the report it repeats
        first = await intake.original(intake.reports(state), report)
        scope = _scope(holder)
        if scope is not None and not first.grid_code.startswith(scope.prefix):
            raise ApiError(404, f"no token {token}")
        detection_id = first.detection_id
    store = state.case_store()
    found = await applied_as(store, detection_id)
    if found is not None and _scope(holder) is not None:
        case = await store.get_case(found[0])
        if case is None or not _shown(holder, case):
            raise ApiError(404, f"no token {token}")
    return [Open311Token(token=token, service_request_id=found[0] if found else None)]


@router.post(
    "/requests.json",
    status_code=201,
    response_model=list[Open311PostResult],
    summary="Open311: report a problem (dispatcher or citizen token)",
    description="Form-encoded (as the spec says), JSON, or multipart with the photo as a `media` file "
    "part. The report first passes the citizen intake (docs/cases.md, \"Report quality\"): 429 "
    "`rate_limited` over the account's or device's rate limit; a report whose checks flag it is held "
    "for verification (`service_request_id` = its token); the same photo as an earlier report is "
    "attached to it. Otherwise the report becomes a `citizen` detection "
    "in the cell containing the point, sent to the case stage and deduplicated there like any "
    "other detection. The answer has a `token` and, when the case stage applied the report "
    "within a short wait, the id of the case it went into (`service_request_id`, else null: "
    "`GET tokens/{token}.json` gives it later). Send an `Idempotency-Key` header to make a "
    "retried POST harmless; without one, the same content from the same reporter within 10 "
    "minutes is one report.",
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {"$ref": "#/components/schemas/Open311RequestIn"}
                },
                "multipart/form-data": {
                    "schema": {"allOf": [
                        {"$ref": "#/components/schemas/Open311RequestIn"},
                        {"type": "object", "properties": {PHOTO_FIELD: {
                            "type": "string", "format": "binary",
                            "description": "The photo (JPEG/PNG): its EXIF position and time are checked, "
                                           "and it is compared with recent reports' photos."}}},
                    ]},
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
    responses=responses(400, 401, 403, 413, 422, 429, 503),
)
async def post_request(
    request: Request,
    state: StateDep,
    token: Open311Writer,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=200)] = None,
) -> JSONResponse:
    raw, photo = await _read_body(request, state)
    try:
        report = Open311RequestIn.model_validate(raw)
    except ValidationError as exc:
        raise ApiError(422, "request body is invalid", code="validation_error",
                       details=validation_details(exc, ("body",))) from None
    policy = state.catalog.policies.get(report.service_code)
    if policy is None:
        raise ApiError(400, f"unknown service_code {report.service_code!r}", code="unknown_service_code")
    grid_code, lat, lon = _locate(state, report)
    if state.detection_sink is None:
        raise ApiError(503, "reports cannot reach the case stage (no detection route configured)",
                       code="unavailable")
    now = state.clock()
    store = state.case_store()
    reports = intake.reports(state)
    ids = [citizen_detection_id(report, token.id, idempotency_key, now, photo)]
    if not idempotency_key:  # the same report just before the window turned
        ids.append(citizen_detection_id(report, token.id, None, now - RESUBMIT_WINDOW_S, photo))
    taken: intake.Intake | None = None
    for candidate in ids:
        known = await reports.get(candidate.removeprefix(TOKEN_PREFIX))
        if known is not None:
            taken = intake.Intake(known, new=False)
            break
        if await applied_as(store, candidate) is not None:  # applied before the intake kept reports
            return await _answer(state, token, candidate, "duplicate", await applied_as(store, candidate),
                                 report.account_id)
    if taken is None:
        evidence = {
            k: v
            for k, v in {
                "media_url": report.media_url,
                "address": report.address_string,
                "account_id": report.account_id,
                "device_id": report.device_id,
                "phone": report.phone,
                "reported_by": token.id,
            }.items()
            if v
        }
        detection = Detection(
            detection_id=ids[0],
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
        taken = await intake.take(
            state, detection, report_id=ids[0].removeprefix(TOKEN_PREFIX), reporter=token.id,
            account_id=report.account_id, device_id=report.device_id, phone=report.phone,
            category_key=policy.key, description=report.description, photo=photo)
    kept = taken.report
    if kept.state == "held":
        return await _answer(state, token, kept.detection_id, "held" if taken.new else "duplicate",
                             (kept.report_id, "held"), report.account_id, held=intake.held_notice(kept))
    if kept.state == "rejected":
        return await _answer(state, token, kept.detection_id, "rejected", (kept.report_id, "rejected"),
                             report.account_id, notes=intake.status_notes(kept))
    if kept.state == "duplicate":
        first = await intake.original(reports, kept)
        found = await applied_as(store, first.detection_id)
        earlier = found[0] if found is not None else first.report_id
        return await _answer(state, token, kept.detection_id, "duplicate_photo", (earlier, "duplicate_photo"),
                             report.account_id, earlier=earlier)
    # accepted or confirmed: its detection goes (or went) to the case stage
    found = await applied_as(store, kept.detection_id)
    if found is not None:
        return await _answer(state, token, kept.detection_id, "duplicate", found, report.account_id)
    await send_detection(state, Detection.from_dict(kept.detection))  # again on a retry: the stage dedups by id
    found = await wait_applied(store, kept.detection_id, state.open311_wait_s)
    outcome = found[1] if found is not None and taken.new else "duplicate" if found is not None else "pending"
    return await _answer(state, token, kept.detection_id, outcome, found, report.account_id)


async def send_detection(state: ApiState, detection: Detection) -> None:
    """Hand a citizen detection to the case stage; 503 when it cannot be queued (the client retries)."""
    if state.detection_sink is None:
        raise ApiError(503, "reports cannot reach the case stage (no detection route configured)",
                       code="unavailable")
    try:
        await state.detection_sink(detection)
    except Exception as exc:  # Kafka away: the citizen may retry (same content, same id)
        raise ApiError(503, f"the report could not be queued ({type(exc).__name__}); retry",
                       code="unavailable") from None


async def _answer(state: ApiState, token: TokenEntry, detection_id: str, outcome: str,
                  found: tuple[str, str] | None, account_id: str | None, **notice: str) -> JSONResponse:
    state.open311_posts[outcome] += 1
    if found is not None and _scope(token) is not None:  # a staff user of a center: not another's case id
        case = await state.case_store().get_case(found[0])  # None: a report's own id (held, rejected)
        if case is not None and not _shown(token, case):
            found = None
    plain = detection_id.removeprefix(TOKEN_PREFIX)
    result = Open311PostResult(
        token=plain,
        service_request_id=found[0] if found is not None else None,
        service_notice=_OUTCOME_NOTICE[outcome].format(token=plain, **notice),
        account_id=account_id,
    )
    return JSONResponse([result.model_dump()], status_code=201)
