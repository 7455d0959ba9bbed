"""Request bodies and query models (what clients send)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from gridsentinel.cases.case import ACTIONS

_ACTIONS = "|".join(ACTIONS)


class TransitionRequest(BaseModel):
    """A workflow action on one case."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"action": "dispatch", "department": "drainage", "note": "crew 3 on the way"},
                {"action": "dispatch", "department": "drainage", "assisting_departments": ["road_maintenance"],
                 "note": "collapsed road over the sewer: joint handling"},
                {"action": "refuse", "note": "not our pipe: it belongs to the gas company"},
                {"action": "request_coordination", "note": "needs the district's pump truck"},
                {"action": "hand_back", "note": "pump truck booked for 14:00; coordinate on site"},
                {"action": "duplicate", "duplicate_of": "0f1e…", "note": "same pothole"},
            ]
        },
    )

    action: str = Field(pattern=f"^({_ACTIONS})$", description=f"One of: {', '.join(ACTIONS)}.")
    note: str = Field(
        "",
        max_length=2000,
        description="Free text recorded in the case log; required by refuse and request_coordination (the "
        "reason) and hand_back (the instructions).",
    )
    department: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="dispatch: the lead department (default: the routed one). refuse: the refusing "
        "department (default: the user's own, else the lead).",
    )
    assisting_departments: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]] = Field(
        default_factory=list,
        max_length=10,
        description="dispatch: departments that assist the lead one (joint handling).",
    )
    duplicate_of: str | None = Field(
        None, min_length=1, max_length=64, description="duplicate: the id of the case that survives."
    )


class Open311RequestIn(BaseModel):
    """An Open311 GeoReport v2 ``POST requests`` body (form-encoded or JSON)."""

    model_config = ConfigDict(
        extra="ignore",
        populate_by_name=True,
        json_schema_extra={
            "examples": [
                {
                    "service_code": "event:0103",
                    "lat": 31.87225,
                    "long": 120.55053,
                    "description": "Construction waste dumped by the road",
                    "media_url": "https://example.org/p.jpg",
                },
            ]
        },
    )

    service_code: str = Field(min_length=1, max_length=40, description="A service code from services.json.")
    lat: float | None = Field(None, ge=-90, le=90, description="WGS 84 latitude (with long).")
    long: float | None = Field(None, ge=-180, le=180, description="WGS 84 longitude (with lat).")
    address_string: str | None = Field(
        None,
        max_length=300,
        description="Instead of lat/long: a grid code or a grid cell name (no street geocoding).",
    )
    description: str = Field("", max_length=4000, description="What the citizen saw.")
    media_url: str | None = Field(
        None, max_length=2000, pattern=r"^https?://", description="A photo of the problem."
    )
    device_id: str | None = Field(None, max_length=100, description="Reporting device (kept as evidence).")
    account_id: str | None = Field(None, max_length=100, description="Reporter account (kept as evidence).")
    phone: str | None = Field(
        None, max_length=40, description="Reporter's phone (Open311's field; kept as evidence, shown to dispatchers)."
    )


class VerificationConfirmIn(BaseModel):
    """Confirming a held citizen report (the body is optional)."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field("", max_length=2000, description="What the inspector found (kept with the decision).")


class VerificationRejectIn(BaseModel):
    """Rejecting a held citizen report: the reason is required (the citizen's request shows it)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "no ad at this spot"}]})

    reason: str = Field(min_length=1, max_length=2000, description="Why the report is rejected.")


class IncidentDispatchIn(BaseModel):
    """Dispatch an incident: every open member case the user may act on goes to one lead department."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"department": "drainage", "assisting_departments": ["road_maintenance"],
                      "note": "pump truck 2 and a road crew"}]})

    department: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="The lead department (default: the family's lead_department in "
                    "config/incident_families.yaml).")
    assisting_departments: list[Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]{0,63}$")]] = Field(
        default_factory=list, max_length=10, description="Departments that assist the lead one.")
    note: str = Field("", max_length=2000, description="Free text, recorded in the incident's and each case's log.")


class IncidentCloseIn(BaseModel):
    """Close an incident: every verified member case the user may act on is closed."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field("", max_length=2000, description="Free text, recorded in the incident's and each case's log.")
