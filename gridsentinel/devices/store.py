"""The device registry in the case database (SQLite by default, PostgreSQL in production).

Two tables, created by the case store's migration ``0003_device_registry``:

- ``devices``: one row per device ever registered: its record (the ``Device`` fields), ``state``
  (active | retired: a retired id is never reused), ``credential`` (seed: the stack-derived password of
  a config/devices.yaml device; issued: a random one given out once; revoked: none), ``revision`` (grows
  by one per change), ``credential_epoch`` (grows with each issue, rotation or revocation), times, actor.
- ``device_history``: one row per change (the audit trail: action, who, when, what changed) holding the
  ``DeviceChange`` it produces on ``gs.devices``. A row whose ``published_at`` is empty is not on Kafka
  yet: it is the outbox, written in the same transaction as the change, so a change committed while
  Kafka is down is published by the next operation or ``gridsentinel devices sync``.

``alert_subscribers`` (migration ``0006``, operated by devices/subscribers.py) is defined here too: a
device id and a subscriber name are both MQTT usernames, so each store refuses a name the other holds.

Writes lock the device row (``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` excludes other
writers), so two writers cannot both make revision n+1. Credentials are not here: only their epoch.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from gridsentinel.cases.store import StoreOpener
from gridsentinel.core.device_feed import DeviceChange, DeviceState
from gridsentinel.core.devices import Device, Location
from gridsentinel.core.grid import GridMap
from gridsentinel.errors import GridSentinelError

CredentialState = Literal["seed", "issued", "revoked"]
Action = Literal["create", "seed", "update", "move", "retire", "rotate", "revoke"]

metadata = sa.MetaData()

devices = sa.Table(
    "devices", metadata,
    sa.Column("id", sa.String(64), primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("lat", sa.Double, nullable=False),
    sa.Column("lon", sa.Double, nullable=False),
    sa.Column("grid_code", sa.String(15)),
    sa.Column("component_id", sa.String(16)),
    sa.Column("expected_interval_s", sa.Double, nullable=False),
    sa.Column("install", sa.JSON, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("credential", sa.String(16), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("credential_epoch", sa.Integer, nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("retired_at", sa.Double),
    sa.Column("actor", sa.String(128), nullable=False),
)

device_history = sa.Table(
    "device_history", metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True, autoincrement=True),
    sa.Column("device_id", sa.String(64), nullable=False),
    sa.Column("revision", sa.Integer, nullable=False),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("at", sa.Double, nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
    sa.Column("detail", sa.JSON, nullable=False),
    sa.Column("change", sa.Text, nullable=False),
    sa.Column("published_at", sa.Double),
)

# Alert subscribers (migration 0006; their operations: devices/subscribers.py). Defined here because a
# subscriber's name and a device's id are both MQTT usernames: `create` refuses a device id that is taken.
alert_subscribers = sa.Table(
    "alert_subscribers", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("center", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("credential_epoch", sa.Integer, nullable=False),
    sa.Column("description", sa.String(200), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("updated_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("actor", sa.String(128), nullable=False),
)

# Fields `update` may change; `move` changes the location (and so the grid code); the id never changes.
UPDATABLE = ("kind", "component_id", "expected_interval_s", "install", "grid_code")
_CHUNK = 500  # rows per INSERT / values per IN (...): far below every driver's parameter limit


class DeviceError(GridSentinelError):
    """A registry operation that cannot be done; ``status`` is its HTTP status (404, 409, 422)."""

    status = 422


class DeviceNotFound(DeviceError):
    status = 404


class DeviceConflict(DeviceError):
    """The device exists already, is retired, or changed meanwhile."""

    status = 409


@dataclass(frozen=True, slots=True)
class DeviceRecord:
    """A device as the registry holds it."""

    device: Device
    state: DeviceState
    credential: CredentialState
    revision: int
    credential_epoch: int
    created_at: float
    updated_at: float
    retired_at: float | None
    actor: str

    @property
    def id(self) -> str:
        return self.device.id

    def change(self) -> DeviceChange:
        """The ``gs.devices`` message for the record as it is now."""
        return DeviceChange(device=self.device, state=self.state, revision=self.revision,
                            changed_at=self.updated_at, credential_epoch=self.credential_epoch, actor=self.actor)

    def to_dict(self) -> dict[str, Any]:
        return {**self.device.model_dump(mode="json"), "state": self.state, "credential": self.credential,
                "revision": self.revision, "credential_epoch": self.credential_epoch,
                "created_at": self.created_at, "updated_at": self.updated_at, "retired_at": self.retired_at,
                "actor": self.actor}


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    device_id: str
    revision: int
    action: str
    at: float
    actor: str
    detail: dict[str, Any]
    published_at: float | None


def resolve_grid(device: Device, grid: GridMap | None) -> Device:
    """``device`` with its grid code found from its location when it has none (None outside the grid)."""
    if device.grid_code is not None or grid is None:
        return device
    code = grid.locate(device.location.lat, device.location.lon)
    return device.model_copy(update={"grid_code": code}) if code else device


def _device_row(device: Device) -> dict[str, Any]:
    return {"id": device.id, "kind": device.kind, "lat": device.location.lat, "lon": device.location.lon,
            "grid_code": device.grid_code, "component_id": device.component_id,
            "expected_interval_s": device.expected_interval_s, "install": dict(device.install)}


def _row_record(row: sa.Row[Any]) -> DeviceRecord:
    m = row._mapping
    device = Device(id=m["id"], kind=m["kind"], location=Location(lat=m["lat"], lon=m["lon"]),
                    grid_code=m["grid_code"], component_id=m["component_id"],
                    expected_interval_s=m["expected_interval_s"], install=dict(m["install"] or {}))
    return DeviceRecord(device=device, state=m["state"], credential=m["credential"], revision=m["revision"],
                        credential_epoch=m["credential_epoch"], created_at=m["created_at"],
                        updated_at=m["updated_at"], retired_at=m["retired_at"], actor=m["actor"])


def _history_row(record: DeviceRecord, action: Action, detail: dict[str, Any]) -> dict[str, Any]:
    return {"device_id": record.id, "revision": record.revision, "action": action, "at": record.updated_at,
            "actor": record.actor, "detail": detail, "change": record.change().encode().decode()}


class DeviceStore:
    """The registry's rows. Open with ``await DeviceStore.open(url, grid)`` (migrates the database)."""

    def __init__(self, engine: AsyncEngine, grid: GridMap | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.grid = grid
        self.clock = clock

    @classmethod
    def open(cls, url: str, grid: GridMap | None = None, *, migrate: bool = True,
             clock: Callable[[], float] = time.time) -> StoreOpener[DeviceStore]:
        """``store = await DeviceStore.open(url)`` or ``async with DeviceStore.open(url) as store``."""
        return StoreOpener(lambda engine: cls(engine, grid, clock), url, migrate)

    async def close(self) -> None:
        await self.engine.dispose()

    # -- reading -------------------------------------------------------------------------------------------

    async def get(self, device_id: str) -> DeviceRecord | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(devices).where(devices.c.id == device_id))).first()
        return _row_record(row) if row else None

    async def require(self, device_id: str) -> DeviceRecord:
        record = await self.get(device_id)
        if record is None:
            raise DeviceNotFound(f"no device {device_id!r} in the registry")
        return record

    async def list_devices(self, *, state: DeviceState | None = None, kind: str | None = None,
                   grid_prefix: str | None = None) -> list[DeviceRecord]:
        stmt = sa.select(devices).order_by(devices.c.id)
        if state is not None:
            stmt = stmt.where(devices.c.state == state)
        if kind is not None:
            stmt = stmt.where(devices.c.kind == kind)
        if grid_prefix:
            stmt = stmt.where(devices.c.grid_code.startswith(grid_prefix))
        async with self.engine.connect() as conn:
            return [_row_record(r) for r in await conn.execute(stmt)]

    async def count(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(devices)) or 0)

    async def existing_ids(self, ids: Collection[str]) -> dict[str, DeviceState]:
        """Which of ``ids`` the registry has (active or retired), with their state."""
        found: dict[str, DeviceState] = {}
        wanted = sorted(set(ids))
        async with self.engine.connect() as conn:
            for start in range(0, len(wanted), _CHUNK):
                rows = await conn.execute(sa.select(devices.c.id, devices.c.state)
                                          .where(devices.c.id.in_(wanted[start:start + _CHUNK])))
                found.update({r.id: r.state for r in rows})
        return found

    async def subscriber_names(self, ids: Collection[str]) -> list[str]:
        """Which of ``ids`` are alert subscribers' names (MQTT usernames a device cannot take)."""
        async with self.engine.connect() as conn:
            return await _subscriber_names(conn, ids)

    async def history(self, device_id: str) -> list[HistoryEntry]:
        stmt = (sa.select(device_history).where(device_history.c.device_id == device_id)
                .order_by(device_history.c.revision))
        async with self.engine.connect() as conn:
            return [HistoryEntry(r.device_id, r.revision, r.action, r.at, r.actor, dict(r.detail or {}),
                                 r.published_at) for r in await conn.execute(stmt)]

    # -- writing -------------------------------------------------------------------------------------------

    @asynccontextmanager
    async def _tx(self) -> AsyncIterator[AsyncConnection]:
        async with self.engine.begin() as conn:
            yield conn

    async def create(self, new: Sequence[Device], actor: str, *,
                     credential: CredentialState = "issued") -> list[DeviceRecord]:
        """Register devices, all or none (``DeviceConflict`` naming the ids that exist already).
        ``credential``: issued (the caller gives each a random password) or seed (stack-derived)."""
        if not new:
            return []
        ids = [d.id for d in new]
        twice = sorted({i for i in ids if ids.count(i) > 1}) if len(set(ids)) != len(ids) else []
        if twice:
            raise DeviceConflict(f"device ids given more than once: {', '.join(twice[:20])}")
        now = self.clock()
        epoch = 1 if credential == "issued" else 0
        records = [DeviceRecord(device=resolve_grid(d, self.grid), state="active", credential=credential,
                                revision=1, credential_epoch=epoch, created_at=now, updated_at=now,
                                retired_at=None, actor=actor) for d in new]
        action: Action = "seed" if credential == "seed" else "create"
        async with _integrity_as_conflict(), self._tx() as conn:
            taken = []
            for start in range(0, len(ids), _CHUNK):
                taken += list(await conn.scalars(sa.select(devices.c.id)
                                                 .where(devices.c.id.in_(ids[start:start + _CHUNK]))))
            if taken:
                raise DeviceConflict(f"{len(taken)} device id(s) exist already (retired ids are not reused): "
                                     f"{', '.join(sorted(taken)[:20])}")
            subscribers = await _subscriber_names(conn, ids)
            if subscribers:
                raise DeviceConflict(f"{len(subscribers)} device id(s) are alert subscribers' MQTT usernames "
                                     f"(gridsentinel centers subscriber list): {', '.join(subscribers[:20])}; "
                                     "choose other ids")
            rows = [{**_device_row(r.device), "state": "active", "credential": credential, "revision": 1,
                     "credential_epoch": epoch, "created_at": now, "updated_at": now, "retired_at": None,
                     "actor": actor} for r in records]
            for start in range(0, len(rows), _CHUNK):
                await conn.execute(sa.insert(devices), rows[start:start + _CHUNK])
            history = [_history_row(r, action, {"credential": credential}) for r in records]
            for start in range(0, len(history), _CHUNK):
                await conn.execute(sa.insert(device_history), history[start:start + _CHUNK])
        return records

    async def seed(self, new: Sequence[Device], actor: str = "seed") -> list[DeviceRecord]:
        """Add the devices whose ids the registry does not have (existing ones, retired too, are left
        untouched), with the stack-derived credential of the dev/demo path."""
        existing = await self.existing_ids([d.id for d in new])
        return await self.create([d for d in new if d.id not in existing], actor, credential="seed")

    async def _change(self, device_id: str, actor: str, action: Action,
                      edit: Callable[[DeviceRecord], tuple[dict[str, Any], dict[str, Any]]]) -> DeviceRecord:
        """Lock the device, let ``edit`` compute (column changes, history detail), write both; the new
        record. A retired device cannot change."""
        async with self._tx() as conn:
            row = (await conn.execute(sa.select(devices).where(devices.c.id == device_id)
                                      .with_for_update())).first()
            if row is None:
                raise DeviceNotFound(f"no device {device_id!r} in the registry")
            current = _row_record(row)
            if current.state == "retired":
                raise DeviceConflict(f"device {device_id!r} is retired (since {current.retired_at:.0f}); "
                                     f"a retired device cannot {action}")
            values, detail = edit(current)
            now = max(self.clock(), current.updated_at)
            values = {**values, "revision": current.revision + 1, "updated_at": now, "actor": actor}
            result = await conn.execute(sa.update(devices).where(
                devices.c.id == device_id, devices.c.revision == current.revision).values(values))
            if result.rowcount != 1:
                raise DeviceConflict(f"device {device_id!r} changed meanwhile; try again")
            after = _row_record((await conn.execute(sa.select(devices).where(devices.c.id == device_id))).one())
            await conn.execute(sa.insert(device_history), [_history_row(after, action, detail)])
        return after

    async def update(self, device_id: str, changes: dict[str, Any], actor: str) -> DeviceRecord:
        """Change record fields (kind, component_id, expected_interval_s, install, grid_code); each is
        validated as a ``Device`` field. ``DeviceError`` for an unknown or invalid field."""
        unknown = sorted(set(changes) - set(UPDATABLE))
        if unknown:
            raise DeviceError(f"cannot update {', '.join(unknown)}: updatable fields are {', '.join(UPDATABLE)} "
                              f"(use move for the location; ids never change)")

        def edit(current: DeviceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
            device = _validated(current.device, changes)
            before = current.device.model_dump(mode="json")
            after = device.model_dump(mode="json")
            diff = {k: {"from": before[k], "to": after[k]} for k in changes if before[k] != after[k]}
            return _device_row(device), {"changed": diff}

        return await self._change(device_id, actor, "update", edit)

    async def move(self, device_id: str, location: Location, actor: str,
                   grid_code: str | None = None) -> DeviceRecord:
        """A new location; the grid code is found again from the grid (or given)."""
        def edit(current: DeviceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
            moved = _validated(current.device, {"location": location.model_dump(), "grid_code": grid_code})
            moved = resolve_grid(moved, self.grid)
            detail = {"from": {**current.device.location.model_dump(), "grid_code": current.device.grid_code},
                      "to": {**moved.location.model_dump(), "grid_code": moved.grid_code}}
            return _device_row(moved), detail

        return await self._change(device_id, actor, "move", edit)

    async def retire(self, device_id: str, actor: str, reason: str = "") -> DeviceRecord:
        """Retire the device for good: its credential is revoked (epoch + 1) and its id is never reused."""
        def edit(current: DeviceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
            return ({"state": "retired", "retired_at": self.clock(), "credential": "revoked",
                     "credential_epoch": current.credential_epoch + 1}, {"reason": reason})

        return await self._change(device_id, actor, "retire", edit)

    async def rotate(self, device_id: str, actor: str) -> DeviceRecord:
        """A new credential epoch (the caller writes the new password to the broker)."""
        def edit(current: DeviceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
            return ({"credential": "issued", "credential_epoch": current.credential_epoch + 1},
                    {"credential_from": current.credential})

        return await self._change(device_id, actor, "rotate", edit)

    async def revoke(self, device_id: str, actor: str) -> DeviceRecord:
        """No credential until the next rotation; the device stays registered."""
        def edit(current: DeviceRecord) -> tuple[dict[str, Any], dict[str, Any]]:
            return ({"credential": "revoked", "credential_epoch": current.credential_epoch + 1},
                    {"credential_from": current.credential})

        return await self._change(device_id, actor, "revoke", edit)

    # -- the outbox ----------------------------------------------------------------------------------------

    async def pending_count(self) -> int:
        async with self.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(device_history)
                                         .where(device_history.c.published_at.is_(None))) or 0)

    async def publish_pending(self, send: Callable[[list[DeviceChange]], Awaitable[None]],
                              batch: int = 5000) -> int:
        """Hand the unpublished changes, oldest first, to ``send`` (which returns once Kafka has them) and
        mark them published; how many. The rows stay locked meanwhile, so two publishers never overtake
        each other (compaction keeps the last message of a key: it must be the newest revision). When
        ``send`` raises, nothing is marked and the error propagates."""
        total = 0
        while True:
            async with self._tx() as conn:
                rows = (await conn.execute(
                    sa.select(device_history.c.id, device_history.c.change)
                    .where(device_history.c.published_at.is_(None))
                    .order_by(device_history.c.id).limit(batch).with_for_update())).all()
                if not rows:
                    return total
                await send([DeviceChange.decode(None, r.change.encode()) for r in rows])
                ids = [r.id for r in rows]
                now = self.clock()
                for start in range(0, len(ids), _CHUNK):
                    await conn.execute(sa.update(device_history).where(
                        device_history.c.id.in_(ids[start:start + _CHUNK])).values(published_at=now))
                total += len(rows)
            if len(rows) < batch:
                return total


async def _subscriber_names(conn: AsyncConnection, ids: Collection[str]) -> list[str]:
    wanted = sorted(set(ids))
    found: list[str] = []
    for start in range(0, len(wanted), _CHUNK):
        found += list(await conn.scalars(sa.select(alert_subscribers.c.name)
                                         .where(alert_subscribers.c.name.in_(wanted[start:start + _CHUNK]))))
    return sorted(found)


@asynccontextmanager
async def _integrity_as_conflict() -> AsyncIterator[None]:
    """A unique-key race with another writer (two creators of one id) is a conflict, not a crash."""
    try:
        yield
    except IntegrityError as exc:
        raise DeviceConflict(f"a device id exists already (another writer added it meanwhile): {exc.orig}") from exc


def _validated(device: Device, changes: dict[str, Any]) -> Device:
    """``device`` with ``changes``, validated as a whole; ``DeviceError`` naming each bad field."""
    from pydantic import ValidationError

    try:
        return Device.model_validate({**device.model_dump(), **changes})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']} (got {e.get('input')!r})"
                             for e in exc.errors())
        raise DeviceError(f"device {device.id!r}: {problems}") from None

