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
from typing import TYPE_CHECKING, Any

from gridsentinel.cases.stage import AlertPipeline, AlertRelay, Delivery, DeliveryFactory, RecentIds
from gridsentinel.core.records import DeadLetter

if TYPE_CHECKING:
    import faust

    from gridsentinel.streams.context import StageContext


BATCH = 200  # most case events delivered at once (each case's in order, the cases side by side)


class AlertsStage:
    """``--stages alerts``: one agent on ``gs.case-events`` handing the notified events to the delivery.

    ``delivery`` builds the alert delivery (given the dead-letter sink it is to use); it is opened on first
    use, on the worker's event loop, and closed at shutdown.
    """

    def __init__(self, delivery: DeliveryFactory, concurrency: int = 16) -> None:
        self._make_delivery = delivery
        self.concurrency = concurrency  # cases whose alerts are delivered at once (GS_ALERTS_CONCURRENCY)
        self._lock = asyncio.Lock()
        self._delivery: Delivery | None = None

    def register(self, app: faust.App, ctx: StageContext) -> None:
        from gridsentinel.streams.faust_compat import drain_batches

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

        @app.agent(ctx.topics["case_events"], name=f"{ctx.options.app_id}.alerts")
        async def alerts(stream: faust.StreamT[Any]) -> None:
            relay = AlertRelay(await delivery(), dead_letter=dead_letter, origin=ctx.names.case_events,
                               recent=recent)
            manual = stream.noack()  # type: ignore[attr-defined]  # a faust.Stream; StreamT lacks noack
            pipeline = AlertPipeline(relay, manual.ack, concurrency=self.concurrency)
            try:
                # what is waiting, up to BATCH events: each case's deliveries start at once (without waiting
                # for the batch before), the batches are acked in order once delivered
                async for batch in drain_batches(manual, BATCH):
                    await pipeline.submit([(e.key, e.value, e.headers) for e in batch], batch)
            finally:
                await pipeline.close()

        @app.on_before_shutdown.connect  # type: ignore[arg-type]  # mode types every receiver (sender, *args)
        async def _close(app: faust.App, **kwargs: object) -> None:
            service, self._delivery = self._delivery, None
            if service is not None:
                await service.close()
