"""Request bodies and query models (what clients send)."""

from __future__ import annotations

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
                {"action": "duplicate", "duplicate_of": "0f1e…", "note": "same pothole"},
            ]
        },
    )

    action: str = Field(pattern=f"^({_ACTIONS})$", description=f"One of: {', '.join(ACTIONS)}.")
    note: str = Field("", max_length=2000, description="Free text recorded in the case log.")
    department: str | None = Field(
        None,
        pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="dispatch: the department (default: the routed one).",
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
