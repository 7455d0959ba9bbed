"""Citizen reports as the intake decided them (table ``citizen_reports`` in the case database, migration 0008).

Every Open311 report the intake accepted is one row, keyed by its report id (the token the POST answers):
who filed it (account, device, phone: personal data, see docs/cases.md "Report quality"), where and when,
its photo's perceptual hash, the quality assessment with every reason, and its state:

- ``accepted``: straight through; its detection went to ``gs.detections``;
- ``held``: in the verification queue (the detection is kept here, not sent);
- ``confirmed`` / ``rejected``: an inspector or dispatcher decided a held report (who, when, why);
- ``duplicate``: the same photo as an earlier report (``duplicate_of``); no detection of its own.

The rows are also what the next report is compared with (:meth:`ReportStore.recent`): near-duplicate
photos, an account's gaming signals and the rate limits.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gridsentinel.cases.quality import PastReport, QualityConfig

ReportState = Literal["accepted", "held", "confirmed", "rejected", "duplicate"]
REPORT_STATES: tuple[ReportState, ...] = ("accepted", "held", "confirmed", "rejected", "duplicate")

metadata = sa.MetaData()

citizen_reports = sa.Table(
    "citizen_reports", metadata,
    sa.Column("report_id", sa.String(32), primary_key=True),
    sa.Column("detection_id", sa.String(64), nullable=False),
    sa.Column("received_at", sa.Double, nullable=False, index=True),
    sa.Column("reporter", sa.String(64), nullable=False),  # the API token that posted it (the app)
    sa.Column("account_id", sa.String(100), index=True),
    sa.Column("device_id", sa.String(100), index=True),
    sa.Column("phone", sa.String(40)),
    sa.Column("lat", sa.Double, nullable=False),
    sa.Column("lon", sa.Double, nullable=False),
    sa.Column("filed_lat", sa.Double),  # where the reporter stood (photo GPS), when known
    sa.Column("filed_lon", sa.Double),
    sa.Column("grid_code", sa.String(15), nullable=False),
    sa.Column("category_key", sa.String(40), nullable=False),
    sa.Column("description", sa.Text, nullable=False),
    sa.Column("photo_hash", sa.String(256)),
    sa.Column("has_photo", sa.Boolean, nullable=False),
    sa.Column("decision", sa.String(16), nullable=False),  # straight / verify (quality.assess)
    sa.Column("state", sa.String(16), nullable=False, index=True),
    sa.Column("duplicate_of", sa.String(32)),
    sa.Column("gaming_score", sa.Double, nullable=False),
    sa.Column("quality", sa.JSON, nullable=False),  # Assessment.evidence(): reasons and figures
    sa.Column("detection", sa.JSON, nullable=False),  # the Detection (sent, or to send on confirm)
    sa.Column("decided_at", sa.Double),
    sa.Column("decided_by", sa.String(128)),
    sa.Column("decision_note", sa.Text),
    sa.CheckConstraint(f"state IN ({', '.join(repr(s) for s in REPORT_STATES)})", name="ck_citizen_reports_state"),
)


@dataclass(frozen=True, slots=True)
class CitizenReport:
    """One row of ``citizen_reports``."""

    report_id: str
    detection_id: str
    received_at: float
    reporter: str
    lat: float
    lon: float
    grid_code: str
    category_key: str
    decision: str
    state: ReportState
    gaming_score: float
    quality: dict[str, Any]
    detection: dict[str, Any]
    description: str = ""
    account_id: str | None = None
    device_id: str | None = None
    phone: str | None = None
    filed_lat: float | None = None
    filed_lon: float | None = None
    photo_hash: str | None = None
    has_photo: bool = False
    duplicate_of: str | None = None
    decided_at: float | None = None
    decided_by: str | None = None
    decision_note: str | None = None

    def as_past(self) -> PastReport:
        return PastReport(self.report_id, self.received_at, self.lat, self.lon, self.category_key,
                          self.account_id, self.device_id, self.photo_hash, self.filed_lat, self.filed_lon)

    def row(self) -> dict[str, Any]:
        return {c.name: getattr(self, c.name) for c in citizen_reports.columns}


def _record(row: Any) -> CitizenReport:
    return CitizenReport(**{c.name: getattr(row, c.name) for c in citizen_reports.columns})


class ReportStore:
    """The ``citizen_reports`` table on the case database's engine (migrated by the case store's Alembic)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def add(self, report: CitizenReport) -> bool:
        """Insert the report; False when a report with its id is already there (a retried POST)."""
        try:
            async with self.engine.begin() as conn:
                await conn.execute(citizen_reports.insert().values(**report.row()))
        except IntegrityError:
            return False
        return True

    async def get(self, report_id: str) -> CitizenReport | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(citizen_reports)
                                      .where(citizen_reports.c.report_id == report_id))).first()
        return _record(row) if row is not None else None

    async def recent(self, now: float, cfg: QualityConfig, account_id: str | None,
                     device_id: str | None) -> list[PastReport]:
        """What a new report at ``now`` is compared with: every report with a photo within the duplicate
        window, and the account's and the device's reports within the gaming and rate-limit windows."""
        c = citizen_reports.c
        mine: list[sa.ColumnElement[bool]] = []
        if account_id is not None:
            mine.append(c.account_id == account_id)
        if device_id is not None:
            mine.append(c.device_id == device_id)
        wanted: list[sa.ColumnElement[bool]] = [
            sa.and_(c.photo_hash.is_not(None), c.received_at >= now - cfg.duplicate_window_s)]
        if mine:
            span = max(cfg.gaming_window_s, cfg.burst_window_s, cfg.rate_window_s)
            wanted.append(sa.and_(sa.or_(*mine), c.received_at >= now - span))
        stmt = (sa.select(c.report_id, c.received_at, c.lat, c.lon, c.category_key, c.account_id, c.device_id,
                          c.photo_hash, c.filed_lat, c.filed_lon)
                .where(sa.or_(*wanted), c.received_at <= now).order_by(c.received_at, c.report_id))
        async with self.engine.connect() as conn:
            rows = await conn.execute(stmt)
            return [PastReport(r.report_id, r.received_at, r.lat, r.lon, r.category_key, r.account_id,
                               r.device_id, r.photo_hash, r.filed_lat, r.filed_lon) for r in rows]

    async def list(self, states: Sequence[ReportState], *, limit: int = 100, offset: int = 0,
                   grid_prefix: str | None = None) -> list[CitizenReport]:
        """Reports in ``states``, oldest first (the queue's order); with ``grid_prefix`` only its cells'."""
        c = citizen_reports.c
        where: list[sa.ColumnElement[bool]] = [c.state.in_(list(states))]
        if grid_prefix is not None:
            where.append(c.grid_code.startswith(grid_prefix, autoescape=True))
        stmt = (sa.select(citizen_reports).where(*where)
                .order_by(c.received_at, c.report_id).limit(limit).offset(offset))
        async with self.engine.connect() as conn:
            return [_record(r) for r in await conn.execute(stmt)]

    async def received(self, since: float, *, grid_prefix: str | None = None,
                       limit: int = 20_000) -> Sequence[CitizenReport]:
        """Reports received at or after ``since`` in any state, oldest first (the report-quality view)."""
        c = citizen_reports.c
        where: list[sa.ColumnElement[bool]] = [c.received_at >= since]
        if grid_prefix is not None:
            where.append(c.grid_code.startswith(grid_prefix, autoescape=True))
        stmt = sa.select(citizen_reports).where(*where).order_by(c.received_at, c.report_id).limit(limit)
        async with self.engine.connect() as conn:
            return [_record(r) for r in await conn.execute(stmt)]

    async def count(self, states: Sequence[ReportState], *, grid_prefix: str | None = None) -> int:
        c = citizen_reports.c
        where: list[sa.ColumnElement[bool]] = [c.state.in_(list(states))]
        if grid_prefix is not None:
            where.append(c.grid_code.startswith(grid_prefix, autoescape=True))
        async with self.engine.connect() as conn:
            return int(await conn.scalar(sa.select(sa.func.count()).select_from(citizen_reports)
                                         .where(*where)) or 0)

    async def decide(self, report_id: str, state: Literal["confirmed", "rejected"], *, by: str, at: float,
                     note: str) -> CitizenReport | None:
        """Move a ``held`` report to ``state``; None when it is not held (unknown, or decided already)."""
        c = citizen_reports.c
        async with self.engine.begin() as conn:
            done = await conn.execute(
                citizen_reports.update().where(c.report_id == report_id, c.state == "held")
                .values(state=state, decided_at=at, decided_by=by, decision_note=note))
            if done.rowcount != 1:
                return None
            row = (await conn.execute(sa.select(citizen_reports).where(c.report_id == report_id))).one()
        return _record(row)

    async def undo(self, report_id: str, state: Literal["confirmed", "rejected"]) -> None:
        """Put a report just moved to ``state`` back in the queue (its detection could not be sent)."""
        c = citizen_reports.c
        async with self.engine.begin() as conn:
            await conn.execute(citizen_reports.update().where(c.report_id == report_id, c.state == state)
                               .values(state="held", decided_at=None, decided_by=None, decision_note=None))
