"""``/api/v1/inspector``: patrol inspectors file findings and check resolved cases on site; ``/inspector`` is
their phone page (offline queue included); ``/api/v1/photos/{name}`` serves the photos they send.

A finding becomes an ``inspector`` detection on ``gs.detections`` in the cell holding its point, with the
time the inspector saw it (a report sent hours later, after a dead zone, keeps it) and an id made from the
inspector and the phone's report id, so a retried send is applied once. See docs/channels.md.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends
from fastapi import Path as PathParam
from fastapi.responses import FileResponse

from gridsentinel.api import photos
from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.deps import InspectorDep, StateDep, require
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.intake import submit
from gridsentinel.api.privacy import sees_identity
from gridsentinel.api.routers.cases import CaseId, unix
from gridsentinel.api.schemas.channels import InspectorCheckIn, InspectorReportIn, InspectorReportOut, PhotoIn
from gridsentinel.api.schemas.responses import CaseEventOut, CaseOut, TransitionOut
from gridsentinel.api.scope import visible_case
from gridsentinel.api.state import ApiState
from gridsentinel.cases.intake import Channels, check_observed_at, inspector_detection_id
from gridsentinel.cases.workflow import transition_case
from gridsentinel.core.records import Detection

router = APIRouter(tags=["inspector"])
PAGE = Path(__file__).resolve().parent.parent / "static" / "inspector.html"
PhotoReader = Annotated[TokenEntry, Depends(require("viewer", inspector=True))]


def _channels(state: ApiState) -> Channels:
    if state.channels is None:
        raise RuntimeError("the channels are not loaded (create_app loads them)")
    return state.channels


def _store_photos(state: ApiState, items: list[PhotoIn]) -> list[str]:
    cfg = _channels(state).config.inspector
    if len(items) > cfg.max_photos:
        raise ApiError(400, f"{len(items)} photos; at most {cfg.max_photos}", code="too_many_photos")
    decoded = [photos.decode(p.data, max_bytes=cfg.max_photo_bytes, index=i) for i, p in enumerate(items)]
    return [photos.store(state.settings.run_dir, raw, ext) for raw, ext in decoded]


@router.get("/inspector", include_in_schema=False)
async def page() -> FileResponse:
    """The inspectors' phone page (public like the dashboard: it holds no data; it calls the API with a token)."""
    return FileResponse(PAGE, media_type="text/html; charset=utf-8", headers={"Cache-Control": "no-cache"})


@router.get("/api/v1/inspector/me", summary="Who the token belongs to, and the categories to choose from",
            responses=responses(401, 403))
async def me(state: StateDep, token: InspectorDep) -> dict[str, Any]:
    categories = {f"{c.type}:{c.code}": c.name for c in state.catalog.categories_file.categories}
    return {"id": token.id, "role": token.role, "categories": categories,
            "max_photos": _channels(state).config.inspector.max_photos,
            "max_age_hours": _channels(state).config.inspector.max_age_hours}


@router.post(
    "/api/v1/inspector/reports",
    status_code=201,
    response_model=InspectorReportOut,
    summary="File a finding (inspector, or dispatcher and up)",
    description="JSON with base64 photos. `observed_at` is when the inspector saw the problem: kept as the "
    "detection's time however late the report arrives, refused when in the future (beyond the allowed clock "
    "skew) or older than `inspector.max_age_hours` (channels.yaml, default 72). `report_id` is made by the phone: "
    "the same inspector's same id is one detection, so a retried send is harmless (`outcome: duplicate`).",
    responses=responses(400, 401, 403, 413, 422, 503),
)
async def file_report(body: InspectorReportIn, state: StateDep, token: InspectorDep) -> InspectorReportOut:
    policy = state.catalog.policies.get(body.category)
    if policy is None:
        raise ApiError(400, f"unknown category {body.category!r}", code="unknown_category")
    cell = state.grid.locate(body.lat, body.lon)
    if cell is None:
        raise ApiError(400, f"({body.lat}, {body.lon}) is outside the city's unit grid", code="location_outside_grid")
    now = state.clock()
    observed = unix(body.observed_at)
    cfg = _channels(state).config.inspector
    refused = check_observed_at(observed, now=now, cfg=cfg)
    if refused is not None:
        raise ApiError(400, refused, code="observed_at_out_of_range",
                       details={"observed_at": observed, "now": now, "max_age_hours": cfg.max_age_hours})
    urls = _store_photos(state, body.photos)
    detection_id = inspector_detection_id(token.id, body.report_id)
    evidence: dict[str, Any] = {"report_id": body.report_id, "reported_by": token.id, "photos": urls,
                                "received_at": now}
    if body.accuracy_m is not None:
        evidence["accuracy_m"] = body.accuracy_m
    if urls:
        evidence["media_url"] = urls[0]
    detection = Detection(
        detection_id=detection_id, source="inspector", detector="inspector", detector_version="patrol-v1",
        kind="inspector_report", category_code=policy.spec.code, category_standard=policy.spec.standard,
        severity=cfg.severity, grid_code=cell, observed_at=observed, lat=body.lat, lon=body.lon,
        evidence=evidence, message=(body.note or policy.spec.name)[:200],
    )
    case_id, outcome = await submit(state, detection)
    return InspectorReportOut(report_id=body.report_id, detection_id=detection_id, grid_code=cell,
                              observed_at=observed, case_id=case_id, outcome=outcome, photos=urls)


