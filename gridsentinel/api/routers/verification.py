"""``/api/v1/verification``: the queue of citizen reports held for verification (docs/cases.md, "Report
quality"): list them with every reason, the account's gaming score and signals and the photo; confirm one
(its detection goes to the case stage with the report's original time) or reject it with a reason (the
citizen's Open311 request says so). Dispatchers and up: the queue shows the citizen's identity.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Depends, Path, Query
from fastapi.responses import FileResponse

from gridsentinel.api import citizen_intake as intake
from gridsentinel.api import photos
from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.deps import InspectorDep, StateDep, require
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.privacy import pseudonym, sees_identity
from gridsentinel.api.routers.open311 import send_detection
from gridsentinel.api.schemas.requests import VerificationConfirmIn, VerificationRejectIn
from gridsentinel.api.schemas.responses import (
    AccountQualityListOut,
    AccountQualityOut,
    VerificationDecisionOut,
    VerificationItemOut,
    VerificationListOut,
)
from gridsentinel.api.scope import scope_prefix
from gridsentinel.api.state import ApiState
from gridsentinel.cases.account_quality import by_account
from gridsentinel.cases.report_store import REPORT_STATES, CitizenReport, ReportState
from gridsentinel.cases.scrub import scrub
from gridsentinel.core.records import Detection

router = APIRouter(prefix="/api/v1/verification", tags=["cases"])
_ONE = "|".join(REPORT_STATES)
STATES_PATTERN = rf"^({_ONE})(,({_ONE}))*$"
ReportId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The report id (32 hex digits).")]


QualityReader = Annotated[TokenEntry, Depends(require("viewer", inspector=True))]


def _item(report: CitizenReport, state: ApiState, token: TokenEntry) -> VerificationItemOut:
    """A queue item fit for the caller: as stored for a role that may see identity, else pseudonymised."""
    item = intake.queue_item(report)
    if not sees_identity(token.role):
        key = state.pseudonym_key
        for field, kind in (("account_id", "account"), ("device_id", "device"), ("phone", "phone")):
            if item[field] is not None:
                item[field] = pseudonym(key, kind, str(item[field]))
        item["description"] = scrub(item["description"], state.grid.cells.keys())
        item["identity_shown"] = False
    return VerificationItemOut.model_validate(item)


@router.get(
    "",
    response_model=VerificationListOut,
    summary="The verification queue (dispatcher or higher, or inspector)",
    description="Citizen reports held for verification, oldest first, with every reason of the quality "
    "decision, the gaming score and its signals, the citizen's identity (pseudonyms for an inspector) and a "
    "link to the photo (blurred for an inspector). "
    "`state` lists decided ones instead (comma-separated: held, confirmed, rejected, accepted, duplicate).",
    responses=responses(401, 403, 422),
)
async def list_queue(
    state: StateDep,
    token: InspectorDep,
    states: Annotated[str, Query(alias="state", pattern=STATES_PATTERN,
                                 description="Comma-separated report states.")] = "held",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> VerificationListOut:
    wanted: list[ReportState] = [s for s in REPORT_STATES if s in states.split(",")]
    reports = intake.reports(state)
    prefix = scope_prefix(token)  # a user of a center: the reports in its cells only
    found = await reports.list(wanted, limit=limit, offset=offset, grid_prefix=prefix)
    return VerificationListOut(items=[_item(r, state, token) for r in found],
                               total=await reports.count(wanted, grid_prefix=prefix), limit=limit, offset=offset)


@router.get(
    "/accounts",
    response_model=AccountQualityListOut,
    summary="Report quality per account (viewer or higher, or inspector)",
    description="The citizen reports of the last `days` days in the caller's scope, grouped by account (else "
    "device): reports per state, the gaming score (highest and latest) with the signals behind it, location and "
    "EXIF flags, photos that repeat earlier reports, reports held. Accounts are pseudonyms (`p-...`) for roles "
    "that may not see identity (below dispatcher).",
    responses=responses(401, 403, 422),
)
async def accounts(
    state: StateDep,
    token: QualityReader,
    days: Annotated[float, Query(gt=0, le=90, description="How far back (days).")] = 7.0,
    limit: Annotated[int, Query(ge=1, le=500, description="Accounts to list.")] = 100,
) -> AccountQualityListOut:
    since = state.clock() - days * 86400.0
    found = await intake.reports(state).received(since, grid_prefix=scope_prefix(token))
    identity = sees_identity(token.role)
    key = state.pseudonym_key

    def show(kind: str, value: str) -> str:
        if kind == "anonymous":
            return value
        shown = value if identity else pseudonym(key, kind, value)
        return shown if kind == "account" else f"{kind}:{shown}"

    listed = [AccountQualityOut.model_validate({
        **{f: getattr(a, f) for f in ("account", "reports", "states", "gaming_score_max", "gaming_score_last",
                                      "gaming_signals", "location_flags", "last_report_at", "held_ids")},
        "duplicate_photos": [{"report": r, "duplicate_of": d} for r, d in a.duplicate_photos]})
        for a in by_account(found, show)[:limit]]
    return AccountQualityListOut(accounts=listed, since=since, reports=len(found), identity_shown=identity)


async def _get(state: ApiState, report_id: str, token: TokenEntry | None = None) -> CitizenReport:
    """The report; 404 when there is none or it lies outside the center of ``token``'s holder."""
    report = await intake.reports(state).get(report_id)
    prefix = scope_prefix(token) if token is not None else None
    if report is None or (prefix is not None and not report.grid_code.startswith(prefix)):
        raise ApiError(404, f"no citizen report {report_id}")
    return report


