"""Request and response bodies of the inspector and hotline channels (docs/channels.md)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

CATEGORY = r"^(component|event):[0-9A-Za-z]{2,8}$"


class PhotoIn(BaseModel):
    """One photo, base64-encoded (JPEG, PNG or WebP)."""

    model_config = ConfigDict(extra="forbid")

    data: str = Field(min_length=16, max_length=28_000_000, description="The image bytes, base64 (standard "
                      "alphabet; a `data:image/...;base64,` prefix is accepted).")


class InspectorReportIn(BaseModel):
    """An inspector's finding."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "report_id": "0b9f6c1e-4a52-4c1d-9b1e-2f3a4b5c6d7e", "category": "component:0103",
            "lat": 31.87225, "lon": 120.55053, "observed_at": "2026-12-05T09:12:00+08:00",
            "note": "雨水井盖缺失", "photos": [{"data": "/9j/4AAQSkZJRgABAQ..."}]}]},
    )

    report_id: str = Field(pattern=r"^[A-Za-z0-9_.:-]{8,64}$", description="Made by the phone when the finding "
                           "is filed (a UUID); a retried send with the same id is the same report.")
    category: str = Field(pattern=CATEGORY, description="Category key (type:code, as in categories.yaml).")
    lat: float = Field(ge=-90, le=90, description="Where the problem is (WGS 84).")
    lon: float = Field(ge=-180, le=180, description="Where the problem is (WGS 84).")
    accuracy_m: float | None = Field(None, ge=0, le=100_000, description="The position's accuracy (metres), "
                                     "as the phone reports it.")
    observed_at: datetime = Field(description="When the inspector saw it (ISO 8601 with offset, or Unix "
                                  "seconds); kept when the report is sent later.")
    note: str = Field("", max_length=2000, description="Free text.")
    photos: list[PhotoIn] = Field(default_factory=list, description="Photos of the problem.")


class InspectorCheckIn(BaseModel):
    """An on-site check of a resolved case (verify or rework)."""

    model_config = ConfigDict(extra="forbid")

    note: str = Field("", max_length=2000, description="What the inspector found; required for rework.")
    photos: list[PhotoIn] = Field(min_length=1, description="At least one on-site photo.")
    lat: float | None = Field(None, ge=-90, le=90, description="Where the check was made.")
    lon: float | None = Field(None, ge=-180, le=180, description="Where the check was made.")


class InspectorReportOut(BaseModel):
    report_id: str
    detection_id: str
    grid_code: str
    observed_at: float
    case_id: str | None = Field(description="The case the finding went into (null until the case stage applied it).")
    outcome: str = Field(description="opened, attached, merged, reopened, late, duplicate or pending.")
    photos: list[str] = Field(description="URLs of the stored photos.")


class HotlineCallIn(BaseModel):
    """A call taken on the 12345 hotline."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={"examples": [{
            "text": "暨阳中路88号门口井盖不见了，晚上很危险", "address": "暨阳路八十八号门口",
            "called_at": "2026-12-05T09:10:00+08:00", "ticket": "12345-20261205-0042"}]},
    )

    text: str = Field(min_length=1, max_length=4000, description="What the caller said (Chinese free text).")
    address: str = Field("", max_length=400, description="The address or place the caller named.")
    called_at: datetime | None = Field(None, description="When the call came in (default: now).")
    ticket: str | None = Field(None, pattern=r"^[A-Za-z0-9_.:-]{1,64}$", description="The hotline platform's "
                               "work-order number; a retried intake with the same ticket is the same call.")


class HotlineLocateIn(BaseModel):
    """Where a call's problem is: a gazetteer name, a point, or a grid cell (first given wins)."""

    model_config = ConfigDict(extra="forbid")

    place: str | None = Field(None, max_length=200, description="A gazetteer name or alias (e.g. a candidate).")
    lat: float | None = Field(None, ge=-90, le=90, description="The point (with lon).")
    lon: float | None = Field(None, ge=-180, le=180, description="The point (with lat).")
    grid_code: str | None = Field(None, pattern=r"^[0-9]{15}$", description="A unit-grid cell (its centroid is used).")


class HotlineConfirmIn(HotlineLocateIn):
    """The call-taker's confirmation: the category (a suggestion or a correction), and optionally the place."""

    category: str = Field(pattern=CATEGORY, description="Category key (type:code).")


class HotlineCallOut(BaseModel):
    call_id: str
    ticket: str | None
    status: str = Field(description="pending (to confirm), queued (address unresolved) or sent.")
    text: str
    address: str
    called_at: float
    received_at: float
    taken_by: str
    candidates: list[dict[str, Any]] = Field(description="Gazetteer candidates for the address, best first, "
                                              "each with its score.")
    resolution: str | None = Field(None, description="At intake: why the address resolved or did not.")
    suggestions: list[dict[str, Any]] = Field(description="Up to three categories with their confidence and "
                                               "the keywords found.")
    category: str | None
    grid_code: str | None
    lat: float | None
    lon: float | None
    place: str | None
    located_by: str | None
    detection_id: str | None
    case_id: str | None = None
    outcome: str | None = None


class HotlineQueueOut(BaseModel):
    items: list[HotlineCallOut]
    limit: int
    offset: int
    next_offset: int | None
