"""Response bodies (what the API returns)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class ErrorBody(BaseModel):
    code: str = Field(description="Machine-readable code, e.g. not_found, invalid_transition.")
    message: str = Field(description="Human sentence.")
    details: Any = Field(None, description="Structured details: validation errors, allowed transitions, …")


class ErrorResponse(BaseModel):
    """The one error shape of every route."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "error": {
                        "code": "invalid_transition",
                        "message": "case c1 is dispatched: cannot close; allowed: start, resolve, "
                        "false_alarm, duplicate",
                        "details": {
                            "case_id": "c1",
                            "status": "dispatched",
                            "action": "close",
                            "allowed": ["start", "resolve", "false_alarm", "duplicate"],
                        },
                    }
                }
            ]
        }
    )

    error: ErrorBody


_CASE_EXAMPLE: dict[str, Any] = {
    "case_id": "6c1b2b9e-3a43-5d2f-9a52-1d3f0f1e2a10",
    "grid_code": "320582004001001",
    "category_type": "component",
    "category_code": "0103",
    "category_standard": "GB/T 30428.2-2013",
    "category_key": "component:0103",
    "status": "open",
    "severity": "alarm",
    "opened_at": 1749434400.0,
    "updated_at": 1749434400.0,
    "first_seen_at": 1749434390.0,
    "last_seen_at": 1749434390.0,
    "detection_count": 1,
    "sources": {"sensor": 1},
    "kinds": ["drain_overflow"],
    "title": "water level 2.9 m of 3.0 m",
    "lat": 31.87225,
    "lon": 120.55053,
    "department": "drainage",
    "center": "street:320582004",
    "escalation_level": 0,
    "due_at": 1749436200.0,
    "dispatched_at": None,
    "acknowledged_at": None,
    "last_reminded_at": None,
    "closed_at": None,
    "closing_reason": None,
    "duplicate_of": None,
    "reopen_count": 0,
    "rework_count": 0,
    "home_center": "street:320582004",
    "assisting_departments": [],
    "refusal_count": 0,
    "refused_at": None,
    "pending_action": None,
    "headline": "water level 2.9 m of 3.0 m",
    "headlines": {"zh-CN": "水位 2.9 米（上限 3.0 米）"},
    "version": 1,
    "log_count": 1,
}


class CaseOut(BaseModel):
    """A case (times are Unix seconds, UTC)."""

    model_config = ConfigDict(json_schema_extra={"examples": [_CASE_EXAMPLE]})

    case_id: str
    grid_code: str
    category_type: str
    category_code: str
    category_standard: str
    category_key: str
    status: str
    severity: str
    opened_at: float
    updated_at: float
    first_seen_at: float
    last_seen_at: float
    detection_count: int
    sources: dict[str, int]
    kinds: list[str]
    title: str
    lat: float | None
    lon: float | None
    department: str | None
    center: str
    escalation_level: int
    due_at: float | None
    dispatched_at: float | None
    acknowledged_at: float | None
    last_reminded_at: float | None
    closed_at: float | None
    closing_reason: str | None
    duplicate_of: str | None
    reopen_count: int
    rework_count: int
    home_center: str = Field("", description="The center the case started at (hand_back returns it toward it).")
    assisting_departments: list[str] = Field(
        default_factory=list, description="Departments assisting the lead one (joint handling)."
    )
    refusal_count: int = Field(0, description="Times a department refused the case.")
    refused_at: float | None = Field(None, description="The last refusal.")
    pending_action: dict[str, Any] | None = Field(
        None,
        description="A false alarm waiting for a second user: {action, by, at, note}.",
    )
    headline: str = Field("", description="The case's current state: the latest detection at its severity.")
    headlines: dict[str, str] = Field(
        default_factory=dict,
        description='The headline in other languages, e.g. {"zh-CN": "井内水位 100%，已满溢"}; pages fall back to '
                    "`headline` (English) for a language missing here.",
    )
    version: int
    log_count: int


class CaseListOut(BaseModel):
    """One page of cases, newest opened first."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"items": [_CASE_EXAMPLE], "limit": 50, "offset": 0, "next_offset": None}]
        }
    )

    items: list[CaseOut]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last page.")


class LogEntryOut(BaseModel):
    """One line of a case's audit log."""

    seq: int
    at: float
    actor: str
    action: str
    from_status: str | None
    to_status: str | None
    note: str
    data: dict[str, Any]


class ChoiceOut(BaseModel):
    """One action the case's state allows, and whether the caller may take it (cases/authority.py)."""

    action: str = Field(description="A workflow action, e.g. dispatch, refuse, hand_back.")
    allowed: bool = Field(description="Whether the caller may take it now.")
    reason: str = Field(description="Why not, when not allowed (the dashboard's tooltip of the disabled "
                                    "button); for an allowed one, an empty string or a note (four eyes).")


