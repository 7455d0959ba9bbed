"""Alert subscribers: per-center MQTT accounts that may read their center's alerts and nothing else.

A dispatch center's system subscribes to ``gs/v1/alerts/<its prefix as topic levels>/#`` with a username and
password of its own instead of the gateway's (which reads every device's telemetry). Like a device's:

- the password is random (``secrets.token_urlsafe``), shown once, and stored only hashed in the broker's
  password file; the grants (read of the center's alert filters, :func:`grants_for`) go to the broker's
  ACL in the same locked step, and one batched reload applies both (``Mosquitto.set_credentials``);
- rotation replaces the password, revocation removes the password and the grants; at that reload Mosquitto
  disconnects a connected client whose password no longer matches;
- the account is a row of ``alert_subscribers`` in the case database (migration 0006), beside the devices:
  a subscriber's name is an MQTT username, so it can be neither a device id (active or retired) nor
  ``alerts`` nor ``gateway``, and a device cannot take a subscriber's name (``DeviceStore.create``).

A city center (4 digits) is not a whole topic level (a district level has 6), so it is granted one filter per
district of config/grid.geojson under its digits; ``gridsentinel centers subscriber sync`` writes every
active subscriber's grants again after the grid gains a district.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gridsentinel.cases.gridcode import Center, GridCodeError, parse_center
from gridsentinel.core.alert_topics import ALERT_TOPIC_ROOT, AlertTopicError, center_filters
from gridsentinel.core.devices import RESERVED_DEVICE_IDS
from gridsentinel.devices.registry import BrokerCredentials, CredentialError, new_password
from gridsentinel.devices.store import DeviceConflict, DeviceError, DeviceNotFound, alert_subscribers, devices
from gridsentinel.errors import GridSentinelError

SubscriberState = Literal["active", "revoked"]
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# MQTT usernames GridSentinel uses itself (the device-topic segments it reserves, and the gateway's user).
RESERVED_NAMES = frozenset({*RESERVED_DEVICE_IDS, "gateway"})


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be a subscriber's name (None: it can, unless a device or subscriber has it).

    >>> name_problem("street-320582004") is None
    True
    >>> name_problem("gateway")
    "'gateway' is reserved (GridSentinel's own MQTT usernames and topic segments: alerts, gateway)"
    >>> name_problem("Street A")  # doctest: +ELLIPSIS
    "'Street A' is not a subscriber name: lower-case letters, digits, '_', '.', '-' (1-64, starting with ...)"
    """
    if name.lower() in RESERVED_NAMES:
        return (f"{name!r} is reserved (GridSentinel's own MQTT usernames and topic segments: "
                f"{', '.join(sorted(RESERVED_NAMES))})")
    if not NAME_PATTERN.match(name):
        return (f"{name!r} is not a subscriber name: lower-case letters, digits, '_', '.', '-' (1-64, starting "
                "with a letter or digit)")
    return None


def grants_for(center: Center, cells: Iterable[str], root: str = ALERT_TOPIC_ROOT) -> list[str]:
    """The topic filters a subscriber of ``center`` may read, given the grid's cell codes; a center that owns
    no cell of the grid is refused (a typo would otherwise grant nothing, silently).

    >>> cells = ["320582004001001", "320582005001001", "320583001001001"]
    >>> grants_for(parse_center("street:320582004"), cells)
    ['gs/v1/alerts/320582/004/#']
    >>> grants_for(parse_center("city:3205"), cells)
    ['gs/v1/alerts/320582/#', 'gs/v1/alerts/320583/#']
    """
    codes = list(cells)
    if not any(code.startswith(center.prefix) for code in codes):
        raise SubscriberError(f"center {center.id} has no cell in config/grid.geojson; use a center of the grid "
                              f"(e.g. {_example_centers(codes, center.level)})")
    try:
        return center_filters(center.level, center.prefix, districts={c[:6] for c in codes}, root=root)
    except AlertTopicError as exc:
        raise SubscriberError(f"center {center.id}: {exc}") from None


def _example_centers(codes: list[str], level: str) -> str:
    width = {"city": 4, "district": 6, "street": 9, "community": 12}.get(level, 9)
    return ", ".join(f"{level}:{p}" for p in sorted({c[:width] for c in codes})[:5]) or "none: the grid is empty"


class SubscriberError(DeviceError):
    """An alert-subscriber operation that cannot be done (bad name or center)."""


@dataclass(frozen=True, slots=True)
class SubscriberRecord:
    name: str
    center: str
    state: SubscriberState
    credential_epoch: int
    description: str
    created_at: float
    updated_at: float
    revoked_at: float | None
    created_by: str
    actor: str

    def to_dict(self) -> dict[str, Any]:
        return {f: getattr(self, f) for f in self.__slots__}


def _record(row: Any) -> SubscriberRecord:
    return SubscriberRecord(row.name, row.center, row.state, row.credential_epoch, row.description, row.created_at,
                            row.updated_at, row.revoked_at, row.created_by, row.actor)


@dataclass
class Issued:
    """A subscriber changed, with its new password (shown once) and the filters it may read."""

    record: SubscriberRecord
    password: str | None
    grants: list[str]


