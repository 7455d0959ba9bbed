"""Detection stage: ``gs.readings`` -> ``DetectionEngine`` -> ``gs.detections`` (key: dedup region).

- One agent consumes ``gs.readings`` plus this app's tick topic (``<app id>-detect-ticks``, co-partitioned
  with the readings). Readings are keyed by device id, so a device's state lives on one partition: the
  ``detect-state`` table (changelog-backed; memory store, recovered from the changelog) holds each device's
  engine state and the offset of the last reading applied to it.
- Both topics are created before the app subscribes (a topic created later is seen only at the next
  metadata refresh, five minutes on).
- A timer on every worker sends a tick, carrying the wall time it was made, to each readings partition it
  owns; the agent answers it with ``engine.check(now)`` for that partition's devices (dropout, held tilt,
  idle flush), ``now`` being decided when the tick is applied, on the partition's event time
  (``PartitionClock``): a backlog, however long, never looks like silence. Ticks go through a topic because
  a table can only be written from a stream event (its changelog partition is the event's).
- Rain is shared across partitions in the ``detect-rain`` global table (grid cell -> recent rain).
- Readings are taken in batches; each touched device's state is written once per batch (with its last
  offset in the batch), after the batch's detections are delivered, and the events are acked last.
- Crash safety: detections are sent and *delivered* before the device's state is written, and a reading
  at or below the stored offset is skipped. A crash therefore gives at most a replay of the same
  detections (deterministic ids), never a lost or a second incident.
"""

from __future__ import annotations

import base64
import json
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

import faust
from faust.types import TP

from gridsentinel.core.devices import Device, Registry
from gridsentinel.core.grid import dedup_region, valid_grid_code
from gridsentinel.core.records import DeadLetter, Detection, Reading, RecordError
from gridsentinel.detectors.config import load_file
from gridsentinel.detectors.detection import CategoryOf
from gridsentinel.detectors.engine import RAIN_KIND, DetectionEngine, PartitionClock
from gridsentinel.settings import Settings
from gridsentinel.streams.faust_compat import read_position, table_put

if TYPE_CHECKING:
    from gridsentinel.streams.context import StageContext

log = logging.getLogger(__name__)

TICK_S = 2.0
# Readings are applied in batches and each touched device's state is written once per batch, not once
# per reading. A batch closes at BATCH_MAX events or BATCH_WITHIN_S after it opened.
BATCH_MAX = 5000
BATCH_WITHIN_S = 0.25


def detection_key(d: Detection) -> bytes:
    """``gs.detections`` key: the dedup region (street) of the detection's grid cell."""
    return (dedup_region(d.grid_code) if valid_grid_code(d.grid_code) else d.grid_code or "unknown").encode()


async def send_detections(topic: faust.TopicT, detections: Sequence[Detection]) -> None:
    """Send the detections (keyed by :func:`detection_key`) and return once Kafka has them all."""
    futures = [await topic.send(key=detection_key(d), value=d.to_json()) for d in detections]
    for fut in futures:  # delivered before the state that records them is written
        await fut


class Event(NamedTuple):
    """One record taken from the agent's two topics."""

    tick: bool  # from the ticks topic, else a reading
    partition: int
    offset: int
    value: bytes