class CaseDetailOut(BaseModel):
    """A case with its audit log and the detections applied to it."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "case": _CASE_EXAMPLE,
                    "log": [
                        {
                            "seq": 1,
                            "at": 1749434400.0,
                            "actor": "system:dedup",
                            "action": "open",
                            "from_status": None,
                            "to_status": "open",
                            "note": "",
                            "data": {"detection_id": "drain-001:1749434390:overflow", "rule": 4},
                        }
                    ],
                    "detections": [
                        {
                            "detection_id": "drain-001:1749434390:overflow",
                            "source": "sensor",
                            "kind": "drain_overflow",
                            "outcome": "opened",
                            "applied_at": 1749434400.0,
                        }
                    ],
                    "allowed_actions": ["dispatch", "acknowledge", "false_alarm", "duplicate",
                                        "request_coordination"],
                    "choices": [
                        {"action": "dispatch", "allowed": True, "reason": ""},
                        {"action": "acknowledge", "allowed": True, "reason": ""},
                        {"action": "false_alarm", "allowed": True,
                         "reason": "machine-found: a second user confirms the false alarm"},
                        {"action": "duplicate", "allowed": True, "reason": ""},
                        {"action": "request_coordination", "allowed": False,
                         "reason": "only the center holding the case (street:320582004) asks its parent "
                                   "center to step in"},
                    ],
                }
            ]
        }
    )

    case: CaseOut
    incident_id: str | None = Field(None, description="The incident the case belongs to (GET "
                                                      "/api/v1/incidents/{id}), if any.")
    log: list[LogEntryOut]
    detections: list[dict[str, Any]] = Field(description="Detection fields plus outcome and applied_at.")
    allowed_actions: list[str] = Field(description="Actions allowed from the current status.")
    choices: list[ChoiceOut] = Field(
        description="Every action the case's state allows, each with whether the caller may take it and, "
                    "when not, why (issue 16: the dashboard disables those and shows the reason).")


class CaseEventOut(BaseModel):
    """A case event (as on gs.case-events, webhooks, MQTT and the SSE stream)."""

    event_id: str
    case_id: str
    type: str
    at: float
    actor: str
    grid_code: str
    category_key: str
    status: str
    severity: str
    notify: bool
    from_status: str | None
    note: str
    data: dict[str, Any]
    case: dict[str, Any]


class TransitionOut(BaseModel):
    """The case after a transition and the events it produced."""

    case: CaseOut
    events: list[CaseEventOut]
    waiting_for: str | None = Field(
        None,
        description="Set when the action only recorded a request (a false alarm on a machine-found case): "
        "what must happen next.",
    )


class LocationOut(BaseModel):
    lat: float
    lon: float


class DeviceOut(BaseModel):
    """A registered device."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "id": "drain-001",
                    "kind": "drain_level",
                    "location": {"lat": 31.87225, "lon": 120.55053},
                    "grid_code": "320582004001001",
                    "component_id": "3205820103000001",
                    "expected_interval_s": 60.0,
                    "install": {"depth_m": 3.0, "rim_m": 3.0},
                    "state": "active",
                    "credential": "seed",
                    "revision": 1,
                    "credential_epoch": 0,
                    "updated_at": 1749434400.0,
                    "retired_at": None,
                }
            ]
        }
    )

    id: str
    kind: str
    location: LocationOut
    grid_code: str | None
    component_id: str | None
    expected_interval_s: float
    install: dict[str, Any]
    # The registry's own fields (gridsentinel/devices/store.py).
    state: str = Field("active", description="active, or retired (its messages are rejected; id never reused)")
    credential: str = Field("seed", description="seed (stack-derived, dev/demo), issued, or revoked")
    revision: int = Field(1, description="Grows by one with each change of the device")
    credential_epoch: int = Field(0, description="Grows with each credential issue, rotation or revocation")
    updated_at: float | None = Field(None, description="Last change, Unix seconds")
    retired_at: float | None = Field(None, description="When it was retired, Unix seconds")


class DeviceListOut(BaseModel):
    items: list[DeviceOut]


