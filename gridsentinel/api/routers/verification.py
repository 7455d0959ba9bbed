"""``/api/v1/verification``: the queue of citizen reports held for verification (docs/cases.md, "Report
quality"): list them with every reason, the account's gaming score and signals and the photo; confirm one
(its detection goes to the case stage with the report's original time) or reject it with a reason (the
citizen's Open311 request says so). Dispatchers and up: the queue shows the citizen's identity.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Body, Path, Query
from fastapi.responses import FileResponse

from gridsentinel.api import citizen_intake as intake
from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.deps import Dispatcher, StateDep
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.routers.open311 import send_detection
from gridsentinel.api.schemas.requests import VerificationConfirmIn, VerificationRejectIn
from gridsentinel.api.schemas.responses import VerificationDecisionOut, VerificationItemOut, VerificationListOut
from gridsentinel.api.scope import scope_prefix
from gridsentinel.api.state import ApiState
from gridsentinel.cases.report_store import REPORT_STATES, CitizenReport, ReportState
from gridsentinel.core.records import Detection

router = APIRouter(prefix="/api/v1/verification", tags=["cases"])
_ONE = "|".join(REPORT_STATES)
STATES_PATTERN = rf"^({_ONE})(,({_ONE}))*$"
ReportId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The report id (32 hex digits).")]


def _item(report: CitizenReport) -> VerificationItemOut:
    return VerificationItemOut.model_validate(intake.queue_item(report))


@router.get(
    "",
    response_model=VerificationListOut,
    summary="The verification queue (dispatcher or higher)",
    description="Citizen reports held for verification, oldest first, with every reason of the quality "
    "decision, the gaming score and its signals, the citizen's identity and a link to the photo. "
    "`state` lists decided ones instead (comma-separated: held, confirmed, rejected, accepted, duplicate).",
    responses=responses(401, 403, 422),
)
async def list_queue(
    state: StateDep,
    token: Dispatcher,
    states: Annotated[str, Query(alias="state", pattern=STATES_PATTERN,
                                 description="Comma-separated report states.")] = "held",
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> VerificationListOut:
    wanted: list[ReportState] = [s for s in REPORT_STATES if s in states.split(",")]
    reports = intake.reports(state)
    prefix = scope_prefix(token)  # a user of a center: the reports in its cells only
    found = await reports.list(wanted, limit=limit, offset=offset, grid_prefix=prefix)
    return VerificationListOut(items=[_item(r) for r in found], total=await reports.count(wanted, grid_prefix=prefix),
                               limit=limit, offset=offset)


async def _get(state: ApiState, report_id: str, token: TokenEntry | None = None) -> CitizenReport:
    """The report; 404 when there is none or it lies outside the center of ``token``'s holder."""
    report = await intake.reports(state).get(report_id)
    prefix = scope_prefix(token) if token is not None else None
    if report is None or (prefix is not None and not report.grid_code.startswith(prefix)):
        raise ApiError(404, f"no citizen report {report_id}")
    return report


@router.get("/{report_id}", response_model=VerificationItemOut, summary="One citizen report with its reasons",
            responses=responses(401, 403, 404, 422))
async def get_item(report_id: ReportId, state: StateDep, token: Dispatcher) -> VerificationItemOut:
    return _item(await _get(state, report_id, token))


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
async def confirm(report_id: ReportId, state: StateDep, token: Dispatcher,
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
    return VerificationDecisionOut(item=_item(decided), detection_id=detection.detection_id)


@router.post(
    "/{report_id}/reject",
    response_model=VerificationDecisionOut,
    summary="Reject a held report, with the reason",
    description="The report's Open311 request becomes closed with the reason in `status_notes`. 409 "
    "`not_held` when the report is not (or no longer) held.",
    responses=responses(401, 403, 404, 409, 422),
)
async def reject(report_id: ReportId, body: VerificationRejectIn, state: StateDep,
                 token: Dispatcher) -> VerificationDecisionOut:
    await _get(state, report_id, token)  # 404 outside the caller's center
    decided = await _decide(state, report_id, "rejected", f"user:{token.id}", body.reason)
    return VerificationDecisionOut(item=_item(decided), detection_id=None)


@router.get(
    "/{report_id}/photo",
    summary="The photo a citizen uploaded with a report (dispatcher or higher)",
    response_class=FileResponse,
    responses={**responses(401, 403, 404, 422), 200: {"content": {"image/jpeg": {}, "image/png": {}}}},
)
async def photo(report_id: ReportId, state: StateDep, token: Dispatcher) -> FileResponse:
    await _get(state, report_id, token)  # 404 when there is no such report or it lies outside the caller's center
    path = intake.photo_path(state, report_id)
    try:
        with path.open("rb") as f:
            head = f.read(12)
    except (FileNotFoundError, NotADirectoryError):
        raise ApiError(404, f"no photo for report {report_id}") from None
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type=intake.photo_type(head), headers=headers)
