"""Shadow configs: a candidate detector config runs on the live stream beside the live one.

``gridsentinel config shadow start PATH`` validates the candidate, records a shadow run (in the config
versions file) and publishes it on ``gs.config`` under key ``shadow``. Workers running the ``shadow``
stage build a second :class:`DetectionEngine` from it, feed it every reading they consume, and apply its
detections with the live dedup rules to a separate case store (``GS_SHADOW_DATABASE_URL``, default
``sqlite:///<run_dir>/shadow-<run id>.db``). Its events are never published: shadow cases are never
dispatched. ``stop`` ends the run; ``report`` compares shadow and live cases over the run's period.

Shadow detector state lives in worker memory only (a restarted worker starts the shadow detectors
fresh), and only devices that reported during the run are checked for dropout.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sqlite3
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gridsentinel.cases.case import Case
from gridsentinel.cases.store_protocol import CaseQuery
from gridsentinel.detectors.engine import PartitionClock
from gridsentinel.engineering.configs import validate_text
from gridsentinel.engineering.publish import SHADOW_KEY, publish
from gridsentinel.engineering.report import evaluate
from gridsentinel.errors import ConfigError, GridSentinelError
from gridsentinel.settings import Settings

if TYPE_CHECKING:
    import faust

    from gridsentinel.streams.context import StageContext

log = logging.getLogger(__name__)
_SCHEMA = """CREATE TABLE IF NOT EXISTS shadow_runs (
    run_id TEXT PRIMARY KEY, label TEXT NOT NULL, author TEXT NOT NULL, started_at REAL NOT NULL,
    stopped_at REAL, yaml TEXT NOT NULL)"""


def _db(settings: Settings) -> sqlite3.Connection:
    settings.run_dir.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(settings.run_dir / "config-versions.db", isolation_level=None)
    db.execute("PRAGMA busy_timeout = 10000")
    db.execute(_SCHEMA)
    return db


def shadow_url(settings: Settings, run_id: str = "<run id>") -> str:
    return settings.shadow_database_url or f"sqlite:///{settings.run_dir / f'shadow-{run_id}.db'}"


def latest_run(settings: Settings) -> dict[str, Any] | None:
    db = _db(settings)
    try:
        row = db.execute("SELECT run_id, label, author, started_at, stopped_at, yaml FROM shadow_runs "
                         "ORDER BY started_at DESC LIMIT 1").fetchone()
    finally:
        db.close()
    if row is None:
        return None
    return dict(zip(("run_id", "label", "author", "started_at", "stopped_at", "yaml"), row, strict=True))


def start(settings: Settings, path: Path, *, author: str, now: float | None = None,
          publish_it: bool = True) -> dict[str, Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    config, problems = validate_text(text, str(path))
    if config is None:
        raise ConfigError("\n".join(problems))
    now = time.time() if now is None else now
    run = {"run_id": f"{int(now * 1000):x}", "label": f"shadow:{config.version}", "author": author,
           "started_at": now, "stopped_at": None, "yaml": text}
    db = _db(settings)
    try:
        db.execute("UPDATE shadow_runs SET stopped_at = ? WHERE stopped_at IS NULL", (now,))
        db.execute("INSERT INTO shadow_runs VALUES (?, ?, ?, ?, NULL, ?)",
                   (run["run_id"], run["label"], author, now, text))
    finally:
        db.close()
    if publish_it:
        publish(settings, SHADOW_KEY, {"version": run["run_id"], "label": run["label"], "author": author,
                                       "time": now, "yaml": text, "stopped": False})
    return run


def stop(settings: Settings, *, author: str, now: float | None = None, publish_it: bool = True) -> None:
    now = time.time() if now is None else now
    run = latest_run(settings)
    if run is None or run["stopped_at"] is not None:
        raise GridSentinelError("no shadow run is active")
    db = _db(settings)
    try:
        db.execute("UPDATE shadow_runs SET stopped_at = ? WHERE run_id = ?", (now, run["run_id"]))
    finally:
        db.close()
    if publish_it:
        publish(settings, SHADOW_KEY, {"version": run["run_id"], "author": author, "time": now,
                                       "stopped": True})


def compare(shadow_cases: list[Case], live_cases: list[Case], prefix_digits: int = 9) -> dict[str, Any]:
    """Counts per grid prefix and category for both, the cells only one of them has, and the shadow
    cases' agreement with how live cases were closed.

    >>> compare([], [])["shadow"]["cases"]
    0
    """
    def side(cases: list[Case]) -> dict[str, Any]:
        return {"cases": len(cases),
                "by_grid_prefix": dict(sorted(Counter(c.grid_code[:prefix_digits] for c in cases).items())),
                "by_category": dict(sorted(Counter(c.category_key for c in cases).items()))}

    cells_s = {f"{c.grid_code} {c.category_key}" for c in shadow_cases}
    cells_l = {f"{c.grid_code} {c.category_key}" for c in live_cases}
    return {"shadow": side(shadow_cases), "live": side(live_cases),
            "cells_only_shadow": sorted(cells_s - cells_l), "cells_only_live": sorted(cells_l - cells_s),
            "agreement": evaluate(shadow_cases, live_cases)}


async def _cases(url: str, since: float, until: float) -> list[Case]:
    from gridsentinel.cases.store import SqlCaseStore

    if url.startswith("sqlite") and not Path(url.split(":///", 1)[-1]).exists():
        return []
    store = await SqlCaseStore.open(url)
    try:
        out: list[Case] = []
        while True:
            page = await store.list_cases(CaseQuery(opened_from=since, opened_to=until, limit=1000,
                                                    offset=len(out)))
            out += page
            if len(page) < 1000:
                return out
    finally:
        await store.close()


async def report(settings: Settings, now: float | None = None) -> dict[str, Any]:
    run = latest_run(settings)
    if run is None:
        raise GridSentinelError("no shadow run recorded; start one with `gridsentinel config shadow start`")
    until = run["stopped_at"] or (time.time() if now is None else now)
    shadow = await _cases(shadow_url(settings, run["run_id"]), run["started_at"], until + 1)
    live = await _cases(settings.database_url, run["started_at"], until + 1)
    return {"run_id": run["run_id"], "label": run["label"], "author": run["author"],
            "period": {"since": run["started_at"], "until": until, "active": run["stopped_at"] is None},
            **compare(shadow, live)}


def report_sync(settings: Settings) -> dict[str, Any]:
    return asyncio.run(report(settings))


QUIET_S = 2.0  # no reading read for this long: the stream has caught up, silence moves at wall speed


# -- the Faust stage ---------------------------------------------------------------------------------
class ShadowRunner:
    """The shadow engine and its case store; swapped when a new shadow run arrives."""

    def __init__(self, settings: Settings) -> None:
        from gridsentinel.cases.categories import load_catalog
        from gridsentinel.core.devices import Registry

        self.settings = settings
        self.registry = Registry.load(settings.config_dir)
        self.catalog = load_catalog(settings.config_dir)
        self.adjacency = self.registry.grid.neighbours() if self.registry.grid is not None else {}
        self.engine: Any = None
        self.store: Any = None
        self.run_id: str | None = None
        self.seen: set[str] = set()
        self.counts: Counter[str] = Counter()
        self.lock = asyncio.Lock()
        # Silence is judged on event time, as in the detect stage: the newest event time read, moving on
        # at wall speed only once the stream has gone quiet (a backlog read fast never looks silent).
        self.clock = PartitionClock()
        self.last_read: float | None = None  # wall time of the newest reading read
        self.wall: Callable[[], float] = time.time

    async def handle(self, key: str, value: dict[str, Any]) -> None:
        if key != SHADOW_KEY:
            return
        from gridsentinel.cases.store import SqlCaseStore
        from gridsentinel.detectors.engine import DetectionEngine
        from gridsentinel.engineering.live_config import parse_message

        async with self.lock:
            if value.get("stopped"):
                if value.get("version") == self.run_id:
                    await self._close()
                return
            if value.get("version") == self.run_id:
                return
            try:
                config, label = parse_message(value)
            except ValueError as exc:
                log.error("ignoring an invalid shadow config: %s", exc)
                return
            await self._close()
            self.run_id = str(value.get("version"))
            self.engine = DetectionEngine(config, self.registry, category_of=self.catalog.category_of,
                                          config_version=label)
            self.store = await SqlCaseStore.open(shadow_url(self.settings, self.run_id))
            log.warning("shadow config %s running beside the live one", label)

    async def _close(self) -> None:
        if self.store is not None:
            await self.store.close()
        self.engine = self.store = self.run_id = None
        self.seen.clear()
        self.clock, self.last_read = PartitionClock(), None

    async def apply(self, detections: list[Any]) -> None:
        from gridsentinel.cases.categories import UnknownCategory
        from gridsentinel.cases.dedup import apply_detection
        from gridsentinel.cases.gridcode import GridCodeError

        for det in detections:
            self.counts["detections"] += 1
            try:  # events are dropped on purpose: a shadow case is never dispatched
                await apply_detection(det, self.store, self.catalog, self.adjacency, now=time.time())
            except (UnknownCategory, GridCodeError):
                self.counts["rejected"] += 1

    async def on_reading(self, raw: bytes) -> None:
        from gridsentinel.core.records import Reading, RecordError

        async with self.lock:
            if self.engine is None:
                return
            try:
                reading = Reading.from_json(raw)
            except (RecordError, TypeError):
                return
            self.seen.add(reading.device_id)
            self.counts["readings"] += 1
            wall = self.last_read = self.wall()
            self.clock.observe(0, reading.observed_at, wall)
            await self.apply(self.engine.process(reading, now=self.clock.arrival(0, wall)))
            self.engine.take_rejected()

    async def on_timer(self) -> None:
        async with self.lock:
            if self.engine is None or not self.seen:
                return
            wall = self.wall()
            quiet = self.last_read is None or wall - self.last_read >= QUIET_S
            now = self.clock.now(0, wall, caught_up=quiet)
            if now is not None:
                await self.apply(self.engine.check(now, sorted(self.seen)))


class ShadowStage:
    """``--stages shadow``: every reading also through the shadow engine of the current shadow run."""

    def register(self, app: faust.App, ctx: StageContext) -> None:
        from gridsentinel.engineering.follow import follow_config
        from gridsentinel.engineering.publish import ensure_config_topic

        ensure_config_topic(ctx.settings)
        runner = ShadowRunner(ctx.settings)
        ctx.stats["shadow"] = lambda: {"run_id": runner.run_id, **runner.counts}

        @app.agent(ctx.topics["readings"], name=f"{ctx.options.app_id}.shadow")
        async def shadow_detect(stream: faust.StreamT[Any]) -> None:
            async for value in stream:
                await runner.on_reading(value)

        @app.timer(2.0)
        async def shadow_tick() -> None:
            await runner.on_timer()

        @app.task
        async def follow_shadow_config() -> None:
            with contextlib.suppress(asyncio.CancelledError):
                await follow_config(ctx.settings, runner.handle)