class GridOut(BaseModel):
    """The unit grid as a GeoJSON FeatureCollection; each feature's properties gain ``open_cases``."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "examples": [
                {
                    "type": "FeatureCollection",
                    "features": [
                        {
                            "type": "Feature",
                            "properties": {
                                "code": "320582004001001",
                                "name": "Community 001 cell 1",
                                "open_cases": 2,
                            },
                            "geometry": {
                                "type": "Polygon",
                                "coordinates": [
                                    [
                                        [120.55, 31.8727],
                                        [120.551057, 31.8727],
                                        [120.551057, 31.8718],
                                        [120.55, 31.8718],
                                        [120.55, 31.8727],
                                    ]
                                ],
                            },
                        }
                    ],
                }
            ]
        },
    )

    type: str
    features: list[dict[str, Any]]


class HealthOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"status": "ok", "store": "ok"}]})

    status: str
    store: str


class Open311Service(BaseModel):
    """An Open311 service (one case category)."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "service_code": "event:0103",
                    "service_name": "accumulated garbage or muck (illegal dumping)",
                    "description": "accumulated garbage or muck (illegal dumping) "
                    "(event 0103, CJ/T 214-2007)",
                    "metadata": False,
                    "type": "realtime",
                    "keywords": "event,0103,CJ/T 214-2007,积存垃圾渣土",
                    "group": "event",
                }
            ]
        }
    )

    service_code: str
    service_name: str
    description: str
    metadata: bool
    type: str
    keywords: str
    group: str


class Open311ServiceDefinition(BaseModel):
    """``services/{code}.json``: the service's extra attributes (none: GridSentinel asks for none)."""

    service_code: str
    attributes: list[dict[str, Any]]


class Open311Request(BaseModel):
    """An Open311 service request: one GridSentinel case."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "service_request_id": "6c1b2b9e-3a43-5d2f-9a52-1d3f0f1e2a10",
                    "status": "open",
                    "status_notes": "dispatched",
                    "service_name": "storm-water manhole cover",
                    "service_code": "component:0103",
                    "description": "water level 2.9 m of 3.0 m",
                    "agency_responsible": "Drainage Management Office (Water Affairs)",
                    "service_notice": None,
                    "requested_datetime": "2025-06-09T10:00:00+08:00",
                    "updated_datetime": "2025-06-09T10:05:00+08:00",
                    "expected_datetime": "2025-06-09T16:05:00+08:00",
                    "address": "Community 001 cell 1",
                    "address_id": "320582004001001",
                    "zipcode": None,
                    "lat": 31.87225,
                    "long": 120.55053,
                    "media_url": None,
                }
            ]
        }
    )

    service_request_id: str
    status: str
    status_notes: str | None
    service_name: str
    service_code: str
    description: str
    agency_responsible: str | None
    service_notice: str | None
    requested_datetime: str
    updated_datetime: str
    expected_datetime: str | None
    address: str | None
    address_id: str | None
    zipcode: str | None
    lat: float | None
    long: float | None
    media_url: str | None


class Open311PostResult(BaseModel):
    """The answer to ``POST requests.json``: the id of the case the report went into when the case stage
    has applied it, and always a ``token`` that ``GET tokens/{token}.json`` resolves to that id."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "token": "3f0c1e9a7b2d4c5e8f1a2b3c4d5e6f70",
                    "service_request_id": "6c1b2b9e-3a43-5d2f-9a52-1d3f0f1e2a10",
                    "service_notice": "added to an existing case",
                    "account_id": None,
                }
            ]
        }
    )

    token: str
    service_request_id: str | None
    service_notice: str | None
    account_id: str | None


class Open311Token(BaseModel):
    """``GET tokens/{token}.json``: the request id of a report, null until the case stage applied it."""

    token: str
    service_request_id: str | None


class QualityReasonOut(BaseModel):
    """One reason of a report-quality decision (codes in docs/cases.md, "Report quality")."""

    code: str
    detail: str


class VerificationItemOut(BaseModel):
    """A citizen report in the verification queue (or decided from it). Dispatchers and up see the citizen's
    identity; an inspector sees pseudonyms, a scrubbed description and a blurred photo (api/privacy.py)."""

    id: str = Field(description="The report id (the token its POST answered; also its Open311 request id).")
    state: str = Field(description="held, confirmed, rejected (or accepted, duplicate).")
    received_at: float
    category_key: str
    grid_code: str
    lat: float
    lon: float
    description: str
    account_id: str | None = Field(description="The account, or its pseudonym (p-...) for a role without "
                                   "identity rights.")
    device_id: str | None
    phone: str | None
    identity_shown: bool = Field(True, description="False: identifiers are pseudonyms, the description is "
                                 "scrubbed of phone and ID numbers, and the photo is blurred.")
    reasons: list[QualityReasonOut] = Field(description="Every reason of the quality decision.")
    location: str | None = Field(description="consistent, flagged, unverifiable or no_photo.")
    photo_distance_m: float | None
    gaming_score: float = Field(description="0..1, noisy-or of the account's gaming signals.")
    gaming_signals: list[QualityReasonOut] = Field(description="The gaming reasons among `reasons`.")
    photo_url: str | None = Field(description="The uploaded photo (blurred for a role without identity rights).")
    media_url: str | None = Field(description="The photo link the citizen's app gave, if any.")
    duplicate_of: str | None
    decided_at: float | None
    decided_by: str | None
    decision_note: str | None


