"""Bodies and answers of the device registry's write routes (``/api/v1/devices``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from gridsentinel.api.schemas.responses import DeviceOut
from gridsentinel.core.devices import DeviceKind


class DeviceUpdateIn(BaseModel):
    """Record fields to change (only those given); the id never changes, the location changes by ``move``."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={
        "examples": [{"expected_interval_s": 30, "install": {"depth_m": 2.8, "rim_m": 2.8}}]})

    kind: DeviceKind | None = Field(None, description="What the device measures")
    component_id: str | None = Field(None, pattern=r"^\d{16}$", description="16-digit city component id")
    expected_interval_s: float | None = Field(None, gt=0, le=86400, description="Reporting interval, seconds")
    install: dict[str, Any] | None = Field(None, description="Install parameters (replaces the old ones)")
    grid_code: str | None = Field(None, pattern=r"^\d{15}$", description="15-digit unit grid")


class DeviceMoveIn(BaseModel):
    """A new location; the grid code is found again from the grid unless given."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"lat": 31.87055, "lon": 120.55073}]})

    lat: float = Field(ge=-90, le=90, description="Latitude, WGS 84")
    lon: float = Field(ge=-180, le=180, description="Longitude, WGS 84")
    grid_code: str | None = Field(None, pattern=r"^\d{15}$", description="Give the grid code instead")


class DeviceRetireIn(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [{"reason": "replaced by drain-101"}]})

    reason: str = Field("", max_length=500, description="Why (kept in the history)")


class DeviceImportIn(BaseModel):
    """A bulk import file's content: CSV (header ``id,kind,lat,lon[,grid_code,component_id,
    expected_interval_s,install]``) or YAML (the devices.yaml format)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"format": "csv", "content": "id,kind,lat,lon\ndrain-101,drain_level,31.87225,120.55053\n"}]})

    format: Literal["csv", "yaml"] = Field(description="csv or yaml")
    content: str = Field(description="The file's text")


class DeviceChangeOut(BaseModel):
    """The device after a change. ``password`` only in the answer of a create or a rotation: it is shown
    this once (the broker keeps only its hash)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "device": DeviceOut.model_config["json_schema_extra"]["examples"][0],  # type: ignore[index]
        "password": "q0m2…", "feed_pending": 0}]})

    device: DeviceOut
    password: str | None = Field(None, description="The issued password (create, rotate): shown only here")
    feed_pending: int = Field(description="Changes committed but not on gs.devices yet (published by the next "
                                          "change or `gridsentinel devices sync`)")


class ImportErrorOut(BaseModel):
    row: str = Field(description="`line N` of a CSV, `devices[i]` of a YAML")
    field: str = Field(description="The field at fault ('' for the whole row)")
    message: str


class DeviceImportOut(BaseModel):
    """The import's result: with any error nothing was imported (a dry run changes nothing either)."""

    model_config = ConfigDict(json_schema_extra={"examples": [{
        "dry_run": True, "devices": 2, "errors": [{"row": "line 3", "field": "location.lat",
                                                    "message": "Input should be less than or equal to 90 (got 91.0)"}],
        "created": [], "passwords": {}, "feed_pending": 0}]})

    dry_run: bool
    devices: int = Field(description="Valid rows")
    errors: list[ImportErrorOut] = Field(description="Every problem, by row and field")
    created: list[str] = Field(description="Ids created (empty for a dry run or when there were errors)")
    passwords: dict[str, str] = Field(description="Issued passwords by id: shown only here")
    feed_pending: int = 0