class SubscriberRegistry:
    """Alert subscribers over the case database (``engine``, migrated), the broker and the grid's cells."""

    def __init__(self, engine: AsyncEngine, credentials: BrokerCredentials, cells: Collection[str],
                 clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.credentials = credentials
        self.cells = cells
        self.clock = clock

    # -- reading -------------------------------------------------------------------------------------------

    async def get(self, name: str) -> SubscriberRecord:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(alert_subscribers).where(alert_subscribers.c.name == name))).first()
        if row is None:
            raise DeviceNotFound(f"no alert subscriber {name!r} (gridsentinel centers subscriber list)")
        return _record(row)

    async def records(self, *, center: str | None = None, state: SubscriberState | None = None
                   ) -> list[SubscriberRecord]:
        stmt = sa.select(alert_subscribers).order_by(alert_subscribers.c.center, alert_subscribers.c.name)
        if center is not None:
            stmt = stmt.where(alert_subscribers.c.center == center)
        if state is not None:
            stmt = stmt.where(alert_subscribers.c.state == state)
        async with self.engine.connect() as conn:
            return [_record(r) for r in await conn.execute(stmt)]

    def grants(self, record: SubscriberRecord) -> list[str]:
        """What ``record`` may read now (none once revoked)."""
        return grants_for(parse_center(record.center), self.cells) if record.state == "active" else []

    # -- writing -------------------------------------------------------------------------------------------

    async def create(self, name: str, center_id: str, actor: str, description: str = "") -> Issued:
        """A new subscriber of ``center_id`` with a first password. The row is committed first, then the
        password and grants go to the broker (a failure there says to rotate)."""
        problem = name_problem(name)
        if problem:
            raise SubscriberError(problem)
        center = _center(center_id)
        grants = grants_for(center, self.cells)
        now = self.clock()
        try:
            async with self.engine.begin() as conn:
                device = (await conn.execute(sa.select(devices.c.id, devices.c.state)
                                             .where(devices.c.id == name))).first()
                if device is not None:
                    raise DeviceConflict(f"{name!r} is a device id ({device.state}): a subscriber's name is an MQTT "
                                         "username and cannot be a device's; choose another name")
                taken = await conn.scalar(sa.select(alert_subscribers.c.center)
                                          .where(alert_subscribers.c.name == name))
                if taken is not None:
                    raise DeviceConflict(f"alert subscriber {name!r} exists already (center {taken}); rotate it for "
                                         "a new password, or choose another name")
                await conn.execute(sa.insert(alert_subscribers).values(
                    name=name, center=center.id, state="active", credential_epoch=1, description=description,
                    created_at=now, updated_at=now, revoked_at=None, created_by=actor, actor=actor))
        except IntegrityError as exc:  # another writer took the name meanwhile
            raise DeviceConflict(f"alert subscriber {name!r} exists already: {exc.orig}") from exc
        password = new_password()
        await self._broker({name: password}, [], {name: grants}, f"subscriber {name}")
        return Issued(await self.get(name), password, grants)

    async def rotate(self, name: str, actor: str) -> Issued:
        """A new password (the old one stops working at the reload); a revoked subscriber is active again."""
        record = await self._change(name, actor, state="active")
        grants = self.grants(record)
        password = new_password()
        await self._broker({name: password}, [], {name: grants}, f"credential epoch {record.credential_epoch} of "
                                                                  f"subscriber {name}")
        return Issued(record, password, grants)

    async def revoke(self, name: str, actor: str) -> Issued:
        """No password and no grants; the name stays taken (``rotate`` issues a new password)."""
        record = await self._change(name, actor, state="revoked")
        await self._broker({}, [name], {}, f"revocation of subscriber {name}")
        return Issued(record, None, [])

    async def sync(self) -> tuple[list[SubscriberRecord], list[str]]:
        """Write every active subscriber's grants again from the current grid (a city center's districts),
        and remove the password lines and grants of revoked ones; (the active records, the names removed)."""
        records = await self.records()
        active = [r for r in records if r.state == "active"]
        present = self.credentials.present()
        stale = sorted(r.name for r in records if r.state == "revoked" and r.name in present)
        await self._broker({}, stale, {r.name: self.grants(r) for r in active}, "the subscribers' sync")
        return active, stale

    async def _change(self, name: str, actor: str, *, state: SubscriberState) -> SubscriberRecord:
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(alert_subscribers).where(alert_subscribers.c.name == name)
                                      .with_for_update())).first()
            if row is None:
                raise DeviceNotFound(f"no alert subscriber {name!r} (gridsentinel centers subscriber list)")
            now = max(self.clock(), row.updated_at)
            await conn.execute(sa.update(alert_subscribers).where(alert_subscribers.c.name == name).values(
                state=state, credential_epoch=row.credential_epoch + 1, updated_at=now, actor=actor,
                revoked_at=now if state == "revoked" else None))
            after = (await conn.execute(sa.select(alert_subscribers)
                                        .where(alert_subscribers.c.name == name))).one()
        return _record(after)

    async def _broker(self, issue: dict[str, str], revoke: list[str], grants: dict[str, list[str]],
                      what: str) -> None:
        try:
            await self.credentials.apply(issue, revoke, grants)
        except (GridSentinelError, OSError) as exc:
            then = "rotate it" if issue else "run gridsentinel centers subscriber sync"
            raise CredentialError(f"{what} is committed, but the broker's password file or ACL could not be "
                                  f"updated ({exc}); {then}") from exc


def _center(center_id: str) -> Center:
    try:
        return parse_center(center_id)
    except GridCodeError as exc:
        raise SubscriberError(str(exc)) from None
