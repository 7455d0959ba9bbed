"""The composition root: the one Faust app, built from settings, options and the stage objects passed in.

Topics are defined once here; each stage object registers its agents, tables and timers on the app
(``register(app, ctx)``), as Starlette takes its routes. Which stage objects exist and how they are wired
to each other is decided in worker/stages.py, the only module that imports the stages; the Faust and
aiokafka workarounds live in streams/faust_compat.py.
"""

from __future__ import annotations

import gc
import json
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import faust
from prometheus_client import CollectorRegistry

from gridsentinel.core.topics import Topics
from gridsentinel.observability import StageMetrics
from gridsentinel.settings import Settings
from gridsentinel.streams import faust_compat
from gridsentinel.streams.context import Stage, StageContext, WorkerOptions
from gridsentinel.worker.metrics import LagSnapshot, watch_stages

LAG_EVERY_S = 5.0  # consumer lag sampling interval for /metrics


def create_app(settings: Settings, options: WorkerOptions, stages: Sequence[Stage] = (),
               registry: CollectorRegistry | None = None) -> faust.App:
    """The app with ``stages`` registered; with ``registry`` the stages' metrics are registered on it."""
    faust_compat.check_versions()
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
    faust_compat.install_transport(app, fetch_max_wait_ms=options.fetch_max_wait_ms)
    topics = {
        "readings": app.topic(names.readings, partitions=options.partitions),
        "frames": app.topic(names.frames, partitions=options.partitions),
        "device_status": app.topic(names.device_status, partitions=options.partitions),
        "detections": app.topic(names.detections, partitions=options.partitions),
        "case_events": app.topic(names.case_events, partitions=options.partitions),
        "deadletter": app.topic(names.deadletter, partitions=options.partitions),
    }
    ctx = StageContext(settings=settings, options=options, names=names, topics=topics,
                       metrics=StageMetrics(registry))
    for stage in stages:
        stage.register(app, ctx)

    @app.task
    async def freeze_startup_heap() -> None:
        """Keep what start-up built (modules, Faust, SQLAlchemy, pydantic: ~150,000 objects) out of the
        cyclic garbage collector's full collections: each one walked them all and stopped the worker for
        80 - 260 ms, a few times a minute under load: the cases stage's p99 latency (issue 15)."""
        gc.collect()
        gc.freeze()

    if registry is not None:
        lag = LagSnapshot()
        watch_stages(registry, ctx.stats, lag)

        @app.timer(LAG_EVERY_S)
        async def sample_lag() -> None:
            lag.lag = faust_compat.consumer_lag(app)
            for source in ctx.lag_sources:  # stages with a consumer of their own (ingest)
                lag.lag.update(source())

    if options.stats_file:
        stats_path = options.stats_file

        @app.timer(1.0)
        async def write_stats() -> None:
            _atomic_write(stats_path, stats_body(ctx.stats))

    return app


def stats_body(stats: dict[str, Any | Callable[[], Any]]) -> str:
    """The stats file's JSON: the time and every stage's counters (callables read now).

    >>> json.loads(stats_body({"a": 1, "b": lambda: {"c": 2}}))["b"]
    {'c': 2}
    """
    return json.dumps({"time": time.time(), **{k: v() if callable(v) else v for k, v in stats.items()}})


def _atomic_write(path: str, body: str) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        fh.write(body)
    os.replace(tmp, path)
