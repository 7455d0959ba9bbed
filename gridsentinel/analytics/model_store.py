"""The hotspot forecast's trained models, versioned and stored (table ``forecast_models`` in the case database,
migration 0011), and the schedule that retrains them.

The patrol plan needs tomorrow's expected problems per cell. Fitting the model on every request costs seconds
of CPU and gives a model nobody can name afterwards; instead a model is trained once a day on the case history
(:func:`train`, the API's :class:`Retrainer` or ``gridsentinel forecast train``), stored with its version and
what it was trained on, and used until the next one (:meth:`ModelStore.usable`). The plan and the API say
which version made a forecast.

A model is the daily :class:`~gridsentinel.analytics.forecast.BoostedPoisson` (its features describe a cell
by its own counts, not by its identity, so one city-wide model serves every cell and every center's plan).
Its row holds:

- ``version``: ``bp-<first day not trained on>-<8 hex digits of the model's SHA-256>``, e.g.
  ``bp-20261206-3fa2c1d0``; at most one model per kind, scope and day (a second trainer of the same day,
  e.g. another API replica, finds the row there and keeps it);
- ``data_start`` / ``data_end``: the days of case history it learnt from (``data_end`` excluded: the local
  day it was trained on, incomplete then);
- the families in their feature order (the family index is a feature), the number of cells, training rows and
  problems, the hyperparameters, the scikit-learn version and the pickled model with its SHA-256.

The pickle is read back only when its SHA-256 matches and the scikit-learn version is the one running (a
model pickled by another version is retrained instead of trusted): the case database is the platform's own,
written only by its trainers.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
import pickle
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holiday_lib
import numpy as np
import sklearn
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from gridsentinel.analytics.forecast import (
    HORIZON,
    MIN_TRAIN_HISTORY,
    RAIN_FEATURES,
    WORKING_DAY_FEATURES,
    BoostedPoisson,
    History,
    feature_names,
)
from gridsentinel.analytics.sources import store_family
from gridsentinel.cases.case import Case
from gridsentinel.errors import GridSentinelError

log = logging.getLogger(__name__)

KIND = "boosted_poisson"
MAX_AGE_DAYS = 7  # a stored model older than this (by its data_end) is not used: the plan fits one itself
MIN_DAYS = MIN_TRAIN_HISTORY + HORIZON  # complete days of history a model needs (one training origin)
HISTORY_WEEKS = 16  # the case history a model is trained on (its training origins reach 12 weeks back)

metadata = sa.MetaData()

forecast_models = sa.Table(
    "forecast_models", metadata,
    sa.Column("version", sa.String(40), primary_key=True),
    sa.Column("kind", sa.String(40), nullable=False),
    sa.Column("scope", sa.String(15), nullable=False),  # grid-code prefix of the cases trained on; "": the city
    sa.Column("trained_at", sa.Double, nullable=False),
    sa.Column("data_start", sa.String(10), nullable=False),  # ISO dates, local to the city
    sa.Column("data_end", sa.String(10), nullable=False),
    sa.Column("families", sa.JSON, nullable=False),
    sa.Column("cells", sa.Integer, nullable=False),
    sa.Column("rows", sa.Integer, nullable=False),
    sa.Column("problems", sa.Integer, nullable=False),
    sa.Column("params", sa.JSON, nullable=False),
    sa.Column("features", sa.JSON, nullable=False),
    sa.Column("sklearn", sa.String(20), nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("model", sa.LargeBinary, nullable=False),
    sa.UniqueConstraint("kind", "scope", "data_end", name="uq_forecast_models_day"),
)


class ForecastModelError(GridSentinelError):
    """A model cannot be trained or stored as asked (too little history, a bad scope)."""


@dataclass(frozen=True)
class StoredModel:
    """One stored model: what it was trained on, and (:meth:`forecaster`) the fitted model itself."""

    version: str
    kind: str
    scope: str
    trained_at: float
    data_start: date
    data_end: date
    families: tuple[str, ...]
    cells: int
    rows: int
    problems: int
    params: dict[str, Any]
    features: tuple[str, ...]
    sklearn: str
    sha256: str
    blob: bytes = field(repr=False)

    @property
    def uses_rain(self) -> bool:
        return RAIN_FEATURES[0] in self.features

    @property
    def uses_calendar(self) -> bool:
        return WORKING_DAY_FEATURES[0] in self.features

    def forecaster(self) -> BoostedPoisson:
        """The fitted model; ``ValueError`` when the stored bytes are not what was stored or another scikit-learn
        version pickled them."""
        if hashlib.sha256(self.blob).hexdigest() != self.sha256:
            raise ValueError(f"forecast model {self.version}: the stored bytes do not match their SHA-256")
        if self.sklearn != sklearn.__version__:
            raise ValueError(f"forecast model {self.version} was pickled by scikit-learn {self.sklearn}, "
                             f"this is {sklearn.__version__}")
        out = BoostedPoisson(**self.params)
        out.model = pickle.loads(self.blob)  # our own database, checked against its SHA-256
        return out

    def summary(self) -> dict[str, Any]:
        """The row without the model bytes (what the API and the CLI show)."""
        return {"version": self.version, "kind": self.kind, "scope": self.scope, "trained_at": self.trained_at,
                "data_start": self.data_start.isoformat(), "data_end": self.data_end.isoformat(),
                "families": list(self.families), "cells": self.cells, "rows": self.rows, "problems": self.problems,
                "params": self.params, "features": list(self.features), "sklearn": self.sklearn,
                "sha256": self.sha256}

    def describe(self) -> str:
        """One line for a plan's ``method``."""
        return (f"model {self.version}, trained on {self.problems} problems of {self.data_start} to "
                f"{self.data_end - timedelta(days=1)}")


