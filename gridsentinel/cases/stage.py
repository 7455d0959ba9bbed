"""Cases stage: ``gs.detections`` → dedup → case store → ``gs.case-events`` → alert delivery.

Two pieces registered on the one Faust app (``gridsentinel worker --stages cases``), and the delivery's
parts that the alerts stage (gridsentinel/alerts/stage.py) runs:

- the **cases loop** consumes ``gs.detections`` (keyed by dedup region, so one region's detections are
  handled by one partition, in order) with librdkafka (:class:`~gridsentinel.streams.batches.KafkaBatches`,
  consumer group ``<app-id>-cases``; until session 13 a Faust agent, whose per-record machinery was ~40 %
  of the worker's CPU at 800 detections/s), as a service of the worker's Faust app. Each detection is
  decoded (bad → dead letter with the reason), applied with
  :func:`~gridsentinel.cases.batch.apply_detections` (a batch's case changes, applied ids and case
  events commit in one transaction: the events land in the store's outbox), then the events are
  produced to ``gs.case-events`` (key: case id); once Kafka has them the detection is acked, and within a
  second the events are deleted from the outbox. A crash anywhere in between is safe: a detection applied
  before the crash is a no-op on redelivery, and events still in the outbox are published when the loop
  starts again (the same event ids: consumers drop repeats).
  Batches overlap (:class:`OrderedPublisher`): batch N+1 is applied while batch N's events travel to
  Kafka; batches are still applied one after the other and acked strictly in order.
- a **timer** (on the leader worker) runs the escalation/reminder sweep and publishes the outbox
  events older than a grace period (events of crashed peers, and of API transitions).

:class:`CaseProcessor` holds the logic without Faust, so it is tested directly. :class:`AlertRelay` and
:class:`AlertPipeline` are the delivery's side: the alerts stage reads ``gs.case-events`` and hands them the
notified events (:class:`~gridsentinel.alerts.delivery.service.AlertDelivery`: signed webhooks, MQTT,
CAP); failures end in ``gs.deadletter``. Events are delivered at least once; receivers drop repeats by
``Idempotency-Key`` (the event id), and the relay skips ids it has just delivered.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import math
import time
from collections import Counter, OrderedDict
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy.exc import DBAPIError

from gridsentinel.cases.batch import Applied, apply_detections
from gridsentinel.cases.categories import Catalog, LiveCatalog, UnknownCategory, load_catalog
from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.gridcode import Adjacency, GridCodeError
from gridsentinel.cases.incidents import IncidentFamilies, load_families
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.store_protocol import CaseStore, Outbox
from gridsentinel.cases.workflow import sweep
from gridsentinel.core.records import DeadLetter, Detection, RecordError
from gridsentinel.ordered import OrderedQueue, TaskStopped
from gridsentinel.settings import Settings

if TYPE_CHECKING:
    import faust

    from gridsentinel.streams.context import StageContext
    from gridsentinel.streams.producer import AsyncProducer

log = logging.getLogger(__name__)

Publish = Callable[[Sequence[CaseEvent]], Awaitable[None]]
# Starts producing the events, in order, and returns what completes once Kafka has them all.
Send = Callable[[Sequence[CaseEvent]], Awaitable[Awaitable[object]]]
Forget = Callable[[Sequence[str]], Awaitable[None]]
Ack = Callable[[Any], Awaitable[object]]
# Returns once every transaction committed before the call is on disk (SqlCaseStore.durable).
Durable = Callable[[], Awaitable[None]]
# Kafka header on gs.case-events: b"1" when the event notifies people; the alerts agent skips the rest
# without decoding them (it would deliver nothing for them).
NOTIFY_HEADER = "gs-notify"
DeadLetterSink = Callable[[DeadLetter, bytes | None], Awaitable[None]]


class OutboxStore(CaseStore, Outbox, Protocol):
    """A case store with an outbox (:class:`SqlCaseStore`, ``MemoryCaseStore(outbox=True)``)."""


@dataclass(frozen=True, slots=True)
class CaseStageConfig:
    """The stage's own settings, read once at start-up."""

    database_url: str
    sweep_interval_s: float = 30.0  # escalation / reminder sweep and outbox catch-up
    outbox_grace_s: float = 5.0  # the timer publishes outbox events older than this
    batch_size: int = 500  # most detections taken per batch (one transaction, one produce round trip)
    # batches committed and produced but not yet acked (the pipeline depth): with async_commit a batch waits for
    # the next durable() (~0.2 s, longer while the disk stalls) at ~40 batches a second; each holds only offsets
    pending_batches: int = 64
    async_commit: bool = True  # PostgreSQL: commit without waiting for the disk, ack after SqlCaseStore.durable
    batch_interval_s: float = 0.025  # batches start at least this far apart (KafkaBatches.min_interval_s)

    @classmethod
    def from_settings(cls, settings: Settings) -> CaseStageConfig:
        """``database_url`` (as the API), ``cases_sweep_interval_s`` (``GS_CASES_SWEEP_INTERVAL``),
        ``cases_outbox_grace_s`` (``GS_CASES_OUTBOX_GRACE``), ``cases_batch_size`` (``GS_CASES_BATCH_SIZE``).

        >>> s = Settings.model_validate({"database_url": "sqlite:///x.db", "cases_batch_size": 50})
        >>> c = CaseStageConfig.from_settings(s)
        >>> c.database_url, c.sweep_interval_s, c.batch_size
        ('sqlite:///x.db', 30.0, 50)
        """
        return cls(
            database_url=settings.database_url,
            sweep_interval_s=settings.cases_sweep_interval_s,
            outbox_grace_s=settings.cases_outbox_grace_s,
            batch_size=settings.cases_batch_size,
            async_commit=settings.cases_async_commit,
        )


