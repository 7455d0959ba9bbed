"""``/api/v1/incidents``: cases of one family close in space and time (cases/incidents.py), seen and acted on
together. Scoped like cases: an incident is listed when the caller may see one of its cases, and only those
cases are shown (and counted). Dispatch and close go case by case through the workflow and the authority
checks of ``POST /api/v1/cases/{id}/transitions``; the answer says what happened to each case."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query

from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.deps import CaseReader, Dispatcher, StateDep
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.privacy import redact_detection
from gridsentinel.api.schemas.requests import IncidentCloseIn, IncidentDispatchIn
from gridsentinel.api.schemas.responses import (
    CaseEventOut,
    CaseOut,
    IncidentActionOut,
    IncidentCaseResultOut,
    IncidentDetailOut,
    IncidentListOut,
    IncidentLogOut,
    IncidentOut,
    IncidentSourceOut,
)
from gridsentinel.api.scope import actor_of, sees_everything
from gridsentinel.api.state import ApiState
from gridsentinel.cases.authority import Actor
from gridsentinel.cases.case import Case, CaseNotFound, InvalidTransition, NotAllowed
from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.incidents import Incident, IncidentLogEntry, incident_status
from gridsentinel.cases.store_protocol import IncidentQuery, StoreConflict
from gridsentinel.cases.workflow import transition_case
from gridsentinel.core.records import SEVERITIES

router = APIRouter(prefix="/api/v1/incidents", tags=["cases"])
IncidentId = Annotated[str, Path(min_length=1, max_length=64, description="The incident id.")]
MAX_DETECTIONS = 500


def _scope(token: TokenEntry) -> Actor | None:
    actor = actor_of(token)
    return None if sees_everything(actor) else actor


def incident_out(state: ApiState, incident: Incident, cases: list[Case]) -> IncidentOut:
    family = state.families.get(incident.family)
    sources: dict[str, int] = {}
    for case in cases:
        for source, n in case.sources.items():
            sources[source] = sources.get(source, 0) + n
    return IncidentOut(
        incident_id=incident.incident_id,
        family=incident.family,
        family_name=family.name if family else incident.family,
        family_name_zh=family.name_zh if family else incident.family,
        status=incident_status(cases),
        opened_at=incident.opened_at,
        updated_at=incident.updated_at,
        first_seen_at=min(c.first_seen_at for c in cases),
        last_seen_at=max(c.last_seen_at for c in cases),
        case_count=len(cases),
        categories=sorted({c.category_key for c in cases}),
        sources=dict(sorted(sources.items())),
        severity=max((c.severity for c in cases), key=SEVERITIES.index),
        grid_codes=sorted({c.grid_code for c in cases}),
        lead_department=family.lead_department if family else None,
        departments=sorted({c.department for c in cases if c.department and c.dispatched_at is not None}),
    )


async def _visible_incident(state: ApiState, token: TokenEntry, incident_id: str) -> tuple[Incident, list[Case]]:
    """The incident (a merged one's id finds the one it lives on in) with the cases the caller may see;
    404 when it is unknown or the caller sees none of its cases."""
    store = state.case_store()
    incident = await store.get_incident(incident_id)
    if incident is not None:
        cases = (await store.incident_cases([incident.incident_id], _scope(token)))[incident.incident_id]
        if cases:
            return incident, cases
    raise CaseNotFound(f"no incident {incident_id}")


@router.get("", response_model=IncidentListOut, summary="List incidents",
            description="Incidents with at least one case the caller may see, last changed first; each shows only "
                        "those cases.", responses=responses(401, 403, 422))
async def list_incidents(
    state: StateDep,
    token: CaseReader,
    status: Annotated[Literal["open", "closed"] | None, Query(description="open or closed.")] = None,
    family: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,63}$",
                                        description="A family id, e.g. flooding.")] = None,
    limit: Annotated[int, Query(ge=1, le=200, description="Page size.")] = 50,
    offset: Annotated[int, Query(ge=0, le=1_000_000, description="Incidents to skip.")] = 0,
) -> IncidentListOut:
    store = state.case_store()
    scope = _scope(token)
    found = await store.list_incidents(IncidentQuery(status=status, family=family, visible_to=scope,
                                                     limit=limit + 1, offset=offset))
    page = found[:limit]
    members = await store.incident_cases([i.incident_id for i in page], scope)
    return IncidentListOut(
        items=[incident_out(state, i, members[i.incident_id]) for i in page if members[i.incident_id]],
        limit=limit, offset=offset, next_offset=offset + limit if len(found) > limit else None)


@router.get("/{incident_id}", response_model=IncidentDetailOut, summary="One incident: cases, sources, log",
            description="404 for an unknown incident and for one none of whose cases the caller may see. The id "
                        "of an incident merged into another finds the one it lives on in.",
            responses=responses(401, 403, 404, 422))
async def get_incident(incident_id: IncidentId, state: StateDep, token: CaseReader) -> IncidentDetailOut:
    store = state.case_store()
    incident, cases = await _visible_incident(state, token, incident_id)
    detections = []
    for case in cases:
        for d in await store.case_detections(case.case_id):
            detections.append(redact_detection(d, token.role, state.pseudonym_key))
    detections.sort(key=lambda d: (-float(d["observed_at"]), str(d.get("detection_id"))))
    sources = _sources(detections)
    visible_ids = {c.case_id for c in cases}
    log = [IncidentLogOut.model_validate(_shown_entry(e, visible_ids).to_dict())
           for e in await store.incident_log(incident.incident_id)]
    return IncidentDetailOut(incident=incident_out(state, incident, cases),
                             cases=[CaseOut.model_validate(c.to_dict()) for c in cases], sources=sources,
                             detections=detections[:MAX_DETECTIONS], log=log)


def _sources(detections: list[dict[str, Any]]) -> list[IncidentSourceOut]:
    """Each channel's part: detections, the cases it reported to, sensor and camera ids, first and last seen."""
    by_source: dict[str, IncidentSourceOut] = {}
    for d in detections:
        source, seen, case_id = str(d.get("source")), float(d["observed_at"]), str(d.get("case_id"))
        entry = by_source.get(source)
        if entry is None:
            entry = by_source[source] = IncidentSourceOut(source=source, detections=0, cases=[], devices=[],
                                                          first_seen_at=seen, last_seen_at=seen)
        entry.detections += 1
        if case_id not in entry.cases:
            entry.cases.append(case_id)
        device = d.get("device_id")
        if source in ("sensor", "camera") and device and device not in entry.devices:
            entry.devices.append(str(device))
        entry.first_seen_at = min(entry.first_seen_at, seen)
        entry.last_seen_at = max(entry.last_seen_at, seen)
    for entry in by_source.values():
        entry.cases.sort()
        entry.devices.sort()
    return [by_source[k] for k in sorted(by_source)]


def _shown_entry(entry: IncidentLogEntry, visible_ids: set[str]) -> IncidentLogEntry:
    """A log entry without the ids of cases the caller may not see (ids must not leak)."""
    data = dict(entry.data)
    for key in ("cases", "dispatched", "closed", "skipped"):
        if isinstance(data.get(key), list):
            data[key] = [c for c in data[key] if (c if isinstance(c, str) else c.get("case_id")) in visible_ids]
    for key in ("case_id", "by_case"):
        if key in data and data[key] not in visible_ids:
            data[key] = None
    return IncidentLogEntry(entry.incident_id, entry.at, entry.actor, entry.action, entry.note, data)


async def _act(state: ApiState, token: TokenEntry, incident_id: str, action: str, wanted_status: str,
               note: str, department: str | None = None,
               assisting: list[str] | None = None) -> IncidentActionOut:
    """``action`` on every member case the caller sees; cases not in ``wanted_status`` are skipped, and so is
    a case the workflow or the authority rules refuse (with their reason)."""
    incident, cases = await _visible_incident(state, token, incident_id)
    who = actor_of(token)
    store = state.case_store()
    results: list[IncidentCaseResultOut] = []
    events: list[CaseEvent] = []
    refused: list[str] = []
    text = f"incident {incident.incident_id}" + (f": {note}" if note else "")
    for case in cases:
        if case.status != wanted_status:
            results.append(IncidentCaseResultOut(case_id=case.case_id, category_key=case.category_key,
                                                 outcome="skipped", status=case.status,
                                                 reason=f"case is {case.status}, not {wanted_status}"))
            continue
        try:
            changed = await transition_case(store, state.catalog, case.case_id, action, actor=who.log_name,
                                            now=state.clock(), note=text, department=department,
                                            assisting_departments=assisting or [], who=who)
        except (NotAllowed, InvalidTransition, StoreConflict, CaseNotFound) as exc:
            if isinstance(exc, NotAllowed):
                refused.append(case.case_id)
            results.append(IncidentCaseResultOut(case_id=case.case_id, category_key=case.category_key,
                                                 outcome="skipped", status=case.status,
                                                 reason=exc.reason if isinstance(exc, NotAllowed) else str(exc)))
            continue
        events += changed
        status = changed[-1].status if changed else case.status
        results.append(IncidentCaseResultOut(case_id=case.case_id, category_key=case.category_key,
                                             outcome="done", status=status))
    done = [r.case_id for r in results if r.outcome == "done"]
    details = {"incident_id": incident.incident_id, "results": [r.model_dump() for r in results]}
    if not done:
        if refused and len(refused) == len([c for c in cases if c.status == wanted_status]):
            raise ApiError(403, f"incident {incident.incident_id}: you may not {action} any of its cases",
                           code="not_allowed", details=details)
        raise ApiError(409, f"incident {incident.incident_id}: no case to {action} (each case's reason is in "
                            "details.results)", code="invalid_transition", details=details)
    data: dict[str, object] = {("dispatched" if action == "dispatch" else "closed"): done,
                               "skipped": [{"case_id": r.case_id, "reason": r.reason}
                                           for r in results if r.outcome != "done"]}
    if department:
        data["department"] = department
    if assisting:
        data["assisting_departments"] = list(assisting)
    await store.add_incident_log([IncidentLogEntry(incident.incident_id, state.clock(), who.log_name, action,
                                                   note, data)])
    await state.emit(events)
    return IncidentActionOut(incident_id=incident.incident_id, action=action, results=results,
                             events=[CaseEventOut.model_validate(e.to_dict()) for e in events])


@router.post("/{incident_id}/dispatch", response_model=IncidentActionOut,
             summary="Dispatch an incident to one lead department (dispatcher or higher)",
             description="Every open member case the caller may act on is dispatched to the lead department "
                         "(default: the family's), each with its own category's handling limit, through the same "
                         "checks as a case's dispatch. Cases already dispatched or beyond, and cases the caller "
                         "may not act on, are listed as skipped with the reason. 409 when no case could be "
                         "dispatched (403 when the caller may act on none of them).",
             responses=responses(401, 403, 404, 409, 422))
async def dispatch_incident(incident_id: IncidentId, body: IncidentDispatchIn, state: StateDep,
                            token: Dispatcher) -> IncidentActionOut:
    incident, _ = await _visible_incident(state, token, incident_id)
    family = state.families.get(incident.family)
    department = body.department or (family.lead_department if family else None)
    if department is None:
        raise ApiError(422, "name the lead department: the incident's family has no lead_department",
                       code="validation_error",
                       details=[{"loc": ["body", "department"], "msg": "required", "type": "missing"}])
    known = state.catalog.routing.departments
    unknown = [d for d in [department, *body.assisting_departments] if d not in known]
    if unknown:
        raise ApiError(422, f"unknown department {', '.join(repr(d) for d in unknown)}", code="validation_error",
                       details={"known": sorted(known)})
    return await _act(state, token, incident_id, "dispatch", "open", body.note, department,
                      body.assisting_departments)


@router.post("/{incident_id}/close", response_model=IncidentActionOut,
             summary="Close an incident's verified cases together (dispatcher or higher)",
             description="Every member case in `verified` that the caller may act on is closed (resolved). Cases "
                         "still being handled are listed as skipped with their status: each case is verified "
                         "on site on its own. 409 when no case could be closed.",
             responses=responses(401, 403, 404, 409, 422))
async def close_incident(incident_id: IncidentId, body: IncidentCloseIn, state: StateDep,
                         token: Dispatcher) -> IncidentActionOut:
    return await _act(state, token, incident_id, "close", "verified", body.note)