class VerificationListOut(BaseModel):
    """One page of the verification queue, oldest first."""

    items: list[VerificationItemOut]
    total: int = Field(description="Reports in the requested states.")
    limit: int
    offset: int


class VerificationDecisionOut(BaseModel):
    """A decided report; on confirm, the detection that went to the case stage."""

    item: VerificationItemOut
    detection_id: str | None = Field(description="confirm: the detection sent to gs.detections.")


class IncidentOut(BaseModel):
    """An incident as the caller sees it: figures from the member cases the caller may see."""

    incident_id: str
    family: str = Field(description="The family id (config/incident_families.yaml), e.g. flooding.")
    family_name: str
    family_name_zh: str
    status: str = Field(description="open while any (visible) member case is not closed; else closed.")
    opened_at: float
    updated_at: float
    first_seen_at: float = Field(description="Earliest detection of its cases (event time).")
    last_seen_at: float
    case_count: int
    categories: list[str] = Field(description="Category keys of its cases, sorted.")
    sources: dict[str, int] = Field(description="Detections per source (sensor, camera, inspector, hotline, "
                                                "citizen) over its cases.")
    severity: str = Field(description="The highest severity of its cases.")
    grid_codes: list[str]
    lead_department: str | None = Field(description="The family's default lead department.")
    departments: list[str] = Field(description="Departments its cases are dispatched to.")


class IncidentListOut(BaseModel):
    items: list[IncidentOut]
    limit: int
    offset: int
    next_offset: int | None = Field(description="Offset of the next page; null on the last page.")


class IncidentSourceOut(BaseModel):
    """One channel's part in an incident."""

    source: str = Field(description="sensor | camera | inspector | hotline | citizen")
    detections: int
    cases: list[str] = Field(description="The member cases it reported to.")
    devices: list[str] = Field(description="Sensor and camera ids (people are never listed here).")
    first_seen_at: float
    last_seen_at: float


class IncidentLogOut(BaseModel):
    incident_id: str = Field(description="The incident the entry was written for (a merged one's id too).")
    at: float
    actor: str
    action: str = Field(description="open, link, merge, merged_into, dispatch or close.")
    note: str
    data: dict[str, Any]


class IncidentDetailOut(BaseModel):
    """An incident with every member case the caller may see, every source and its audit log."""

    incident: IncidentOut
    cases: list[CaseOut]
    sources: list[IncidentSourceOut]
    detections: list[dict[str, Any]] = Field(
        description="The member cases' detections, newest first (at most 500; identities as in case detail), "
                    "each with its case_id.")
    log: list[IncidentLogOut]


class IncidentCaseResultOut(BaseModel):
    case_id: str
    category_key: str
    outcome: str = Field(description="done, or skipped (with the reason).")
    status: str = Field(description="The case's status after the action.")
    reason: str = ""


class IncidentActionOut(BaseModel):
    incident_id: str
    action: str
    results: list[IncidentCaseResultOut]
    events: list[CaseEventOut]


class AccountQualityOut(BaseModel):
    """One reporting account's record over the period: counts per outcome, its gaming score with the signals
    behind it, location/EXIF flags and near-duplicate photos."""

    account: str = Field(description="The account id, or its pseudonym for a role without identity rights "
                         "(`device:`/`anonymous` when the report named no account).")
    reports: int
    states: dict[str, int] = Field(description="Reports per state: accepted, held, confirmed, rejected, duplicate.")
    gaming_score_max: float
    gaming_score_last: float
    gaming_signals: dict[str, int] = Field(description="Reports that carried each gaming signal.")
    location_flags: dict[str, int] = Field(
        description="Reports per location/EXIF reason (photo_far, photo_old, photo_after_report, exif_missing, ...).")
    duplicate_photos: list[dict[str, str]] = Field(
        description="Reports whose photo repeats an earlier one: {report, duplicate_of}.")
    last_report_at: float
    held_ids: list[str] = Field(description="Its reports waiting in the verification queue.")


class AccountQualityListOut(BaseModel):
    """Accounts of the period, highest gaming score first."""

    accounts: list[AccountQualityOut]
    since: float
    reports: int = Field(description="Reports in the period (in the caller's scope).")
    identity_shown: bool
