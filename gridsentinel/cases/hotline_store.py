"""The 12345 hotline's calls in the case database (table ``hotline_calls``, migration 0007).

A call is kept from intake on, so nothing a caller said is lost: ``pending`` until a call-taker
confirms its category, ``queued`` when confirmed but its address could not be placed (the queue a
call-taker works through), ``sent`` once its detection went to ``gs.detections``. Status changes are
compare-and-set (``expect``), so two call-takers resolving one queued call send it once.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

CallStatus = Literal["pending", "queued", "sent"]
CALL_STATUSES: tuple[str, ...] = ("pending", "queued", "sent")

metadata = sa.MetaData()
hotline_calls = sa.Table(
    "hotline_calls", metadata,
    sa.Column("call_id", sa.String(64), primary_key=True),
    sa.Column("ticket", sa.String(64), unique=True),
    sa.Column("text", sa.Text, nullable=False),
    sa.Column("address", sa.String(400), nullable=False),
    sa.Column("called_at", sa.Double, nullable=False),
    sa.Column("received_at", sa.Double, nullable=False),
    sa.Column("taken_by", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("candidates", sa.JSON, nullable=False),
    sa.Column("suggestions", sa.JSON, nullable=False),
    sa.Column("category_key", sa.String(40)),
    sa.Column("grid_code", sa.String(15)),
    sa.Column("lat", sa.Double),
    sa.Column("lon", sa.Double),
    sa.Column("place", sa.String(200)),
    sa.Column("located_by", sa.String(16)),
    sa.Column("detection_id", sa.String(64)),
    sa.Column("confirmed_by", sa.String(64)),
    sa.Column("confirmed_at", sa.Double),
    sa.Column("resolved_by", sa.String(64)),
    sa.Column("resolved_at", sa.Double),
)


@dataclass(frozen=True, slots=True)
class HotlineCall:
    call_id: str
    text: str
    address: str
    called_at: float  # when the caller called (the detection's event time)
    received_at: float  # when the intake stored it
    taken_by: str  # the call-taker's user name
    status: CallStatus
    candidates: list[dict[str, Any]]  # the gazetteer's candidates at intake
    suggestions: list[dict[str, Any]]  # the suggested categories at intake
    ticket: str | None = None
    category_key: str | None = None
    grid_code: str | None = None
    lat: float | None = None
    lon: float | None = None
    place: str | None = None  # the gazetteer name the point came from, if any
    located_by: str | None = None  # gazetteer | candidate | point | cell
    detection_id: str | None = None
    confirmed_by: str | None = None
    confirmed_at: float | None = None
    resolved_by: str | None = None
    resolved_at: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _row(row: Any) -> HotlineCall:
    m = row._mapping
    return HotlineCall(**{f.name: m[f.name] for f in fields(HotlineCall)})


class HotlineStore:
    """Calls on the case database's engine (the caller owns and disposes of the engine)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, call: HotlineCall) -> tuple[HotlineCall, bool]:
        """Store a new call; with a ``ticket`` already stored, the stored call and False (a retried intake)."""
        if call.ticket is not None:
            found = await self.by_ticket(call.ticket)
            if found is not None:
                return found, False
        try:
            async with self.engine.begin() as conn:
                await conn.execute(sa.insert(hotline_calls).values(**call.to_dict()))
        except IntegrityError:  # the same ticket, stored concurrently
            if call.ticket is None:
                raise
            found = await self.by_ticket(call.ticket)
            if found is None:
                raise
            return found, False
        return call, True

    async def get(self, call_id: str) -> HotlineCall | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(hotline_calls).where(hotline_calls.c.call_id == call_id))).first()
        return _row(row) if row is not None else None

    async def by_ticket(self, ticket: str) -> HotlineCall | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(hotline_calls).where(hotline_calls.c.ticket == ticket))).first()
        return _row(row) if row is not None else None

    async def update(self, call: HotlineCall, expect: str, **changes: Any) -> HotlineCall | None:
        """Apply ``changes`` if the call's status is still ``expect``; None when someone else changed it first."""
        async with self.engine.begin() as conn:
            result = await conn.execute(sa.update(hotline_calls)
                                        .where(hotline_calls.c.call_id == call.call_id,
                                               hotline_calls.c.status == expect)
                                        .values(**changes))
        return replace(call, **changes) if result.rowcount == 1 else None

    async def list(self, statuses: tuple[str, ...], *, limit: int = 100, offset: int = 0,
                   grid_prefix: str | None = None) -> list[HotlineCall]:
        """Calls in ``statuses``, oldest call first (the queue's order); with ``grid_prefix`` only the calls
        placed in a cell of it (a call not placed yet has no cell)."""
        where: list[sa.ColumnElement[bool]] = [hotline_calls.c.status.in_(statuses)]
        if grid_prefix is not None:
            where.append(hotline_calls.c.grid_code.startswith(grid_prefix, autoescape=True))
        query = (sa.select(hotline_calls).where(*where)
                 .order_by(hotline_calls.c.called_at, hotline_calls.c.call_id).limit(limit).offset(offset))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row(r) for r in rows]