@dataclass
class BatchResult:
    """What a batch changed, snapshot before any await: the records are exactly the state the detections
    came from."""

    detections: list[Detection] = field(default_factory=list)
    records: dict[str, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # device -> (partition, record)
    rain: dict[str, tuple[int, list[list[float]]]] = field(default_factory=dict)  # cell -> (partition, rain)


def _unknown(_partition: int) -> int | None:
    return None


class DetectionProcessor:
    """The detection stage without Faust: readings and ticks in, detections and device records out.

    ``saved(device)`` / ``shared_rain(cell)`` read the stage's tables; ``highwater(partition)`` and
    ``read_position(partition)`` tell how far the consumer is (unknown: a partition is never caught up).
    """

    def __init__(self, engine: DetectionEngine, partitions: int, *,
                 saved: Callable[[str], dict[str, Any] | None],
                 shared_rain: Callable[[str], Any],
                 highwater: Callable[[int], int | None] = _unknown,
                 read_position: Callable[[int], int | None] = _unknown,
                 wall: Callable[[], float] = time.time,
                 resolve_unknown: Callable[[str], Device | None] | None = None) -> None:
        self.engine = engine
        self.partitions = partitions
        # asked once before a reading of a device the registry does not know is rejected (a worker that
        # follows the registry reads its feed to the end: core/device_follow.py UnknownResolver)
        self.resolve_unknown = resolve_unknown
        self._saved = saved
        self._shared_rain = shared_rain
        self._highwater = highwater
        self._read_position = read_position
        self._wall = wall
        self.partition_of: dict[str, int] = {}  # learnt from the readings; else the producer's partitioner
        # the event time each readings partition has reached: what a tick means is decided from it when
        # the tick is applied (see tick_now), so ticks can never move devices past what their readings reached
        self.clocks = PartitionClock()
        self.applied_offset: dict[int, int] = {}
        self.counts = {"detections_sent": 0, "replayed_skipped": 0, "bad_records": 0, "ticks": 0,
                       "ticks_waiting": 0}

    def stats(self, partitions: list[int]) -> dict[str, Any]:
        return {**self.engine.counts, **self.counts, "partitions": partitions}

    def apply(self, events: Iterable[Event]) -> BatchResult:
        """The whole batch in memory, with no await: nothing else touches the engine meanwhile."""
        batch: dict[str, dict[str, Any]] = {}  # device -> its record as of this batch's end
        home: dict[str, int] = {}  # device -> the partition its state lives on
        rain_changed: dict[str, int] = {}  # grid cell -> partition of its newest gauge reading
        out = BatchResult()
        for event in events:
            if event.tick:
                touched = self.on_tick(event, batch, out.detections)
            else:
                one = self.on_reading(event, batch, out.detections, rain_changed)
                touched = [] if one is None else [one]
            for device_id in touched:
                home[device_id] = event.partition
        engine = self.engine
        out.records = {d: (home[d], {**batch[d], "engine": engine.export_state(d)}) for d in home}
        out.rain = {cell: (p, engine.rain_for(cell)) for cell, p in rain_changed.items()}
        return out

    def dead_letters(self, origin: str) -> list[tuple[DeadLetter, bytes]]:
        """The readings the engine rejected since the last call, as dead letters (with their keys)."""
        return [(DeadLetter(
            reason=rej.reason, detail=rej.detail, origin=origin, received_at=time.time(),
            payload_b64=base64.b64encode(rej.reading.to_json()).decode(), device_id=rej.reading.device_id,
        ), rej.reading.device_id.encode()) for rej in self.engine.take_rejected()]

    def revoked(self, partitions: Iterable[int]) -> None:
        """Another worker may take these devices: reload them from the table when they come back."""
        self.engine.forget()
        for partition in partitions:
            self.clocks.forget(partition)

    def devices_on(self, partition: int) -> list[str]:
        # librdkafka's default (consistent_random) partitioner: crc32(key) % partitions
        return sorted(d for d in self.engine.registry.ids()
                      if self.partition_of.get(d, zlib.crc32(d.encode()) % self.partitions) == partition)

    def load(self, device_id: str, batch: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The device's saved record: this batch's pending one, else the table's (engine restored)."""
        saved = batch.get(device_id)
        if saved is None:
            saved = self._saved(device_id) or {}
            if not self.engine.known(device_id):
                self.engine.import_state(device_id, saved.get("engine") or {})
        return saved

    def on_reading(self, event: Event, batch: dict[str, dict[str, Any]], out: list[Detection],
                   rain_changed: dict[str, int]) -> str | None:
        """Apply one reading; returns its device id when the device's state changed."""
        engine, partition, offset = self.engine, event.partition, event.offset
        self.applied_offset[partition] = offset  # read, whatever becomes of it (see tick_now)
        try:
            reading = Reading.from_json(event.value)
        except (RecordError, TypeError):
            self.counts["bad_records"] += 1  # the ingest stage dead-letters malformed records
            return None
        device_id = reading.device_id
        self.partition_of[device_id] = partition
        wall = self._wall()
        self.clocks.observe(partition, reading.observed_at, wall)  # a replayed reading was read all the same
        saved = self.load(device_id, batch)
        if saved.get("offset", -1) >= offset:
            self.counts["replayed_skipped"] += 1  # already in the saved state (a replay after a crash)
            return None
        device = engine.registry.get(device_id)
        if device is None and self.resolve_unknown is not None and engine.registry.retirement(device_id) is None:
            device = self.resolve_unknown(device_id)  # registered a moment ago: read the registry's feed first
        if device is not None and device.kind != RAIN_KIND:
            for cell in engine.rain_cells(device_id):
                engine.note_rain(cell, self._shared_rain(cell) or [])
        # the arrival on the ticks' time line (the partition's clock), so the idle flush measures real
        # quiet and not how far a replay runs behind the wall clock
        out += engine.process(reading, now=self.clocks.arrival(partition, wall))
        if device is not None and device.kind == RAIN_KIND and device.grid_code:
            rain_changed[device.grid_code] = partition
        batch[device_id] = {**saved, "offset": offset}
        return device_id

    def on_tick(self, event: Event, batch: dict[str, dict[str, Any]], out: list[Detection]) -> list[str]:
        """Let time pass for the tick's partition; returns the devices whose state changed."""
        engine, partition = self.engine, event.partition
        body = json.loads(event.value)
        made = float(body.get("wall", body.get("now", 0.0)))  # the older ticks' "now" was a wall time
        self.counts["ticks"] += 1
        engine.stream_start = self.clocks.first  # a device never heard from is silent since the stream began
        mine = self.devices_on(partition)
        ids = [d for d in mine if self.load(d, batch).get("tick_offset", -1) < event.offset]
        self.clocks.seed(partition, engine.newest(mine), made)  # after a restart: the saved event time
        now = self.tick_now(partition, made)
        if now is None:  # no event time known on this partition yet: nothing can be judged
            self.counts["ticks_waiting"] += 1
            return []
        before = {d: engine.export_state(d) for d in ids}
        out += engine.check(now, ids)
        changed = []
        for device_id in ids:
            unsaved = device_id not in batch and self._saved(device_id) is None
            if unsaved or engine.export_state(device_id) != before[device_id]:
                batch[device_id] = {**self.load(device_id, batch), "tick_offset": event.offset}
                changed.append(device_id)
        return changed

    def caught_up(self, partition: int) -> bool:
        """Whether the partition has read all its readings there are (as far as the consumer knows)."""
        high = self._highwater(partition)
        if high is None:  # not fetched yet: there may be a backlog
            return False
        last = self.applied_offset.get(partition)
        if last is None:  # nothing read since the partition came: where the consumer was put (committed)
            position = self._read_position(partition)
            last = -1 if position is None else position - 1
        return last + 1 >= high

    def tick_now(self, partition: int, made: float) -> float | None:
        """The event time a tick made at wall time ``made`` brings to a partition, decided when it is
        applied: a partition still reading a backlog gets its newest event time; one that has read all
        there is moves on at wall speed (and follows the worker's newest event time less ``lateness_s``,
        when its devices went quiet while others' went on), so a silence is still noticed."""
        return self.clocks.now(partition, made, self.caught_up(partition), lag=self.engine.config.lateness_s)


def tick_message(wall: float) -> bytes:
    """A tick says only when it was made; the partition's event time gives it its meaning when it is
    applied (a tick queued behind hours of backlog must not jump the event time)."""
    return json.dumps({"wall": wall}).encode()


class DetectionStage:
    """``--stages detect``: the stage object; its engine is the one live config reconfigures."""

    def __init__(self, engine: DetectionEngine,
                 resolve_unknown: Callable[[str], Device | None] | None = None) -> None:
        self.engine = engine
        self.resolve_unknown = resolve_unknown

    @classmethod
    def from_settings(cls, settings: Settings, category_of: CategoryOf,
                      registry: Registry | None = None) -> DetectionStage:
        """The stage for ``settings``; ``category_of`` (config/categories.yaml's ``Catalog.category_of``)
        labels the detections; ``registry``: the worker's followed registry (else devices.yaml's)."""
        config = load_file(settings.config_dir / "detectors.yaml")
        registry = registry if registry is not None else Registry.load(settings.config_dir)
        return cls(DetectionEngine(config, registry, category_of=category_of))

    def register(self, app: faust.App, ctx: StageContext) -> None:
        options, partitions = ctx.options, ctx.options.partitions
        readings_name, ticks_name = ctx.names.readings, f"{options.app_id}-detect-ticks"
        source = app.topic(readings_name, ticks_name, partitions=partitions, internal=True)
        ticks = app.topic(ticks_name, partitions=partitions, internal=True)
        state = app.Table("detect-state", default=None, partitions=partitions)  # json
        rain = app.GlobalTable("detect-rain", default=None, partitions=partitions)
        # every topic the agent and the tables read, created before the app subscribes (Faust declares its
        # internal topics while subscribing, and a topic missing then is seen five minutes later)
        ctx.ensure_topics([readings_name, ticks_name])
        ctx.ensure_topics([t.changelog_topic.get_topic_name() for t in (state, rain)],
                          config={"cleanup.policy": "compact"})  # as Faust makes a table's changelog
        proc = DetectionProcessor(
            self.engine, partitions, saved=state.get, shared_rain=rain.get,
            highwater=lambda p: app.consumer.highwater(TP(readings_name, p)),
            read_position=lambda p: read_position(app, readings_name, p), resolve_unknown=self.resolve_unknown)

        def owned() -> list[int]:
            return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == readings_name)

        ctx.stats["detect"] = lambda: proc.stats(owned())

        @app.agent(source, name=f"{options.app_id}.detect")
        async def detect(stream: faust.StreamT[Any]) -> None:
            manual = stream.noack()  # type: ignore[attr-defined]  # a faust.Stream; StreamT lacks noack
            async for events in manual.noack_take(BATCH_MAX, within=BATCH_WITHIN_S):
                started = time.monotonic()
                ctx.metrics.took("detect", len(events))
                done = proc.apply(Event(e.message.topic == ticks_name, e.message.partition, e.message.offset,
                                        e.value) for e in events)
                # detections sent and delivered before the state that records them: a crash in between
                # replays the batch from the saved offsets, which gives the same detection ids again
                await send_detections(ctx.topics["detections"], done.detections)
                proc.counts["detections_sent"] += len(done.detections)
                for letter, key in proc.dead_letters(readings_name):
                    await ctx.dead_letter(letter, key=key)
                # each touched device's state once per batch, with its last offset; then the acks
                for device_id, (partition, record) in done.records.items():
                    table_put(state, partition, device_id, record)
                for cell, (partition, rain_now) in done.rain.items():
                    table_put(rain, partition, cell, rain_now)
                for event in events:
                    await manual.ack(event)
                ctx.metrics.batch("detect", len(events), time.monotonic() - started)

        @app.timer(TICK_S)
        async def tick() -> None:
            body = tick_message(time.time())
            for partition in owned():
                await ticks.send(value=body, partition=partition)

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types every receiver (sender, *args)
        async def _revoked(app: faust.App, revoked: set[Any], **kwargs: object) -> None:
            proc.revoked(tp.partition for tp in revoked if tp.topic == readings_name)
