"""``/api/v1/devices/health`` and ``/api/v1/devices/{id}/health``: device health (api/device_health.py).

Included before the devices router, so ``health`` is not taken for a device id.
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Path, Query
from pydantic import BaseModel, Field

from gridsentinel.api.deps import StateDep, Viewer
from gridsentinel.api.device_health import HealthBoard
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.scope import in_device_scope
from gridsentinel.api.state import ApiState
from gridsentinel.core.device_health import BUCKET_S, BUCKETS, STATES

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


class DeviceHealthOut(BaseModel):
    device_id: str
    kind: str
    grid_code: str | None
    state: Literal["online", "offline", "silent", "unknown"] = Field(
        description="offline: its last will / status said so; silent: nothing for silent_after_s; whichever "
        "came first")
    online: bool
    reason: str = Field(description="Why it is in this state, in a sentence")
    since: float | None = Field(description="When the state began, Unix seconds")
    last_seen: float | None = Field(description="Its last telemetry or frame at any gateway, Unix seconds")
    status: str | None = Field(description="Its last status message or last will: online / offline")
    status_at: float | None
    expected_interval_s: float
    silent_after_s: float
    messages: int = Field(description="Messages taken (accepted or not) since the gateways started")
    rejections: dict[str, int] = Field(description="Dead-lettered messages by reason, since the gateways started")
    messages_per_min: float = Field(description="Over the last rate_window_s")
    rejections_per_min: float
    battery: float | None = Field(description="Last battery voltage it reported, V")
    battery_level: float | None = Field(description="Last battery level it reported, %")
    rssi: float | None = Field(description="Last signal strength it reported, dBm")
    vitals_at: float | None
    gateways: list[str]


class DeviceHealthListOut(BaseModel):
    items: list[DeviceHealthOut]
    counts: dict[str, int] = Field(description="Devices by state (before the filters; a user of a center: its "
                                   "cells' devices)")
    timezone: str = Field(description="The city's time zone (config/calendar.yaml), for showing times")
    rate_window_s: float
    now: float


def board_of(state: ApiState) -> HealthBoard:
    """The app's health board (empty when nothing is followed: every device is then 'unknown')."""
    return state.device_health


@router.get("/health", response_model=DeviceHealthListOut, summary="Health of every device",
            responses=responses(401, 403, 422))
async def list_health(
    state: StateDep,
    token: Viewer,
    status: Annotated[
        Literal["online", "offline", "silent", "unknown"] | None,
        Query(description="Only devices in this state; offline includes silent ones."),
    ] = None,
    grid_prefix: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,15}$", description="Only devices in cells under this prefix.")
    ] = None,
) -> DeviceHealthListOut:
    board, now = board_of(state), state.clock()
    views = [board.view(d, now) for d in state.registry.active() if in_device_scope(token, d.grid_code)]
    counts = {s: 0 for s in STATES}
    for v in views:
        counts[v["state"]] += 1
    wanted = {"offline", "silent"} if status == "offline" else {status} if status else None
    items = [DeviceHealthOut.model_validate(v) for v in views
             if (wanted is None or v["state"] in wanted)
             and (grid_prefix is None or (v["grid_code"] or "").startswith(grid_prefix))]
    return DeviceHealthListOut(items=items, counts=counts, timezone=state.catalog.calendar.timezone,
                               rate_window_s=BUCKET_S * BUCKETS, now=now)


@router.get("/{device_id}/health", response_model=DeviceHealthOut, summary="Health of one device",
            responses=responses(401, 403, 404, 422))
async def get_health(
    device_id: Annotated[str, Path(max_length=64, examples=["drain-001"])], state: StateDep, token: Viewer
) -> DeviceHealthOut:
    device = state.registry.get(device_id)
    if device is not None and not in_device_scope(token, device.grid_code):
        raise ApiError(404, f"no device {device_id}")
    if device is None:
        retired = state.registry.retirement(device_id)
        raise ApiError(404, f"device {device_id} is retired" if retired else f"no device {device_id}")
    return DeviceHealthOut.model_validate(board_of(state).view(device, state.clock()))
