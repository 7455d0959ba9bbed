"""Alerts stage: ``gs.case-events`` → alert delivery, in a worker of its own (``gridsentinel worker --stages alerts``).

The cases stage delivers its events itself by default (``GS_CASES_ALERTS=in-worker``: its own alerts
agent, on the cases worker's event loop). With ``GS_CASES_ALERTS=separate`` the cases workers only write
cases and produce their events, and this stage delivers them: the webhook POSTs (one per event and
receiver), MQTT and CAP no longer take the cores' time from the case batches, and the two scale apart.

A worker running this stage without the cases stage joins its own consumer group (``<app-id>-alerts``,
:func:`gridsentinel.worker.stages.app_id_for`): Faust assigns a group's partitions over every topic its
members' agents read, so an alerts-only member in the cases workers' group could be handed detections
partitions it has no agent for.

Delivery is what :class:`~gridsentinel.cases.stage.AlertRelay` does in the cases worker (at least once,
repeats dropped by event id here and by ``Idempotency-Key`` at the receivers, failures to
``gs.deadletter``), except that the events waiting are taken together and different cases' alerts go out
concurrently (at most ``GS_ALERTS_CONCURRENCY`` cases at once, default 16, over all batches in flight;
:class:`~gridsentinel.cases.stage.AlertPipeline`; each case's in order, across batches too): a receiver's
round trip no longer paces every alert behind it, and a batch's deliveries start without waiting for the
batch before. Batches are acked in order, each once all its deliveries are done.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, ClassVar

import mode

from gridsentinel.cases.stage import AlertPipeline, AlertRelay, Delivery, DeliveryFactory, RecentIds
from gridsentinel.core.records import DeadLetter
from gridsentinel.streams.batches import KafkaBatches, Record

if TYPE_CHECKING:
    import faust

    from gridsentinel.streams.context import StageContext

log = logging.getLogger(__name__)

BATCH = 200  # most case events delivered at once (each case's in order, the cases side by side)


class AlertsService(mode.Service):
    """Runs the delivery loop on the worker's event loop while the app runs: batches of case events from
    :class:`~gridsentinel.streams.batches.KafkaBatches` into an
    :class:`~gridsentinel.cases.stage.AlertPipeline`, each batch acked (its offsets stored) once all its
    deliveries are done, in order. Should the loop fail, the worker crashes, exits non-zero and its
    supervisor restarts it (what was not acked is delivered again: at least once)."""

    stage: ClassVar[AlertsStage]  # set on the subclass the stage registers (Faust instantiates the class)
    batches: ClassVar[KafkaBatches]
    relay: ClassVar[Any]  # () -> Awaitable[AlertRelay], made on the worker's loop

    def __init__(self, **kwargs: object) -> None:
        super().__init__(**kwargs)  # type: ignore[arg-type]  # loop and beacon, from Faust
        self._loop_task: asyncio.Task[None] | None = None

    async def on_start(self) -> None:
        self._loop_task = asyncio.create_task(self._deliver_all())

    @mode.Service.task
    async def _watch(self) -> None:
        while not self.should_stop:
            task = self._loop_task
            if task is not None and task.done() and not task.cancelled():
                task.result()  # raises the loop's error: the app crashes with it
                raise RuntimeError("the alerts delivery loop stopped by itself")
            await self.sleep(0.5)

    async def _deliver_all(self) -> None:
        relay = await self.relay()
        batches = self.batches

        async def ack(records: Sequence[Record]) -> None:
            batches.ack(records)

        pipeline = AlertPipeline(relay, ack, concurrency=self.stage.concurrency)
        try:
            async for records in batches.batches():
                await pipeline.submit([(r.key, r.value, r.headers) for r in records], [records])
        finally:
            await pipeline.close()

    async def on_stop(self) -> None:
        task, self._loop_task = self._loop_task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except (asyncio.CancelledError, Exception) as exc:  # stopping: whatever it was, it is logged
                if not isinstance(exc, asyncio.CancelledError):
                    log.warning("alerts delivery loop ended with %r", exc, extra={"stage": "alerts"})
        await self.batches.close()  # commits what was delivered
        await self.stage.close()


class AlertsStage:
    """``gs.case-events`` -> alert delivery: the notified events handed to the delivery, read with
    librdkafka (:class:`~gridsentinel.streams.batches.KafkaBatches`, consumer group ``group_id``), not by a
    Faust agent. ``legacy_groups``: the consumer groups that delivered before (Faust app ids); this group
    starts where the furthest of them got to on partitions it never committed.

    ``delivery`` builds the alert delivery (given the dead-letter sink it is to use); it is opened on first
    use, on the worker's event loop, and closed at shutdown.
    """

    def __init__(self, delivery: DeliveryFactory, concurrency: int = 16, *,
                 group_id: str = "gridsentinel-alert-delivery", legacy_groups: Sequence[str] = ()) -> None:
        self._make_delivery = delivery
        self.concurrency = concurrency  # cases whose alerts are delivered at once (GS_ALERTS_CONCURRENCY)
        self.group_id = group_id
        self.legacy_groups = tuple(legacy_groups)
        self._lock = asyncio.Lock()
        self._delivery: Delivery | None = None

    async def close(self) -> None:
        service, self._delivery = self._delivery, None
        if service is not None:
            await service.close()

    def register(self, app: faust.App, ctx: StageContext) -> None:
        ctx.ensure_topics([ctx.names.case_events, ctx.names.deadletter])
        recent = RecentIds()

        async def dead_letter(letter: DeadLetter, key: bytes | None) -> None:
            future = await ctx.topics["deadletter"].send(key=key, value=letter.to_json(), force=True)
            await future

        async def delivery() -> Delivery:
            async with self._lock:
                if self._delivery is None:
                    service = self._make_delivery(lambda d: dead_letter(d, None))
                    await service.start()
                    self._delivery = service
                return self._delivery

        async def relay() -> AlertRelay:
            return AlertRelay(await delivery(), dead_letter=dead_letter, origin=ctx.names.case_events,
                              recent=recent)

        batches = KafkaBatches(bootstrap=ctx.settings.kafka_bootstrap, group_id=self.group_id,
                               topic=ctx.names.case_events, client_id=f"{ctx.options.app_id}-alerts",
                               max_batch=BATCH, legacy_groups=self.legacy_groups)
        ctx.lag_sources.append(lambda: dict(batches.lag))
        ctx.stats["alerts_records"] = lambda: batches.records
        app.service(type("AlertsService", (AlertsService,), {"stage": self, "batches": batches,
                                                             "relay": staticmethod(relay)}))
