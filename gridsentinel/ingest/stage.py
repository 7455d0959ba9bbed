"""Ingest stage: ``gs.readings`` -> InfluxDB, run as a service of the worker (``--stages ingest``).

Not a Faust agent: Faust's per-event machinery (events, stream buffers, per-event acks) cost most of the
stage's CPU, and the stage needs none of it (no tables, no state). The stage registers a service on the
app that runs :class:`~gridsentinel.ingest.consumer.BatchIngest` in a thread of its own (its own Kafka
consumer group, ``<app id>-ingest``): batches are written, then committed (at-least-once), points are
idempotent, bad records and refused points go to the dead letter with their reason. The service watches
the thread: should it fail (a fatal Kafka error), the worker crashes, exits non-zero and its supervisor
restarts it; on shutdown it stops the loop (a write still retrying gives up, its batch uncommitted).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar

import faust
import mode

from .consumer import BatchIngest, IngestError
from .influx import InfluxSink

if TYPE_CHECKING:
    from gridsentinel.streams.context import StageContext


class IngestService(mode.Service):
    """Runs the batch consumer's loop in a thread while the app runs; crashes the app if the loop fails."""

    ingest: ClassVar[BatchIngest]  # set on the subclass the stage registers (Faust instantiates the class)

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # loop and beacon, from Faust
        self._thread: threading.Thread | None = None
        self._error: list[BaseException] = []
        self._stopping = False  # this service asked the loop to stop (the app is shutting down)

    def _run(self) -> None:
        try:
            self.ingest.run()
        except BaseException as exc:  # handed to the service's watcher, which crashes the app with it
            self._error.append(exc)

    async def on_start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="ingest", daemon=True)
        self._thread.start()

    @mode.Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            thread = self._thread
            if thread is not None and not thread.is_alive() and not self._stopping:
                if self._error:
                    raise self._error[0]
                raise IngestError("the ingest consumer stopped by itself")
            await self.sleep(0.5)

    async def on_stop(self) -> None:
        self._stopping = True
        self.ingest.stop()
        thread = self._thread
        if thread is not None:
            await self.loop.run_in_executor(None, thread.join, 60.0)
        self.ingest.sink.close()


@dataclass
class IngestStage:
    """``--stages ingest``: ``gs.readings`` -> InfluxDB, the bucket given or the settings'."""

    bucket: str | None = None

    def register(self, app: faust.App, ctx: StageContext) -> None:
        settings, options = ctx.settings, ctx.options
        sink = InfluxSink(settings.influx_url, settings.influx_token, settings.influx_org,
                          self.bucket or settings.influx_bucket)

        def on_batch(took: int, written: int, seconds: float) -> None:
            ctx.metrics.took("ingest", took)
            ctx.metrics.batch("ingest", written, seconds)

        ingest = BatchIngest(bootstrap=settings.kafka_bootstrap, group_id=f"{options.app_id}-ingest",
                             topic=ctx.names.readings, deadletter_topic=ctx.names.deadletter, sink=sink,
                             batch_size=options.batch_size, within_s=options.batch_within_s,
                             pending=options.pending_batches,
                             client_id=f"{options.app_id}-ingest", legacy_group=options.app_id, on_batch=on_batch)
        ctx.ensure_topics([ctx.names.readings])  # subscribed to before it exists, it is seen 5 min later
        ctx.stats["points_written"] = lambda: sink.points_written
        ctx.stats["write_failures"] = lambda: sink.failures
        ctx.stats["points_refused"] = lambda: sink.points_refused
        ctx.stats["ingest_records"] = lambda: ingest.records
        ctx.stats["ingest_dead_lettered"] = lambda: ingest.dead_lettered
        ctx.stats["ingest_first_taken_at"] = lambda: ingest.first_taken_at
        ctx.stats["ingest_last_stored_at"] = lambda: ingest.last_stored_at
        ctx.stats["ingest_cpu_s_taken_to_stored"] = lambda: ingest.cpu_at_last_stored - ingest.cpu_at_first_taken
        ctx.lag_sources.append(lambda: dict(ingest.lag))
        ctx.stats["latency_ms_hist"] = lambda: sink.latency.counts
        ctx.stats["gateway_to_influx_ms_hist"] = lambda: sink.latency_since_gateway.counts

        app.service(type("IngestService", (IngestService,), {"ingest": ingest}))