async def _check(case_id: str, action: str, body: InspectorCheckIn, state: ApiState,
                 token: TokenEntry) -> TransitionOut:
    if action == "rework" and not body.note.strip():
        raise ApiError(422, "rework needs a note saying what is still wrong", code="validation_error",
                       details=[{"loc": ["body", "note"], "msg": "required for rework", "type": "missing"}])
    if (body.lat is None) != (body.lon is None):
        raise ApiError(422, "give both lat and lon, or neither", code="validation_error")
    await visible_case(state, token, case_id)  # 404 for a case outside the inspector's center
    urls = _store_photos(state, body.photos)
    where = f" at {body.lat:.6f},{body.lon:.6f}" if body.lat is not None and body.lon is not None else ""
    note = f"{body.note.strip()} [on-site{where}; photos: {' '.join(urls)}]".strip()
    store = state.case_store()
    events = await transition_case(store, state.catalog, case_id, action, actor=f"user:{token.id}", now=state.clock(),
                                   note=note[:2000])
    await state.emit(events)
    case = await store.get_case(case_id)
    assert case is not None
    return TransitionOut(case=CaseOut.model_validate(case.to_dict()),
                         events=[CaseEventOut.model_validate(e.to_dict()) for e in events])


@router.post(
    "/api/v1/inspector/cases/{case_id}/verify",
    response_model=TransitionOut,
    summary="On-site check passed: verify a resolved case (with photo)",
    description="The workflow's `verify` step (resolved → verified) with the on-site photo(s) and note in the "
    "case log. 409 `invalid_transition` when the case is not resolved.",
    responses=responses(400, 401, 403, 404, 409, 413, 422),
)
async def verify(case_id: CaseId, body: InspectorCheckIn, state: StateDep, token: InspectorDep) -> TransitionOut:
    return await _check(case_id, "verify", body, state, token)


@router.post(
    "/api/v1/inspector/cases/{case_id}/rework",
    response_model=TransitionOut,
    summary="On-site check failed: send a resolved case back (with photo and note)",
    description="The workflow's `rework` step (resolved → dispatched, the handling clock restarts) with the "
    "on-site photo(s) and the note saying what is still wrong.",
    responses=responses(400, 401, 403, 404, 409, 413, 422),
)
async def rework(case_id: CaseId, body: InspectorCheckIn, state: StateDep, token: InspectorDep) -> TransitionOut:
    return await _check(case_id, "rework", body, state, token)


@router.get(
    "/api/v1/photos/{name}",
    summary="A photo sent with an inspector's report or check (blurred for roles without identity rights)",
    description="Dispatchers and up get the photo as sent; an inspector or a viewer gets a JPEG copy with faces "
    "and plates blurred (made on first request), as for citizens' photos.",
    response_class=FileResponse,
    responses={**responses(400, 401, 403, 404), 200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
async def photo(name: Annotated[str, PathParam(max_length=80)], state: StateDep, token: PhotoReader) -> FileResponse:
    if not photos.NAME.fullmatch(name):
        raise ApiError(400, "a photo name is 64 lowercase hex digits and .jpg, .png or .webp")
    path = state.settings.run_dir / "photos" / name
    if not path.is_file():
        raise ApiError(404, f"no photo {name}")
    headers = {"Cache-Control": "private, max-age=86400", "X-Content-Type-Options": "nosniff"}
    if sees_identity(token.role):
        return FileResponse(path, media_type=photos.MEDIA_TYPES[name.rsplit(".", 1)[1]], headers=headers)
    from gridsentinel.cases.citizen_photos import UnreadablePhoto

    try:
        blurred = await photos.deidentified(state, path)
    except UnreadablePhoto as why:
        raise ApiError(404, f"photo {name} cannot be shown: {why}") from None
    return FileResponse(blurred, media_type="image/jpeg", headers=headers)
