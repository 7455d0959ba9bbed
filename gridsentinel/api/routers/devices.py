"""``/api/v1/devices``: the device registry (in the case database; gridsentinel/devices/).

Reads need viewer (a user of a center sees its cells' devices only; others are 404); changes need a
city-wide engineer (or admin): a user of a center gets 403. A create or rotation answers the device's new
password once; every change is committed, written to the broker's password file (batched reload) and
published on ``gs.devices`` (or left in the outbox when Kafka is unreachable: ``feed_pending``).
"""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query

from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.deps import StateDep, Viewer, require
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.schemas.devices import (
    DeviceChangeOut,
    DeviceImportIn,
    DeviceImportOut,
    DeviceMoveIn,
    DeviceRetireIn,
    DeviceUpdateIn,
    ImportErrorOut,
)
from gridsentinel.api.schemas.responses import DeviceListOut, DeviceOut
from gridsentinel.api.scope import actor_of, in_device_scope, narrow
from gridsentinel.api.state import ApiState
from gridsentinel.core.devices import Device, Location
from gridsentinel.devices.registry import DeviceRegistry, Outcome
from gridsentinel.devices.store import DeviceError, DeviceRecord

router = APIRouter(prefix="/api/v1/devices", tags=["devices"])
Engineer = Annotated[TokenEntry, Depends(require("engineer", city_wide=True))]
DeviceId = Annotated[str, Path(max_length=64, examples=["drain-001"])]


def _out(record: DeviceRecord) -> DeviceOut:
    return DeviceOut.model_validate({**record.device.model_dump(), "state": record.state,
                                     "credential": record.credential, "revision": record.revision,
                                     "credential_epoch": record.credential_epoch,
                                     "updated_at": record.updated_at, "retired_at": record.retired_at})


def _registry(state: ApiState) -> DeviceRegistry:
    if state.device_registry is None:
        raise ApiError(503, "the device registry is not open (the app's lifespan has not run)")
    return state.device_registry


def _actor(entry: TokenEntry) -> str:
    return f"api:{entry.id}"


def _error(exc: DeviceError) -> ApiError:
    return ApiError(exc.status, str(exc), code="unavailable" if exc.status == 503 else None)


def _changed(outcome: Outcome) -> DeviceChangeOut:
    record = outcome.record
    return DeviceChangeOut(device=_out(record), password=outcome.passwords.get(record.id),
                           feed_pending=outcome.pending)


@router.get("", response_model=DeviceListOut, summary="List registered devices", responses=responses(401, 403, 422))
async def list_devices(
    state: StateDep,
    token: Viewer,
    kind: Annotated[
        str | None, Query(max_length=32, description="Only this device kind.", examples=["drain_level"])
    ] = None,
    grid_prefix: Annotated[
        str | None, Query(pattern=r"^[0-9]{1,15}$", description="Only devices in cells under this prefix.")
    ] = None,
    device_state: Annotated[
        Literal["active", "retired", "all"],
        Query(alias="state", description="active, retired or all (default all: retired devices show their state)."),
    ] = "all",
) -> DeviceListOut:
    prefix = narrow(grid_prefix, actor_of(token).prefix)
    if prefix is None:  # a prefix outside the holder's center: nothing of it is shown
        return DeviceListOut(items=[])
    records = await _registry(state).store.list_devices(
        state=None if device_state == "all" else device_state, kind=kind, grid_prefix=prefix or None)
    records = [r for r in records if in_device_scope(token, r.device.grid_code)]
    return DeviceListOut(items=[_out(r) for r in records])


@router.get("/{device_id}", response_model=DeviceOut, summary="One device", responses=responses(401, 403, 404, 422))
async def get_device(device_id: DeviceId, state: StateDep, token: Viewer) -> DeviceOut:
    record = await _registry(state).store.get(device_id)
    if record is None or not in_device_scope(token, record.device.grid_code):
        raise ApiError(404, f"no device {device_id}")
    return _out(record)


@router.post("", status_code=201, response_model=DeviceChangeOut,
             summary="Register a device and issue its password (answered once)",
             description="Engineer or admin. 409 when the id exists (retired ids are never reused); 503 when the "
                         "broker's password file cannot be written (the device is registered: rotate it).",
             responses=responses(401, 403, 409, 422, 503))
async def create_device(body: Device, state: StateDep, entry: Engineer) -> DeviceChangeOut:
    try:
        return _changed(await _registry(state).create(body, _actor(entry)))
    except DeviceError as exc:
        raise _error(exc) from None


