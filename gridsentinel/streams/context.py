"""What a stage is handed: the worker's options, the context with settings, topics and stats, and the
``Stage`` protocol. Stages import this (and ``faust_compat``), never the composition root in worker/ that
builds the app and imports them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import faust

from gridsentinel.core.records import DeadLetter
from gridsentinel.core.topics import Topics, ensure_topics
from gridsentinel.observability import StageMetrics
from gridsentinel.settings import Settings


@dataclass
class WorkerOptions:
    app_id: str = "gridsentinel"
    influx_bucket: str | None = None  # default: settings.influx_bucket
    batch_size: int = 5000
    batch_within_s: float = 0.05
    pending_batches: int = 2  # batches taken but not yet written (the ingest stage writes while taking)
    fetch_max_wait_ms: int = 50  # Kafka fetch long-poll; Faust hard-codes 1500 (see faust_compat)
    partitions: int = 4
    stats_file: str | None = None  # when set, each stage's counters are written here each second


@dataclass
class StageContext:
    """What every stage gets: settings, options, the topics (defined once) and a stats registry."""

    settings: Settings
    options: WorkerOptions
    names: Topics
    topics: dict[str, faust.TopicT]
    stats: dict[str, Any] = field(default_factory=dict)
    # records in, batch sizes and times per stage, for /metrics (counted, not served, without a registry)
    metrics: StageMetrics = field(default_factory=lambda: StageMetrics(None))
    # consumer lag of stages that consume outside Faust (the ingest stage): {(topic, partition): records}
    lag_sources: list[Callable[[], dict[tuple[str, int], int]]] = field(default_factory=list)

    async def dead_letter(self, letter: DeadLetter, key: bytes | None = None) -> None:
        await self.topics["deadletter"].send(key=key, value=letter.to_json())

    def ensure_topics(self, names: list[str], config: dict[str, str] | None = None) -> None:
        """Create the topics a stage consumes before the app subscribes (a topic created later is seen
        only at the next metadata refresh, five minutes on), with the app's partition count."""
        ensure_topics(self.settings.kafka_bootstrap, names, self.options.partitions, config=config)


class Stage(Protocol):
    """A worker stage: adds its agents, tables and timers to the app."""

    def register(self, app: faust.App, ctx: StageContext) -> None: ...