class CaseProcessor:
    """Detections in, case events out, through the store's outbox. Independent of Faust and Kafka:
    ``publish`` must return only once the events are durably accepted (Kafka acks)."""

    def __init__(
        self,
        store: OutboxStore,
        catalog: Catalog | LiveCatalog,
        adjacency: Adjacency,
        *,
        publish: Publish,
        dead_letter: DeadLetterSink,
        origin: str = "gs.detections",
        clock: Callable[[], float] = time.time,
        retry_delay_s: float = 1.0,
        families: IncidentFamilies | None = None,
    ) -> None:
        self.store = store
        self.families = families  # incident families (config/incident_families.yaml); None: no incidents
        # a LiveCatalog is swapped by live config: each batch and sweep takes the current catalogue once
        self.live_catalog = catalog if isinstance(catalog, LiveCatalog) else LiveCatalog(catalog)
        self.adjacency = adjacency
        self._publish = publish
        self._dead_letter = dead_letter
        self._origin = origin
        self._clock = clock
        self._retry_delay_s = retry_delay_s
        self.stats = {
            "detections": 0,
            "applied": 0,
            "replayed": 0,
            "dead_lettered": 0,
            "events": 0,
            "outbox_recovered": 0,
            "store_retries": 0,
        }
        self.event_types: Counter[str] = Counter()  # case events made, by type (open, evidence, ...)

    @property
    def catalog(self) -> Catalog:
        """The catalogue the next batch uses."""
        return self.live_catalog.current

    async def process(self, batch: Sequence[tuple[bytes | None, bytes | None]]) -> list[CaseEvent]:
        """Apply a batch of raw ``(key, value)`` detections in order (one store transaction for the
        batch, :func:`~gridsentinel.cases.batch.apply_detections`), then publish their events and drop
        them from the outbox. Returns the events published. Raises only if publishing fails (the events
        stay in the outbox; the caller must not ack the batch)."""
        events = await self.apply(batch)
        await self.publish(events)
        return events

    async def apply(self, batch: Sequence[tuple[bytes | None, bytes | None]]) -> list[CaseEvent]:
        """The first half of :meth:`process`: decode, dead-letter what cannot become a case, apply the rest
        (committed, events in the outbox). Returns the events to publish, in order."""
        decoded: list[tuple[bytes | None, bytes | None, Detection]] = []
        for key, value in batch:
            self.stats["detections"] += 1
            try:
                decoded.append((key, value, Detection.from_json(value or b"")))
            except (RecordError, TypeError) as exc:
                await self._reject(key, value, "bad_record", f"{self._origin}: {exc}", _device_of(value))
        events: list[CaseEvent] = []
        log_opened = log.isEnabledFor(logging.INFO)  # once per batch: no log record built per case when off
        results = await self._apply_batch([d for _, _, d in decoded]) if decoded else []
        for (key, value, detection), result in zip(decoded, results, strict=True):
            if result.error is not None:
                # A StoreConflict here means concurrent writers won every attempt the retry policy
                # (cases/retry.py) allows: a hot spot, not bad data; it goes to the dead letter rather
                # than blocking the partition.
                await self._refuse(key, value, detection, result.error)
            else:
                self.stats["applied" if result.events else "replayed"] += 1
                events += result.events
                for event in result.events:
                    self.event_types[event.type] += 1
                    if log_opened and event.type == "open":  # the log action ("opened" never matched)
                        log.info("case %s opened (%s in %s) by detection %s", event.case_id, event.category_key,
                                 event.grid_code, detection.detection_id,
                                 extra={"case_id": event.case_id, "device_id": detection.device_id,
                                        "detection_id": detection.detection_id, "stage": "cases"})
        return events

    async def _apply_batch(self, detections: Sequence[Detection]) -> list[Applied]:
        while True:
            try:
                return await apply_detections(detections, self.store, self.catalog, self.adjacency,
                                              now=self._clock(), families=self.families)
            except (DBAPIError, OSError) as exc:
                # The database is away: the batch's transaction did not commit (in the one-by-one
                # fallback, the detections before the outage did, and their events wait in the outbox;
                # on retry they are no-ops). Wait and retry; the detections stay unacked.
                self.stats["store_retries"] += 1
                log.warning("case store unavailable (%s); retrying a batch of %d", exc, len(detections),
                            extra={"stage": "cases"})
                await asyncio.sleep(self._retry_delay_s)

    async def publish(self, events: Sequence[CaseEvent]) -> None:
        if not events:
            return
        await self._publish(events)
        await self.forget([e.event_id for e in events])

    async def forget(self, event_ids: Sequence[str]) -> None:
        """These events are on Kafka: drop them from the outbox."""
        await self.store.mark_published(event_ids)
        self.stats["events"] += len(event_ids)

    async def flush_outbox(self, *, older_than_s: float | None = None) -> int:
        """Publish what is still in the outbox (after a crash: events committed but never produced).
        With ``older_than_s`` only events written at least that long ago (not those in flight)."""
        before = None if older_than_s is None else self._clock() - older_than_s
        total = 0
        while True:
            pending = await self.store.pending_events(created_before=before, limit=500)
            if not pending:
                return total
            await self.publish(pending)
            total += len(pending)
            self.stats["outbox_recovered"] += len(pending)

    async def sweep(self) -> list[CaseEvent]:
        """Escalations and reminders due now; their events are published (they are in the outbox too)."""
        events = await sweep(self.store, self.catalog, now=self._clock())
        await self.publish(events)
        return events

    async def _refuse(self, key: bytes | None, value: bytes | None, detection: Detection,
                      error: Exception) -> None:
        reason = ("unknown_category" if isinstance(error, UnknownCategory)
                  else "bad_grid_code" if isinstance(error, GridCodeError)
                  else "store_conflict")
        await self._reject(key, value, reason, f"{detection.detection_id}: {error}", detection.device_id)

    async def _reject(self, key: bytes | None, value: bytes | None, reason: str, detail: str,
                      device_id: str | None) -> None:
        self.stats["dead_lettered"] += 1
        await self._dead_letter(
            DeadLetter(
                reason=reason,
                detail=detail,
                origin=self._origin,
                received_at=self._clock(),
                payload_b64=base64.b64encode(value or b"").decode(),
                device_id=device_id,
            ),
            key,
        )


