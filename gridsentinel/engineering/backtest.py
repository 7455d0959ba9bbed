"""Backtest: replay history through the live detection engine and the live dedup rules, in memory.

The very same :class:`~gridsentinel.detectors.engine.DetectionEngine` the detection stage runs turns
readings into detections, and the very same :func:`~gridsentinel.cases.dedup.apply_detection` turns
them into cases — in a :class:`~gridsentinel.cases.memory_store.MemoryCaseStore`, so nothing reaches a
live topic or the case store. Time is event time throughout: the engine's timer check runs every
``check_every_s`` of event time and dedup's ``now`` is the detection's ``observed_at``, so a replay of
the same data gives the same detections, the same case ids and the same report.

Several configs (the candidate, and with ``--against live`` the live one) run side by side over one
pass of the source.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from gridsentinel.cases.case import Case
from gridsentinel.cases.categories import Catalog, UnknownCategory
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.gridcode import Adjacency, GridCodeError
from gridsentinel.cases.memory_store import MemoryCaseStore
from gridsentinel.core.devices import Registry
from gridsentinel.core.records import Detection, Reading
from gridsentinel.detectors.config import DetectorConfig

log = logging.getLogger(__name__)
Progress = Callable[[int], None]
MAX_POINTS = 1500  # per series, for the HTML charts (min/max per bucket keeps spikes visible)


@dataclass
class Run:
    """One config's replay: its engine, its in-memory cases and what happened."""

    name: str  # "candidate" / "live"
    label: str  # the config version label stamped on detections
    config: DetectorConfig
    engine: Any
    store: MemoryCaseStore = field(default_factory=MemoryCaseStore)
    detections: list[Detection] = field(default_factory=list)
    outcomes: dict[str, str] = field(default_factory=dict)  # detection id -> opened/merged/...
    case_of: dict[str, tuple[str, str]] = field(default_factory=dict)  # detection id -> (case, category)
    alerts: Counter[str] = field(default_factory=Counter)  # center id -> notifying events
    rejected: Counter[str] = field(default_factory=Counter)  # reason -> detections that made no case

    def cases(self) -> list[Case]:
        return self.store.all_cases()


@dataclass
class Series:
    device_id: str
    metric: str
    kind: str
    grid_code: str
    points: list[tuple[float, float]] = field(default_factory=list)


def make_engine(config: DetectorConfig, registry: Registry, label: str, catalog: Catalog) -> Any:
    """A detection engine for one run; ``catalog`` (config/categories.yaml) labels its detections."""
    from gridsentinel.detectors.engine import DetectionEngine

    return DetectionEngine(config, registry, category_of=catalog.category_of, config_version=label)


class Backtest:
    """Feed readings to every run; ``await bt.feed(readings)`` then read ``bt.runs`` and ``bt.series``."""

    def __init__(self, runs: list[Run], catalog: Catalog, adjacency: Adjacency, *,
                 check_every_s: float = 60.0, keep_series: bool = True) -> None:
        self.runs = runs
        self.catalog = catalog
        self.adjacency = adjacency
        self.check_every_s = check_every_s
        self.keep_series = keep_series
        self.series: dict[tuple[str, str], Series] = {}
        self.readings = 0
        self.first_at: float | None = None
        self.last_at: float | None = None
        self._next_check: float | None = None
        # Devices the replayed data holds. Timers judge only these: a registry device absent from the
        # source (a CSV of one device, a filtered query) is outside the replay, not offline.
        self.seen: set[str] = set()

    async def feed(self, readings: Iterable[Reading], progress: Progress | None = None) -> None:
        for reading in readings:
            await self.step(reading)
            if progress is not None:
                progress(self.readings)
        await self.finish()

    async def step(self, reading: Reading) -> None:
        t = reading.observed_at
        if self._next_check is None:
            self._next_check = t + self.check_every_s
        while t >= self._next_check:  # time passes in event time: dropout, held tilt
            for run in self.runs:
                await self._apply(run, run.engine.check(self._next_check, sorted(self.seen)))
            self._next_check += self.check_every_s
        self.seen.add(reading.device_id)
        self.readings += 1
        self.first_at = t if self.first_at is None else min(self.first_at, t)
        self.last_at = t if self.last_at is None else max(self.last_at, t)
        if self.keep_series:
            key = (reading.device_id, reading.metric)
            s = self.series.get(key)
            if s is None:
                s = self.series[key] = Series(reading.device_id, reading.metric, reading.kind,
                                              reading.grid_code)
            s.points.append((t, reading.value))
        for run in self.runs:
            # arrival = event time: the idle flush behaves as if every reading arrived on time
            await self._apply(run, run.engine.process(reading, now=t))

    async def finish(self) -> None:
        for run in self.runs:
            await self._apply(run, run.engine.flush())
            if self.last_at is not None:
                await self._apply(run, run.engine.check(self.last_at, sorted(self.seen)))

    async def _apply(self, run: Run, detections: list[Detection]) -> None:
        for det in detections:
            run.detections.append(det)
            try:
                events = await apply_detection(det, run.store, self.catalog, self.adjacency,
                                               now=det.observed_at)
            except (UnknownCategory, GridCodeError) as exc:  # live: dead-lettered
                run.rejected[type(exc).__name__] += 1
                log.debug("detection %s makes no case: %s", det.detection_id, exc)
                continue
            for ev in events:
                if ev.notify:
                    run.alerts[str(ev.case.get("center") or ev.grid_code)] += 1
                if ev.type in ("open", "evidence") and ev.data.get("detection_id") == det.detection_id:
                    run.outcomes.setdefault(det.detection_id, _outcome(ev.type, ev.data.get("rule")))
                    run.case_of[det.detection_id] = (ev.case_id, ev.category_key)


def _outcome(event_type: str, rule: object) -> str:
    if event_type == "open":
        return "opened"
    return {1: "attached", 2: "merged", 3: "reopened"}.get(rule if isinstance(rule, int) else 0, "attached")


def downsample(points: list[tuple[float, float]], max_points: int = MAX_POINTS) -> list[tuple[float, float]]:
    """At most ``max_points`` points: per bucket the first, min and max, so spikes stay visible.

    >>> len(downsample([(float(i), float(i % 7)) for i in range(10000)], 300)) <= 300
    True
    """
    if len(points) <= max_points:
        return list(points)
    per = max(1, (len(points) * 3) // max_points + 1)
    out: list[tuple[float, float]] = []
    for i in range(0, len(points), per):
        chunk = points[i:i + per]
        lo = min(chunk, key=lambda p: p[1])
        hi = max(chunk, key=lambda p: p[1])
        out.extend(sorted({chunk[0], lo, hi}))
    return out


def group_counts(run: Run, prefix_digits: int) -> dict[str, dict[str, dict[str, int]]]:
    """Detection outcomes (opened/attached/merged/reopened/late) per grid prefix and per category,
    plus the cases per category."""
    by_prefix: dict[str, Counter[str]] = defaultdict(Counter)
    by_category: dict[str, Counter[str]] = defaultdict(Counter)
    for det in run.detections:
        outcome = run.outcomes.get(det.detection_id)
        if outcome is None:
            continue
        by_prefix[det.grid_code[:prefix_digits]][outcome] += 1
        by_category[run.case_of[det.detection_id][1]][outcome] += 1
    for case in run.cases():
        by_category[case.category_key]["cases"] += 1
        by_prefix[case.grid_code[:prefix_digits]]["cases"] += 1
    return {"by_grid_prefix": {k: dict(v) for k, v in sorted(by_prefix.items())},
            "by_category": {k: dict(v) for k, v in sorted(by_category.items())}}