@router.patch("/{device_id}", response_model=DeviceChangeOut, summary="Change a device's record fields",
              description="Engineer or admin. 404 unknown device, 409 retired device, 422 invalid field.",
              responses=responses(401, 403, 404, 409, 422))
async def update_device(device_id: DeviceId, body: DeviceUpdateIn, state: StateDep, entry: Engineer) -> DeviceChangeOut:
    changes = body.model_dump(include=body.model_fields_set)
    if not changes:
        raise ApiError(422, "nothing to update: give at least one field")
    try:
        return _changed(await _registry(state).update(device_id, changes, _actor(entry)))
    except DeviceError as exc:
        raise _error(exc) from None


@router.post("/{device_id}/move", response_model=DeviceChangeOut,
             summary="Move a device (its grid code is found again from the grid)",
             description="Engineer or admin. 404 unknown device, 409 retired device.",
             responses=responses(401, 403, 404, 409, 422))
async def move_device(device_id: DeviceId, body: DeviceMoveIn, state: StateDep, entry: Engineer) -> DeviceChangeOut:
    try:
        return _changed(await _registry(state).move(device_id, Location(lat=body.lat, lon=body.lon), _actor(entry),
                                                    body.grid_code))
    except DeviceError as exc:
        raise _error(exc) from None


@router.post("/{device_id}/retire", response_model=DeviceChangeOut,
             summary="Retire a device for good (credential removed; its messages are rejected)",
             description="Engineer or admin. 404 unknown device, 409 already retired, 503 password file not "
                         "updated (retired in the registry: `gridsentinel devices sync` removes the line).",
             responses=responses(401, 403, 404, 409, 422, 503))
async def retire_device(device_id: DeviceId, state: StateDep, entry: Engineer,
                        body: DeviceRetireIn | None = None) -> DeviceChangeOut:
    try:
        return _changed(await _registry(state).retire(device_id, _actor(entry), body.reason if body else ""))
    except DeviceError as exc:
        raise _error(exc) from None


@router.post("/{device_id}/rotate", response_model=DeviceChangeOut,
             summary="Issue a new password (answered once); the old one stops working at once",
             description="Engineer or admin. The broker reload disconnects a client still using the old "
                         "password. 404 unknown device, 409 retired device, 503 password file not updated.",
             responses=responses(401, 403, 404, 409, 422, 503))
async def rotate_device(device_id: DeviceId, state: StateDep, entry: Engineer) -> DeviceChangeOut:
    try:
        return _changed(await _registry(state).rotate(device_id, _actor(entry)))
    except DeviceError as exc:
        raise _error(exc) from None


@router.post("/{device_id}/revoke", response_model=DeviceChangeOut,
             summary="Remove a device's password (it stays registered; rotate issues a new one)",
             description="Engineer or admin. 404 unknown device, 409 retired device, 503 password file not updated.",
             responses=responses(401, 403, 404, 409, 422, 503))
async def revoke_device(device_id: DeviceId, state: StateDep, entry: Engineer) -> DeviceChangeOut:
    try:
        return _changed(await _registry(state).revoke(device_id, _actor(entry)))
    except DeviceError as exc:
        raise _error(exc) from None


@router.post("/import", response_model=DeviceImportOut,
             summary="Bulk create from CSV or YAML (dry_run=true checks only); all or nothing",
             description="Engineer or admin. Every problem is listed by row and field; with any problem nothing "
                         "is imported (a dry run answers 200 with the errors, an import 422 with them in "
                         "`details`). One transaction, one password-file write, one broker reload. Large files: "
                         "the body limit is GS_API_MAX_BODY_BYTES; use `gridsentinel devices import`.",
             responses=responses(401, 403, 413, 422, 503))
async def import_devices(body: DeviceImportIn, state: StateDep, entry: Engineer,
                         dry_run: Annotated[bool, Query(description="Check only; change nothing.")] = False,
                         ) -> DeviceImportOut:
    try:
        report = await _registry(state).import_text(body.content, f"body.{body.format}", _actor(entry),
                                                    dry_run=dry_run)
    except DeviceError as exc:
        raise _error(exc) from None
    errors = [ImportErrorOut(**e.to_dict()) for e in report.errors]
    if errors and not dry_run:
        raise ApiError(422, f"{len(errors)} error(s); nothing imported", code="import_invalid",
                       details=[e.model_dump() for e in errors])
    outcome = report.outcome
    return DeviceImportOut(dry_run=dry_run, devices=report.devices, errors=errors,
                           created=[r.id for r in outcome.records] if outcome else [],
                           passwords=outcome.passwords if outcome else {},
                           feed_pending=outcome.pending if outcome else 0)