@router.get("/{report_id}", response_model=VerificationItemOut, summary="One citizen report with its reasons",
            responses=responses(401, 403, 404, 422))
async def get_item(report_id: ReportId, state: StateDep, token: InspectorDep) -> VerificationItemOut:
    return _item(await _get(state, report_id, token), state, token)


async def _decide(state: ApiState, report_id: str, to: Literal["confirmed", "rejected"], actor: str,
                  note: str) -> CitizenReport:
    reports = intake.reports(state)
    decided = await reports.decide(report_id, to, by=actor, at=state.clock(), note=note)
    if decided is None:
        current = await _get(state, report_id)
        raise ApiError(409, f"report {report_id} is {current.state}, not held for verification",
                       code="not_held", details={"state": current.state})
    return decided


@router.post(
    "/{report_id}/confirm",
    response_model=VerificationDecisionOut,
    summary="Confirm a held report: its detection goes to the case stage",
    description="The detection keeps the report's original time (`observed_at`). 409 `not_held` when the "
    "report is not (or no longer) held.",
    responses=responses(401, 403, 404, 409, 422, 503),
)
async def confirm(report_id: ReportId, state: StateDep, token: InspectorDep,
                  body: Annotated[VerificationConfirmIn | None, Body()] = None) -> VerificationDecisionOut:
    await _get(state, report_id, token)  # 404 outside the caller's center
    decided = await _decide(state, report_id, "confirmed", f"user:{token.id}", body.note if body else "")
    detection = Detection.from_dict(decided.detection)
    evidence = {**detection.evidence, "verified_by": f"user:{token.id}"}
    try:
        await send_detection(state, Detection.from_dict({**decided.detection, "evidence": evidence}))
    except ApiError:
        await intake.reports(state).undo(report_id, "confirmed")  # back in the queue: confirm again later
        raise
    return VerificationDecisionOut(item=_item(decided, state, token), detection_id=detection.detection_id)


@router.post(
    "/{report_id}/reject",
    response_model=VerificationDecisionOut,
    summary="Reject a held report, with the reason",
    description="The report's Open311 request becomes closed with the reason in `status_notes`. 409 "
    "`not_held` when the report is not (or no longer) held.",
    responses=responses(401, 403, 404, 409, 422),
)
async def reject(report_id: ReportId, body: VerificationRejectIn, state: StateDep,
                 token: InspectorDep) -> VerificationDecisionOut:
    await _get(state, report_id, token)  # 404 outside the caller's center
    decided = await _decide(state, report_id, "rejected", f"user:{token.id}", body.reason)
    return VerificationDecisionOut(item=_item(decided, state, token), detection_id=None)


@router.get(
    "/{report_id}/photo",
    summary="The photo a citizen uploaded with a report (blurred for roles without identity rights)",
    description="Dispatchers and up get the photo as sent; an inspector or a viewer gets a copy with faces and "
    "plates blurred (made on first request). 404 once the photo has been deleted after "
    "`photo_retention_days` (config/quality.yaml).",
    response_class=FileResponse,
    responses={**responses(401, 403, 404, 422), 200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
async def photo(report_id: ReportId, state: StateDep, token: QualityReader) -> FileResponse:
    await _get(state, report_id, token)  # 404 when there is no such report or it lies outside the caller's center
    path = intake.photo_path(state, report_id)
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except (FileNotFoundError, NotADirectoryError):
        days = state.quality.photo_retention_days
        raise ApiError(404, f"no photo for report {report_id} (photos are kept {days:g} days)") from None
    if sees_identity(token.role):
        return FileResponse(path, media_type=intake.photo_type(head), headers=headers)
    from gridsentinel.cases.citizen_photos import UnreadablePhoto

    try:
        blurred = await photos.deidentified(state, path)
    except FileNotFoundError:
        raise ApiError(404, f"no photo for report {report_id}") from None
    except UnreadablePhoto as why:
        raise ApiError(404, f"the photo of report {report_id} cannot be shown: {why}") from None
    return FileResponse(blurred, media_type="image/jpeg", headers=headers)