def _row_model(row: Any) -> StoredModel:
    return StoredModel(
        version=row.version, kind=row.kind, scope=row.scope, trained_at=row.trained_at,
        data_start=date.fromisoformat(row.data_start), data_end=date.fromisoformat(row.data_end),
        families=tuple(row.families), cells=row.cells, rows=row.rows, problems=row.problems,
        params=dict(row.params), features=tuple(row.features), sklearn=row.sklearn, sha256=row.sha256,
        blob=bytes(row.model))


class ModelStore:
    """``forecast_models`` on the case database's engine (migrated with it by ``cases.store.upgrade``)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine

    async def save(self, model: StoredModel) -> StoredModel:
        """Store ``model``; when its kind, scope and day are there already, the stored one is kept and returned."""
        values = {"version": model.version, "kind": model.kind, "scope": model.scope,
                  "trained_at": model.trained_at, "data_start": model.data_start.isoformat(),
                  "data_end": model.data_end.isoformat(), "families": list(model.families), "cells": model.cells,
                  "rows": model.rows, "problems": model.problems, "params": model.params,
                  "features": list(model.features), "sklearn": model.sklearn, "sha256": model.sha256,
                  "model": model.blob}
        try:
            async with self.engine.begin() as conn:
                await conn.execute(forecast_models.insert().values(**values))
            return model
        except IntegrityError:
            kept = await self.for_day(model.kind, model.scope, model.data_end)
            if kept is None:  # not the day's row: the version itself clashed, which means the same bytes
                raise
            return kept

    async def for_day(self, kind: str, scope: str, data_end: date) -> StoredModel | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(sa.select(forecast_models).where(
                forecast_models.c.kind == kind, forecast_models.c.scope == scope,
                forecast_models.c.data_end == data_end.isoformat()))).first()
        return None if row is None else _row_model(row)

    async def latest(self, scope: str = "", kind: str = KIND, *, before: date | None = None) -> StoredModel | None:
        """The newest model of ``scope`` (by the data it saw); with ``before``, trained on days before it only."""
        query = sa.select(forecast_models).where(forecast_models.c.kind == kind, forecast_models.c.scope == scope)
        if before is not None:
            query = query.where(forecast_models.c.data_end <= before.isoformat())
        query = query.order_by(forecast_models.c.data_end.desc()).limit(1)
        async with self.engine.connect() as conn:
            row = (await conn.execute(query)).first()
        return None if row is None else _row_model(row)

    async def versions(self, scope: str | None = None, limit: int = 30) -> list[StoredModel]:
        """The newest ``limit`` models (of ``scope``, or every scope), newest first."""
        query = sa.select(forecast_models)
        if scope is not None:
            query = query.where(forecast_models.c.scope == scope)
        query = query.order_by(forecast_models.c.data_end.desc(), forecast_models.c.trained_at.desc()).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_row_model(r) for r in rows]

    async def usable(self, today: date, scope: str = "") -> tuple[tuple[BoostedPoisson, StoredModel] | None, str]:
        """The model a forecast made ``today`` should use: the newest of ``scope`` trained on days before
        ``today``, at most ``MAX_AGE_DAYS`` old, readable by this scikit-learn; else ``None`` and why not."""
        stored = await self.latest(scope, before=today)
        if stored is None:
            return None, "no stored model"
        age = (today - stored.data_end).days
        if age > MAX_AGE_DAYS:
            return None, f"the newest stored model ({stored.version}) is {age} days old"
        try:
            return (stored.forecaster(), stored), ""
        except (ValueError, pickle.UnpicklingError, AttributeError, ImportError) as exc:
            return None, str(exc)


@dataclass(frozen=True)
class CaseHistory:
    """Daily counts of located cases per family x cell (``history``; cell ``i`` is ``codes[i]``)."""

    history: History
    codes: list[str]


def case_history(cases: Sequence[Case], cells: Sequence[str] | set[str] | dict[str, Any], *, tz: str,
                 today: date, until: date, holiday_country: str = "CN", families: Sequence[str] | None = None,
                 is_working_day: Callable[[date], bool] | None = None,
                 rain: dict[date, float] | None = None, with_rain: bool = False) -> CaseHistory | None:
    """The cases opened before ``today`` (city time) in ``cells``, counted per family x cell x day from the
    first such day to ``until`` (included; days from ``today`` on are zero: not yet seen). ``families``: the
    families' order (a stored model's); a case of another family is left out. ``None`` without such cases.

    ``is_working_day``: the city's working calendar (adds the working-day feature). ``rain``: mm per local day
    from the rain gauges; with it, or with ``with_rain`` (a model that has rain features, when the gauges
    could not be read: every day unknown), the history carries rainfall (adds the rain features)."""
    zone = ZoneInfo(tz)
    per_day: list[tuple[str, str, date]] = []
    for c in cases:
        if c.grid_code in cells:
            opened = datetime.fromtimestamp(c.opened_at, zone).date()
            if opened < today:
                per_day.append((store_family(c), c.grid_code, opened))
    if families is not None:
        per_day = [p for p in per_day if p[0] in set(families)]
    if not per_day:
        return None
    first = min(d for _, _, d in per_day)
    fams = tuple(families) if families is not None else tuple(sorted({f for f, _, _ in per_day}))
    codes = sorted({g for _, g, _ in per_day})
    fi, ci = {f: i for i, f in enumerate(fams)}, {g: i for i, g in enumerate(codes)}
    days = (until - first).days + 1
    counts = np.zeros((len(fams), len(codes), days))
    for f, g, d in per_day:
        counts[fi[f], ci[g], (d - first).days] += 1
    rain_mm = None
    if rain is not None or with_rain:
        known = rain or {}
        rain_mm = np.array([known.get(first + timedelta(days=i), math.nan) for i in range(days)])
    hol = holiday_lib.country_holidays(holiday_country, years=range(first.year, until.year + 1))
    return CaseHistory(History(first, fams, [(i, 0) for i in range(len(codes))], counts,
                               frozenset(hol.keys()), is_working_day=is_working_day, rain_mm=rain_mm), codes)


def train(cases: Sequence[Case], cells: Sequence[str] | set[str] | dict[str, Any], *, tz: str, now: float,
          scope: str = "", holiday_country: str = "CN", is_working_day: Callable[[date], bool] | None = None,
          rain: dict[date, float] | None = None) -> StoredModel:
    """Fit the daily model on the cases opened before today (city time) and return it ready to store; with the
    city's working calendar and its rain gauges' daily rainfall when given (their features are then part of it).

    ``ForecastModelError`` when there are fewer than ``MIN_DAYS`` complete days of history, or nothing to learn
    from (no problem in the training targets). CPU work: seconds on a city's 16 weeks (run it off the event loop).
    """
    today = datetime.fromtimestamp(now, ZoneInfo(tz)).date()
    built = case_history(cases, cells, tz=tz, today=today, until=today - timedelta(days=1),
                         holiday_country=holiday_country, is_working_day=is_working_day, rain=rain)
    if built is None:
        raise ForecastModelError("no located cases before today in the case store: nothing to train on")
    past = built.history
    if past.days < MIN_DAYS:
        raise ForecastModelError(f"{past.days} complete days of cases; a model needs {MIN_DAYS} "
                                 f"({MIN_TRAIN_HISTORY} of history before a first week of targets)")
    model = BoostedPoisson()
    if not model.fit(past, np.arange(len(built.codes))):
        raise ForecastModelError("the training weeks hold no problem: nothing to learn from")
    blob = pickle.dumps(model.model, protocol=pickle.HIGHEST_PROTOCOL)
    sha = hashlib.sha256(blob).hexdigest()
    return StoredModel(
        version=f"bp-{today:%Y%m%d}-{sha[:8]}", kind=KIND, scope=scope, trained_at=now, data_start=past.start,
        data_end=today, families=past.families, cells=len(built.codes), rows=model.trained_rows,
        problems=model.trained_problems, params={"train_weeks": model.train_weeks, **model.params},
        features=feature_names(past), sklearn=sklearn.__version__, sha256=sha, blob=blob)


def parse_clock(text: str) -> int:
    """Minutes after midnight of ``HH:MM``.

    >>> parse_clock("01:30")
    90
    """
    hours, _, minutes = text.partition(":")
    if not (hours.isdigit() and minutes.isdigit() and 0 <= int(hours) < 24 and 0 <= int(minutes) < 60):
        raise ForecastModelError(f"{text!r}: expected HH:MM, e.g. 01:30")
    return int(hours) * 60 + int(minutes)


def retrain_due(latest_end: date | None, now: float, *, tz: str, at_min: int) -> bool:
    """Whether the schedule trains a model now: none trained on today's data yet and the local time is past
    ``at_min`` (minutes after midnight), or no model at all (a new installation does not wait a night).

    >>> from datetime import date
    >>> t = datetime(2026, 12, 6, 1, 0, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    >>> retrain_due(date(2026, 12, 5), t, tz="Asia/Shanghai", at_min=90)   # 01:00, before 01:30
    False
    >>> retrain_due(date(2026, 12, 5), t + 3600, tz="Asia/Shanghai", at_min=90)
    True
    >>> retrain_due(date(2026, 12, 6), t + 3600, tz="Asia/Shanghai", at_min=90)  # today's is there
    False
    >>> retrain_due(None, t, tz="Asia/Shanghai", at_min=90)
    True
    """
    if latest_end is None:
        return True
    local = datetime.fromtimestamp(now, ZoneInfo(tz))
    return latest_end < local.date() and local.hour * 60 + local.minute >= at_min


LoadCases = Callable[[float], Any]  # async: the cases opened from a time on (the trainer's history)
# Blocking: the city's rainfall per local day from the first to the last day given (``weather.city_rain``), or
# None when there is none to be had (no gauges, InfluxDB down).
RainSource = Callable[[date, date], "dict[date, float] | None"]


class Retrainer:
    """Trains and stores the city's model once a day after ``at`` (city time), checking every ``every_s``.

    Run by the API (``GS_FORECAST_RETRAIN_AT``, default 01:30; empty: off). ``load_cases(since)`` returns the
    cases opened since a time (the case store's pages); ``is_working_day`` is the city's working calendar and
    ``rain`` its rain gauges (both optional: their features join the model when given). A day without enough
    history is logged and tried again at the next check; a failure never stops the loop.
    """

    def __init__(self, models: ModelStore, load_cases: LoadCases, cells: Sequence[str] | set[str] | dict[str, Any],
                 *, tz: str, at: str = "01:30", every_s: float = 600.0, holiday_country: str = "CN",
                 is_working_day: Callable[[date], bool] | None = None, rain: RainSource | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.models = models
        self.load_cases = load_cases
        self.cells = cells
        self.tz = tz
        self.at_min = parse_clock(at)
        self.every_s = every_s
        self.holiday_country = holiday_country
        self.is_working_day = is_working_day
        self.rain = rain
        self.clock = clock
        self.last_error = ""
        self.trained: list[str] = []

    async def check(self) -> StoredModel | None:
        """Train and store a model if one is due; the stored model, or None (not due, or not possible now)."""
        now = self.clock()
        latest = await self.models.latest()
        if not retrain_due(latest.data_end if latest else None, now, tz=self.tz, at_min=self.at_min):
            return None
        zone = ZoneInfo(self.tz)
        today = datetime.fromtimestamp(now, zone).date()
        first = today - timedelta(weeks=HISTORY_WEEKS)
        cases = await self.load_cases(datetime.combine(first, datetime.min.time(), zone).timestamp())
        # the gauges are asked only when there are cases to learn from (else train() says why there is no model)
        rain = await asyncio.to_thread(self.rain, first, today - timedelta(days=1)) if self.rain and cases else None
        try:
            model = await asyncio.to_thread(train, cases, self.cells, tz=self.tz, now=now,
                                            holiday_country=self.holiday_country,
                                            is_working_day=self.is_working_day, rain=rain)
        except ForecastModelError as exc:
            if str(exc) != self.last_error:
                log.info("forecast model not trained: %s", exc)
            self.last_error = str(exc)
            return None
        stored = await self.models.save(model)
        self.last_error = ""
        self.trained.append(stored.version)
        log.info("forecast model %s stored (%d problems, %d cells, features: %s)", stored.version, stored.problems,
                 stored.cells, ", ".join(stored.features[-3:]))
        return stored

    async def run(self) -> None:
        while True:
            try:
                await self.check()
            except Exception:  # a database outage, a bug: logged, tried again at the next check
                log.exception("forecast retraining failed; trying again in %.0f s", self.every_s)
            await asyncio.sleep(self.every_s)
