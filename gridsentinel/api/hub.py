"""The in-process case-event hub that feeds the SSE stream, its Kafka feeder, and the producer that
hands Open311 reports to the case stage.

Whatever produces case events in this process (the API's own transitions and Open311 posts, or
:func:`consume_case_events` reading ``gs.case-events``) calls :meth:`CaseEventHub.publish`; every SSE
client holds one :meth:`CaseEventHub.subscribe` subscription. A slow subscriber never blocks the
publisher: its bounded queue drops its oldest event and the subscription counts the loss. Events are
deduplicated by ``event_id`` (replays from Kafka are harmless), and the last ``history`` events are kept
so a reconnecting client can resume after its ``Last-Event-ID``.

>>> import asyncio
>>> from gridsentinel.cases.events import CaseEvent
>>> async def demo() -> list[str]:
...     hub = CaseEventHub()
...     ev = CaseEvent(event_id="c1:1", case_id="c1", type="open", at=0.0, actor="system:dedup",
...                    grid_code="320582004001001", category_key="event:0103", status="open",
...                    severity="warning", notify=True)
...     with hub.subscribe() as sub:
...         hub.publish(ev)
...         hub.publish(ev)  # a replay: dropped
...         return [(await sub.get()).event_id, str(sub.pending())]
>>> asyncio.run(demo())
['c1:1', '0']
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

from gridsentinel.cases.events import CaseEvent
from gridsentinel.core.grid import dedup_region
from gridsentinel.core.records import Detection
from gridsentinel.settings import Settings

if TYPE_CHECKING:
    from aiokafka import AIOKafkaProducer

log = logging.getLogger(__name__)
EventFilter = Callable[[CaseEvent], bool]


class Subscription:
    """One subscriber's queue of case events."""

    def __init__(self, maxsize: int, accept: EventFilter | None) -> None:
        self._queue: deque[CaseEvent] = deque()
        self._maxsize = maxsize
        self._accept = accept
        self._ready = asyncio.Event()
        self.dropped = 0
        self.closed = False  # the hub is closing: no more events will come

    def _close(self) -> None:
        self.closed = True
        self._ready.set()

    def _offer(self, event: CaseEvent) -> None:
        if self._accept is not None and not self._accept(event):
            return
        if len(self._queue) >= self._maxsize:
            self._queue.popleft()
            self.dropped += 1
        self._queue.append(event)
        self._ready.set()

    def pending(self) -> int:
        return len(self._queue)

    async def get(self, timeout: float | None = None) -> CaseEvent | None:
        """The next event; None when ``timeout`` seconds pass without one, or once the hub is closed and
        what was queued has been read."""
        while not self._queue:
            if self.closed:
                return None
            self._ready.clear()
            try:
                await asyncio.wait_for(self._ready.wait(), timeout)
            except TimeoutError:
                return None
        return self._queue.popleft()


class CaseEventHub:
    """Fan-out of case events to in-process subscribers. Call from the event loop's thread only."""

    def __init__(self, *, history: int = 1000, queue_size: int = 1000) -> None:
        self._subs: set[Subscription] = set()
        self._recent: OrderedDict[str, CaseEvent] = OrderedDict()
        self._history = history
        self._queue_size = queue_size
        self.published = 0
        self.duplicates = 0
        self.closed = False

    def close(self) -> None:
        """End every subscription (and any made later) once it has read what it holds: the server is
        shutting down, and an SSE response ends only when its subscription does."""
        self.closed = True
        for sub in list(self._subs):
            sub._close()

    @property
    def subscribers(self) -> int:
        return len(self._subs)

    def publish(self, event: CaseEvent) -> bool:
        """Hand ``event`` to every subscriber; False (and nothing sent) when its id was seen recently."""
        if event.event_id in self._recent:
            self.duplicates += 1
            return False
        self._recent[event.event_id] = event
        while len(self._recent) > self._history:
            self._recent.popitem(last=False)
        self.published += 1
        for sub in list(self._subs):
            sub._offer(event)
        return True

    def publish_many(self, events: list[CaseEvent]) -> int:
        return sum(self.publish(e) for e in events)

    @contextmanager
    def subscribe(
        self, accept: EventFilter | None = None, last_event_id: str | None = None
    ) -> Iterator[Subscription]:
        """A subscription for the ``with`` block; with ``last_event_id`` the kept events after it are
        replayed first (all kept events when that id is no longer kept)."""
        sub = Subscription(self._queue_size, accept)
        if self.closed:
            sub._close()
        if last_event_id is not None:
            ids = list(self._recent)
            start = ids.index(last_event_id) + 1 if last_event_id in self._recent else 0
            for event_id in ids[start:]:
                sub._offer(self._recent[event_id])
        self._subs.add(sub)
        try:
            yield sub
        finally:
            self._subs.discard(sub)


async def consume_case_events(
    hub: CaseEventHub, settings: Settings, *, group_id: str | None = None, stop: asyncio.Event | None = None
) -> None:
    """Feed ``gs.case-events`` (with the settings' topic prefix) into ``hub`` until ``stop`` is set or
    the task is cancelled. Each API process uses its own consumer group (default: a fresh one), starting
    at the latest offset: the stream is live, not a replay. Undecodable messages are logged and skipped.
    """
    from aiokafka import AIOKafkaConsumer

    from gridsentinel.core.topics import Topics

    consumer = AIOKafkaConsumer(
        Topics(settings.topic_prefix).case_events,
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=group_id or f"gs-api-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="latest",
        enable_auto_commit=True,
    )
    await consumer.start()
    try:
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    try:
                        hub.publish(CaseEvent.from_json(record.value or b""))
                    except (ValueError, TypeError) as exc:
                        log.warning("skipping undecodable case event at offset %s: %s", record.offset, exc)
    finally:
        await consumer.stop()


def detection_key(detection: Detection) -> bytes:
    """The ``gs.detections`` key of a detection in a valid cell: its dedup region, as every detector's
    (``gridsentinel.detectors.stage.detection_key``), so the partition that owns the region applies it."""
    return dedup_region(detection.grid_code).encode()


class DetectionProducer:
    """Hands detections (Open311 reports) to the case stage: produced to ``topic`` keyed by dedup region,
    acked by every replica. Connects on first use (and again after a failed start), so the API serves
    everything else while Kafka is away; a failed send raises to the caller."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self._settings = settings
        self._topic = topic
        self._producer: AIOKafkaProducer | None = None
        self._lock = asyncio.Lock()

    async def _started(self) -> AIOKafkaProducer:
        from aiokafka import AIOKafkaProducer

        async with self._lock:
            if self._producer is None:
                producer = AIOKafkaProducer(bootstrap_servers=self._settings.kafka_bootstrap, acks="all",
                                            enable_idempotence=True)
                try:
                    await producer.start()
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
            return self._producer

    async def __call__(self, detection: Detection) -> None:
        producer = await self._started()
        await producer.send_and_wait(self._topic, detection.to_json(), key=detection_key(detection))

    async def stop(self) -> None:
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
