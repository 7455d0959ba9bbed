"""``/api/v1/devices``: the device registry."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query

from gridsentinel.api.deps import StateDep, Viewer
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.schemas.responses import DeviceListOut, DeviceOut
from gridsentinel.core.devices import Device

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])


def _out(device: Device) -> DeviceOut:
    return DeviceOut.model_validate(device.model_dump())


@router.get(
    "", response_model=DeviceListOut, summary="List registered devices", responses=responses(401, 403, 422)
)
async def list_devices(
    state: StateDep,
    _: Viewer,
    kind: Annotated[
        str | None, Query(max_length=32, description="Only this device kind.", examples=["drain_level"])
    ] = None,
    grid_prefix: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,15}$", description="Only devices in cells under this prefix.")
    ] = None,
) -> DeviceListOut:
    devices = state.registry.active()  # a copy: the registry follows gs.devices in another thread
    return DeviceListOut(
        items=[
            _out(d)
            for d in devices
            if (kind is None or d.kind == kind)
            and (grid_prefix is None or (d.grid_code or "").startswith(grid_prefix))
        ]
    )


@router.get(
    "/{device_id}", response_model=DeviceOut, summary="One device", responses=responses(401, 403, 404, 422)
)
async def get_device(
    device_id: Annotated[str, Path(max_length=64, examples=["drain-001"])], state: StateDep, _: Viewer
) -> DeviceOut:
    device = state.registry.get(device_id)
    if device is None:
        raise ApiError(404, f"no device {device_id}")
    return _out(device)
