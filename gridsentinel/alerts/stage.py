"""Alerts stage: ``gs.case-events`` → alert delivery (webhooks, MQTT, CAP).

Every cases worker runs it beside its cases loop by default (``GS_CASES_ALERTS=in-worker``). With
``GS_CASES_ALERTS=separate`` the cases workers only write cases and produce their events, and workers of
their own deliver them (``gridsentinel worker --stages alerts``): the webhook POSTs (one per event and
receiver) no longer take the cases worker's CPU, and the two scale apart.

The events are read with librdkafka (:class:`~gridsentinel.streams.batches.KafkaBatches`), not by a Faust
agent (whose per-record machinery was ~30 % of the alerts worker's CPU, issue 15), in the consumer group
``<app-id>-alert-delivery`` wherever the stage runs. An alerts-only worker's Faust app is still
``<app-id>-alerts`` (:func:`gridsentinel.worker.stages.app_id_for`), for its other agents.

Delivery is what :class:`~gridsentinel.cases.stage.AlertRelay` does (at least once, repeats dropped by
event id here and by ``Idempotency-Key`` at the receivers, failures to ``gs.deadletter``); the events
waiting are taken together and different cases' alerts go out concurrently (at most
``GS_ALERTS_CONCURRENCY`` cases at once, default 16, over all batches in flight;
:class:`~gridsentinel.cases.stage.AlertPipeline`; each case's in order, across batches too): a receiver's
round trip does not pace every alert behind it, and a batch's deliveries start without waiting for the
batch before. Batches are acked in order (their offsets stored), each once all its deliveries are done.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING

from gridsentinel.cases.stage import AlertPipeline, AlertRelay, Delivery, DeliveryFactory, RecentIds
from gridsentinel.core.records import DeadLetter
from gridsentinel.streams.batches import KafkaBatches, Record, loop_service

if TYPE_CHECKING:
    import faust

    from gridsentinel.streams.context import StageContext

BATCH = 200  # most case events delivered at once (each case's in order, the cases side by side)
BATCH_INTERVAL_S = 0.01  # batches start at least this far apart (KafkaBatches.min_interval_s)


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
                               max_batch=BATCH, legacy_groups=self.legacy_groups,
                               min_interval_s=BATCH_INTERVAL_S)

        async def deliver_all() -> None:
            # what is waiting, up to BATCH events: each case's deliveries start at once (without waiting for
            # the batch before), the batches are acked (their offsets stored) in order once delivered
            async def ack(records: Sequence[Record]) -> None:
                batches.ack(records)

            pipeline = AlertPipeline(await relay(), ack, concurrency=self.concurrency)
            try:
                async for records in batches.batches():
                    await pipeline.submit([(r.key, r.value, r.headers) for r in records], [records])
            finally:
                await pipeline.close()

        async def finish() -> None:
            await batches.close()  # commits what was delivered
            await self.close()

        ctx.lag_sources.append(lambda: dict(batches.lag))
        ctx.stats["alerts_records"] = lambda: batches.records
        app.service(loop_service("AlertsService", deliver_all, finish))