def _device_of(value: bytes | None) -> str | None:
    """The device id of a detection that could not be decoded, when its JSON still names one."""
    try:
        data = json.loads(value or b"")
    except ValueError:
        return None
    device_id = data.get("device_id") if isinstance(data, dict) else None
    return device_id if isinstance(device_id, str) and device_id else None


class PublisherStopped(TaskStopped):
    """The publisher's task ended (producing failed) before everything submitted was acked."""


class OrderedPublisher(OrderedQueue[tuple[Awaitable[object] | None, list[str], Sequence[Any]]]):
    """Overlaps the batches of the cases agent: batch N's events are produced as soon as its transaction
    committed, and the agent goes on applying batch N+1 while Kafka acknowledges them. One task behind a
    bounded queue then, strictly in submission order, waits for each batch's produce acks and acks its
    detections.

    Nothing is acked before its events are on Kafka, and a batch is never acked before an earlier one.
    If producing fails the task stops, :meth:`submit` raises, and everything after stays unacked (the
    events stay in the outbox).

    With ``durable`` (the store committed the batches without waiting for the disk: ``async_commit``), a
    batch is acked only after a ``durable()`` call that began after Kafka had its events, so no detection is
    acked before its case is on disk. One call covers every batch waiting then, and calls are at least
    ``durable_every_s`` apart: a flush of the log per call, a few a second instead of one per batch. A disk that
    stalls then holds the acks back (up to ``max_pending`` batches), not the next batches' events. Should the
    call fail (the database away), it is tried again every second; nothing is acked meanwhile.

    The events Kafka has are dropped from the outbox at most ``forget_every_s`` later, those of every batch
    of that spell in one statement (also when no batch follows, and at :meth:`drain` and :meth:`close`).
    A delete per batch (~40 a second in a steady stream of 1,300 new cases a second) cost the cases worker
    ~7 % more CPU (docs/cases.md, session 17). Events left in the outbox by a crash in
    between go out again with the same ids (consumers drop repeats); the sweep timer only republishes
    events older than ``outbox_grace_s`` (5 s), so none is published twice while the worker runs.
    """

    stopped = PublisherStopped

    def __init__(self, send: Send, forget: Forget, ack: Ack, *, max_pending: int = 4,
                 forget_every_s: float = 1.0, durable: Durable | None = None, durable_every_s: float = 0.2,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(max_pending)
        self._send = send
        self._forget = forget
        self._ack = ack
        self._forget_every_s = forget_every_s
        self._durable = durable
        self._durable_every_s = durable_every_s
        self._clock = clock
        self._published: list[str] = []  # on Kafka, still in the outbox
        self._forgot_at = clock()
        self._durable_at = -math.inf  # when the last durable() call began

    async def submit(self, events: Sequence[CaseEvent], acks: Sequence[Any]) -> None:
        """Start producing ``events`` (committed) now; ``acks`` are acked once Kafka has them. Waits while
        ``max_pending`` batches are unacknowledged (backpressure on the stream)."""
        self._running()  # raises if producing already failed: do not produce more
        delivered = await self._send(events) if events else None
        await self._put((delivered, [e.event_id for e in events], acks))

    async def drain(self) -> None:
        """Return once every batch submitted is acked and its events are out of the outbox."""
        await super().drain()
        await self._drop_published()

    async def close(self) -> None:
        await super().close()
        await self._drop_published()

    async def _take_delivered(self, batches: list[tuple[Awaitable[object] | None, list[str], Sequence[Any]]],
                              first: tuple[Awaitable[object] | None, list[str], Sequence[Any]] | None = None) -> None:
        """Move ``first`` and the batches waiting in the queue to ``batches``; return once Kafka has the events
        of every batch moved."""
        start = len(batches)
        if first is not None:
            batches.append(first)
        while not self._queue.empty():
            batches.append(self._queue.get_nowait())
        for delivered, _, _ in batches[start:]:
            if delivered is not None:
                await delivered  # the broker has them (acks=all)

    async def _make_durable(self) -> None:
        assert self._durable is not None
        while True:
            self._durable_at = self._clock()
            try:
                await self._durable()
                return
            except (DBAPIError, OSError) as exc:
                log.warning("case store unavailable while making batches durable (%s); acks wait, trying again",
                            exc, extra={"stage": "cases"})
                await asyncio.sleep(1.0)

    async def _drop_published(self) -> None:
        published, self._published = self._published, []
        self._forgot_at = self._clock()
        if not published:
            return
        try:
            await self._forget(published)
        except (DBAPIError, OSError) as exc:
            # They are on Kafka; left in the outbox, the timer publishes them once more (consumers drop
            # repeats by event id). Not a reason to hold the detections back.
            log.warning("could not drop %d published events from the outbox: %s", len(published), exc)

    async def _next(self) -> tuple[Awaitable[object] | None, list[str], Sequence[Any]] | None:
        """The next batch; None when the published events are due to leave the outbox first."""
        if not self._published:
            return await self._queue.get()
        due = self._forgot_at + self._forget_every_s - self._clock()
        if due <= 0:
            return None
        try:
            return await asyncio.wait_for(self._queue.get(), due)
        except TimeoutError:
            return None

    async def _run(self) -> None:
        while True:
            first = await self._next()
            if first is None:
                await self._drop_published()
                continue
            batches: list[tuple[Awaitable[object] | None, list[str], Sequence[Any]]] = []
            await self._take_delivered(batches, first)
            if self._durable is not None:
                wait = self._durable_at + self._durable_every_s - self._clock()
                if wait > 0:  # the last call was a moment ago: let this one cover what comes meanwhile
                    await asyncio.sleep(wait)
                    await self._take_delivered(batches)
                await self._make_durable()
            for _, ids, acks in batches:
                self._published += ids
                for ack in acks:
                    await self._ack(ack)
            for _ in batches:
                self._queue.task_done()


class RecentIds:
    """A bounded set of recently seen ids (drops repeats of the at-least-once stream)."""

    def __init__(self, size: int = 10_000) -> None:
        self._ids: OrderedDict[str, None] = OrderedDict()
        self._size = size

    def add(self, item: str) -> bool:
        """True when ``item`` is new."""
        if item in self._ids:
            return False
        self._ids[item] = None
        while len(self._ids) > self._size:
            self._ids.popitem(last=False)
        return True


class Delivery(Protocol):
    """What the alerts agent hands notified case events to (``alerts.delivery.service.AlertDelivery``;
    the composition root passes a factory for it: alerts sits above cases)."""

    async def start(self) -> None: ...

    async def deliver(self, event: CaseEvent, body: bytes | None = None) -> Any: ...

    async def close(self) -> None: ...


# Builds the delivery, given where its failures go; called once, on the worker's event loop.
DeliveryFactory = Callable[[Callable[[DeadLetter], Awaitable[None]]], Delivery]


class AlertRelay:
    """The alerts agent without Faust: decode each case event that notifies someone, drop repeats of the
    at-least-once stream, deliver; an event that does not decode goes to the dead letter."""

    def __init__(self, delivery: Delivery, *, dead_letter: DeadLetterSink, origin: str = "gs.case-events",
                 recent: RecentIds | None = None) -> None:
        self.delivery = delivery
        self._dead_letter = dead_letter
        self._origin = origin
        self.recent = RecentIds() if recent is None else recent

    async def by_case(self, batch: Sequence[tuple[bytes | None, bytes | None, Mapping[str, bytes]]]
                      ) -> dict[str, list[tuple[CaseEvent, bytes]]]:
        """The batch's events to deliver, decoded, by case, in batch order, each with its bytes as read: the
        JSON body of its webhooks, not the event encoded again (docs/cases.md, session 16)."""
        by_case: dict[str, list[tuple[CaseEvent, bytes]]] = {}
        for key, value, headers in batch:
            case_event = await self._decode(key, value, headers)
            if case_event is not None:
                by_case.setdefault(case_event.case_id, []).append((case_event, value or b""))
        return by_case

    async def _decode(self, key: bytes | None, value: bytes | None,
                      headers: Mapping[str, bytes]) -> CaseEvent | None:
        """The event to deliver, or None: not notified, a recent repeat, or undecodable (dead-lettered)."""
        if headers.get(NOTIFY_HEADER) == b"0":
            return None  # nobody is to be told (evidence, …): nothing to deliver, no need to decode
        try:
            case_event = CaseEvent.from_json(value or b"")
        except (ValueError, TypeError) as exc:
            await self._dead_letter(
                DeadLetter(
                    reason="bad_record",
                    detail=f"{self._origin}: {exc}",
                    origin=self._origin,
                    received_at=time.time(),
                    payload_b64=base64.b64encode(value or b"").decode(),
                ),
                key,
            )
            return None
        return case_event if self.recent.add(case_event.event_id) else None


class AlertPipeline(OrderedQueue[tuple["asyncio.Future[list[None]]", Sequence[Any]]]):
    """The alerts agent's batches delivered without waiting for the batch before them to finish.

    Until session 12 the alerts agent delivered a batch and only then took the next: every alert of a batch
    waited for its slowest delivery, and the events that arrived meanwhile waited for the whole batch (at
    half the stage's capacity, most of the detection -> webhook p99: ``bench cases``). Here each case's
    deliveries start as soon as its events are taken, at most ``concurrency`` at once over all batches; a
    case's events still go out one after the other, across batches too (a receiver sees them in order).
    Bounded so that a burst does not open hundreds of connections to one receiver; 16 by default
    (``GS_ALERTS_CONCURRENCY``): with aiohttp a request in flight costs little, and a receiver 50 ms away
    still takes ~300 alerts/s (4 allowed 80). A batch's events are acked once all its deliveries are done,
    batch after batch in order, by one task
    (:class:`~gridsentinel.ordered.OrderedQueue`); :meth:`submit` waits while ``max_pending`` batches are
    not acked yet. A delivery that raises stops the task and the next :meth:`submit` raises it.
    """

    def __init__(self, relay: AlertRelay, ack: Ack, *, concurrency: int = 16, max_pending: int = 8) -> None:
        super().__init__(max_pending)
        self._relay = relay
        self._ack = ack
        self._slots = asyncio.Semaphore(concurrency)
        self._last: dict[str, asyncio.Future[None]] = {}  # each case's latest delivery still running

    async def submit(self, batch: Sequence[tuple[bytes | None, bytes | None, Mapping[str, bytes]]],
                     acks: Sequence[Any]) -> None:
        self._running()  # raises if a delivery failed: take no more
        jobs = [self._start(case_id, events) for case_id, events in (await self._relay.by_case(batch)).items()]
        await self._put((asyncio.gather(*jobs), acks))

    def _start(self, case_id: str, events: list[tuple[CaseEvent, bytes]]) -> asyncio.Future[None]:
        before = self._last.get(case_id)
        job = asyncio.ensure_future(self._deliver(events, before))
        self._last[case_id] = job

        def forget(done: asyncio.Future[None]) -> None:
            if self._last.get(case_id) is done:
                del self._last[case_id]

        job.add_done_callback(forget)
        return job

    async def _deliver(self, events: list[tuple[CaseEvent, bytes]], before: asyncio.Future[None] | None) -> None:
        if before is not None:
            await asyncio.wait({before})  # the case's earlier events first (its failure is its batch's)
        async with self._slots:
            for case_event, body in events:
                await self._relay.delivery.deliver(case_event, body)

    async def _run(self) -> None:
        while True:
            delivered, acks = await self._queue.get()
            await delivered
            for ack in acks:
                await self._ack(ack)
            self._queue.task_done()


class CaseStage:
    """``--stages cases``: the cases loop and the sweep timer. The case events it produces are delivered
    by the ``alerts`` stage (gridsentinel/alerts/stage.py), which the worker runs beside it by default
    (``GS_CASES_ALERTS=in-worker``) or leaves to workers of its own (``separate``).

    The store is opened on first use, on the worker's event loop, and closed at shutdown. ``catalog``: the
    worker's live catalogue (live config replaces it; new cases use the new one).
    """

    def __init__(self, catalog: LiveCatalog | None = None) -> None:
        self.catalog = catalog  # None: config/categories.yaml etc. loaded at register, never replaced
        self._lock = asyncio.Lock()
        self._processor: CaseProcessor | None = None
        self._store: SqlCaseStore | None = None
        self._producer: AsyncProducer | None = None  # gs.case-events, made on first use (it starts a thread)
        self._finished = False  # the loop's service has stopped and closed the store

    def register(self, app: faust.App, ctx: StageContext) -> None:
        from confluent_kafka import TopicPartition

        from gridsentinel.core.grid import GridMap
        from gridsentinel.streams.batches import KafkaBatches, loop_service, offsets_after
        from gridsentinel.streams.producer import AsyncProducer

        settings, options = ctx.settings, ctx.options
        ctx.ensure_topics([ctx.names.detections, ctx.names.case_events, ctx.names.deadletter])
        config = CaseStageConfig.from_settings(settings)
        catalog = self.catalog or LiveCatalog(load_catalog(settings.config_dir))
        families = load_families(settings.config_dir, catalog.current)
        adjacency = GridMap.load(settings.config_dir / "grid.geojson").neighbours()

        async def send(events: Sequence[CaseEvent]) -> Awaitable[object]:
            # All records are queued (in order) before any ack is awaited; librdkafka batches them.
            if self._producer is None:
                self._producer = AsyncProducer(settings.kafka_bootstrap, f"{options.app_id}-case-events")
            producer = self._producer
            futures = [producer.produce(ctx.names.case_events, e.case_id.encode(), e.to_json(),
                                        [(NOTIFY_HEADER, b"1" if e.notify else b"0")]) for e in events]
            return asyncio.gather(*futures)

        async def publish(events: Sequence[CaseEvent]) -> None:
            await (await send(events))  # the broker has them (acks=all): only now may the outbox forget them

        async def dead_letter(letter: DeadLetter, key: bytes | None) -> None:
            future = await ctx.topics["deadletter"].send(key=key, value=letter.to_json(), force=True)
            await future

        async def processor() -> CaseProcessor:
            async with self._lock:
                if self._processor is None:
                    # no pre-ping: every path here retries on a database error (see create_engine)
                    store = self._store = await SqlCaseStore.open(config.database_url, pre_ping=False,
                                                                  async_commit=config.async_commit)
                    self._processor = CaseProcessor(store, catalog, adjacency, publish=publish,
                                                    dead_letter=dead_letter, origin=ctx.names.detections,
                                                    families=families)
                return self._processor

        ctx.stats["cases"] = lambda: dict(self._processor.stats) if self._processor is not None else {}
        ctx.stats["case_event_types"] = lambda: (dict(self._processor.event_types) if self._processor is not None
                                                 else {})

        batches = KafkaBatches(bootstrap=settings.kafka_bootstrap, group_id=f"{options.app_id}-cases",
                               topic=ctx.names.detections, client_id=f"{options.app_id}-cases",
                               max_batch=config.batch_size, legacy_groups=[options.app_id],
                               min_interval_s=config.batch_interval_s)
        ctx.lag_sources.append(lambda: dict(batches.lag))

        async def apply_all() -> None:
            proc = await processor()
            recovered = await proc.flush_outbox()  # events a crashed run committed but never produced
            if recovered:
                log.warning("published %d case events left in the outbox by an earlier run", recovered)

            async def ack(offsets: list[TopicPartition]) -> None:
                batches.ack_offsets(offsets)

            publisher = OrderedPublisher(send, proc.forget, ack, max_pending=config.pending_batches,
                                         durable=proc.store.durable if config.async_commit else None)
            try:
                # what arrived while the last batch was applied, up to batch_size, without waiting
                async for records in batches.batches():
                    started = time.monotonic()
                    ctx.metrics.took("cases", len(records))
                    events = await proc.apply([(r.key, r.value) for r in records])  # committed, in the outbox
                    ctx.metrics.batch("cases", len(records), time.monotonic() - started)
                    # acked once Kafka has the events and the batch is on disk, in order
                    await publisher.submit(events, [offsets_after(records)])
            finally:
                await publisher.close()

        async def finish() -> None:
            await batches.close()  # commits what was acked
            self._finished = True  # a sweep due after this must not open the store again
            store, self._store, self._processor = self._store, None, None
            if store is not None:
                await store.close()
            producer, self._producer = self._producer, None
            if producer is not None:
                left = await producer.close()
                if left:  # they stay in the outbox: the next start publishes them
                    log.warning("%d case events not acknowledged by Kafka at shutdown", left)

        app.service(loop_service("CasesService", apply_all, finish))

        @app.timer(config.sweep_interval_s, on_leader=True)
        async def sweep_cases() -> None:
            if self._finished:
                return  # the worker is stopping
            try:
                proc = await processor()
                await proc.sweep()
                await proc.flush_outbox(older_than_s=config.outbox_grace_s)
            except (DBAPIError, OSError) as exc:  # the database is away: the next tick tries again
                log.warning("case sweep skipped: the case store is unavailable (%s)", exc, extra={"stage": "cases"})

