"""The one Faust app: topics defined once here; each stage registers its agents from its own module.

Stages: ``ingest`` (readings -> InfluxDB, in ingest/stage.py). Other stages (detection, cases,
frames) register the same way: a function ``register(app, ctx)`` that adds agents, tables and timers.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from dataclasses import dataclass, field
from typing import Any

import faust

from ..settings import Settings
from .records import DeadLetter
from .topics import Topics

log = logging.getLogger(__name__)

# stage name -> module with register(app, ctx)
STAGES: dict[str, str] = {
    "ingest": "gridsentinel.ingest.stage",
    "detect": "gridsentinel.detectors.stage",
    "cases": "gridsentinel.alerts.stage",
    "live-config": "gridsentinel.engineering.live_config",
    "shadow": "gridsentinel.engineering.shadow",
    "frames": "gridsentinel.detectors.frames_stage",
}


@dataclass
class WorkerOptions:
    app_id: str = "gridsentinel"
    influx_bucket: str | None = None  # default: settings.influx_bucket
    batch_size: int = 5000
    batch_within_s: float = 0.05
    partitions: int = 4
    stages: tuple[str, ...] = ("ingest",)
    stats_file: str | None = None  # when set, each stage's counters are written here each second
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StageContext:
    """What every stage gets: settings, options, the topics (created once) and a stats registry."""

    settings: Settings
    options: WorkerOptions
    names: Topics
    topics: dict[str, faust.TopicT]
    stats: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)  # shared objects, e.g. "detection_engine"

    async def dead_letter(self, letter: DeadLetter, key: bytes | None = None) -> None:
        await self.topics["deadletter"].send(key=key, value=letter.to_json())


def create_app(settings: Settings, options: WorkerOptions) -> faust.App:
    names = Topics(settings.topic_prefix)
    (settings.run_dir / "faust").mkdir(parents=True, exist_ok=True)
    app = faust.App(
        options.app_id,
        broker=f"kafka://{settings.kafka_bootstrap}",
        value_serializer="raw",
        key_serializer="raw",
        store="memory://",
        datadir=str(settings.run_dir / "faust" / options.app_id),
        topic_partitions=options.partitions,
        topic_replication_factor=1,
        web_enabled=False,
        producer_acks=-1,
        producer_linger=0.005,
        consumer_auto_offset_reset="earliest",
        broker_commit_every=1000,
        broker_commit_interval=1.0,
        stream_buffer_maxsize=20000,
    )
    topics = {
        "readings": app.topic(names.readings, partitions=options.partitions),
        "frames": app.topic(names.frames, partitions=options.partitions),
        "device_status": app.topic(names.device_status, partitions=options.partitions),
        "detections": app.topic(names.detections, partitions=options.partitions),
        "case_events": app.topic(names.case_events, partitions=options.partitions),
        "deadletter": app.topic(names.deadletter, partitions=options.partitions),
    }
    ctx = StageContext(settings=settings, options=options, names=names, topics=topics)
    for stage in options.stages:
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; known: {', '.join(STAGES)}")
        importlib.import_module(STAGES[stage]).register(app, ctx)

    if options.stats_file:
        stats_path = options.stats_file

        @app.timer(1.0)
        async def write_stats() -> None:
            body = json.dumps({"time": time.time(), **{k: v() if callable(v) else v
                                                       for k, v in ctx.stats.items()}})
            _atomic_write(stats_path, body)

    return app


def _atomic_write(path: str, body: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(body)
    os.replace(tmp, path)
