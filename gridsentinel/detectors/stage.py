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
from typing import TYPE_CHECKING, Any

import faust
from faust.types import TP

from gridsentinel.core.devices import Registry
from gridsentinel.core.grid import dedup_region, valid_grid_code
from gridsentinel.core.records import DeadLetter, Detection, Reading, RecordError
from gridsentinel.core.topics import ensure_topics
from gridsentinel.detectors.config import load_file
from gridsentinel.detectors.engine import RAIN_KIND, DetectionEngine, PartitionClock

if TYPE_CHECKING:
    from gridsentinel.worker.app import StageContext

log = logging.getLogger(__name__)

TICK_S = 2.0
# Readings are applied in batches and each touched device's state is written once per batch, not once
# per reading. A batch closes at BATCH_MAX events or BATCH_WITHIN_S after it opened.
BATCH_MAX = 5000
BATCH_WITHIN_S = 0.25


def detection_key(d: Detection) -> bytes:
    """``gs.detections`` key: the dedup region (street) of the detection's grid cell."""
    return (dedup_region(d.grid_code) if valid_grid_code(d.grid_code) else d.grid_code or "unknown").encode()


def register(app: faust.App, ctx: StageContext) -> None:
    settings, options = ctx.settings, ctx.options
    config = load_file(settings.config_dir / "detectors.yaml")
    engine = DetectionEngine(config, Registry.load(settings.config_dir))
    ctx.extra["detection_engine"] = engine
    partitions = options.partitions
    readings_name = ctx.names.readings
    ticks_name = f"{options.app_id}-detect-ticks"
    source = app.topic(readings_name, ticks_name, partitions=partitions, internal=True)
    ticks = app.topic(ticks_name, partitions=partitions, internal=True)
    state = app.Table("detect-state", default=None, partitions=partitions)  # json
    rain = app.GlobalTable("detect-rain", default=None, partitions=partitions)
    # every topic the agent and the tables read, created before the app subscribes (Faust declares its
    # internal topics while subscribing, and a topic missing then is seen five minutes later)
    ensure_topics(settings.kafka_bootstrap, [readings_name, ticks_name], partitions)
    ensure_topics(settings.kafka_bootstrap, [t.changelog_topic.get_topic_name() for t in (state, rain)], partitions,
                  config={"cleanup.policy": "compact"})  # as Faust makes a table's changelog
    partition_of: dict[str, int] = {}  # learnt from the readings; else the producer's default partitioner
    # the event time each readings partition has reached: what a tick means is decided from it when the
    # tick is applied (see tick_now), so ticks can never move devices past what their readings reached
    clocks = PartitionClock()
    applied_offset: dict[int, int] = {}
    counts = {"detections_sent": 0, "replayed_skipped": 0, "bad_records": 0, "ticks": 0, "ticks_waiting": 0}

    def owned() -> list[int]:
        return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == readings_name)

    ctx.stats["detect"] = lambda: {**engine.counts, **counts, "partitions": owned()}

    def devices_on(partition: int) -> list[str]:
        # librdkafka's default (consistent_random) partitioner: crc32(key) % partitions
        return sorted(d for d in engine.registry.devices
                      if partition_of.get(d, zlib.crc32(d.encode()) % partitions) == partition)

    def load(device_id: str, batch: dict[str, dict[str, Any]]) -> dict[str, Any]:
        """The device's saved record: this batch's pending one, else the table's (engine restored)."""
        saved = batch.get(device_id)
        if saved is None:
            saved = state.get(device_id) or {}
            if not engine.known(device_id):
                engine.import_state(device_id, saved.get("engine") or {})
        return saved

    async def emit(detections: list[Detection]) -> None:
        futures = [await ctx.topics["detections"].send(key=detection_key(d), value=d.to_json())
                   for d in detections]
        for fut in futures:  # delivered before the state that records them is written
            await fut
        counts["detections_sent"] += len(detections)

    async def dead_letters() -> None:
        for rej in engine.take_rejected():
            await ctx.dead_letter(DeadLetter(
                reason=rej.reason, detail=rej.detail, origin=readings_name, received_at=time.time(),
                payload_b64=base64.b64encode(rej.reading.to_json()).decode(), device_id=rej.reading.device_id,
            ), key=rej.reading.device_id.encode())

    def on_reading(msg: Any, value: bytes, batch: dict[str, dict[str, Any]], out: list[Detection],
                   rain_changed: dict[str, int]) -> str | None:
        """Apply one reading; returns its device id when the device's state changed."""
        applied_offset[msg.partition] = msg.offset  # read, whatever becomes of it (see tick_now)
        try:
            reading = Reading.from_json(value)
        except (RecordError, TypeError):
            counts["bad_records"] += 1  # the ingest stage dead-letters malformed records
            return None
        device_id = reading.device_id
        partition_of[device_id] = msg.partition
        wall = time.time()
        clocks.observe(msg.partition, reading.observed_at, wall)  # a replayed reading was read all the same
        saved = load(device_id, batch)
        if saved.get("offset", -1) >= msg.offset:
            counts["replayed_skipped"] += 1  # already in the saved state (a replay after a crash)
            return None
        device = engine.registry.get(device_id)
        if device is not None and device.kind != RAIN_KIND:
            for cell in engine.rain_cells(device_id):
                engine.note_rain(cell, rain.get(cell) or [])
        # the arrival on the ticks' time line (the partition's clock), so the idle flush measures real
        # quiet and not how far a replay runs behind the wall clock
        out += engine.process(reading, now=clocks.arrival(msg.partition, wall))
        if device is not None and device.kind == RAIN_KIND and device.grid_code:
            rain_changed[device.grid_code] = msg.partition
        batch[device_id] = {**saved, "offset": msg.offset}
        return device_id

    def on_tick(msg: Any, value: bytes, batch: dict[str, dict[str, Any]], out: list[Detection]) -> list[str]:
        """Let time pass for the tick's partition; returns the devices whose state changed."""
        body = json.loads(value)
        made = float(body.get("wall", body.get("now", 0.0)))  # the older ticks' "now" was a wall time
        counts["ticks"] += 1
        engine.stream_start = clocks.first  # a device never heard from is silent since the stream began
        mine = devices_on(msg.partition)
        ids = [d for d in mine if load(d, batch).get("tick_offset", -1) < msg.offset]
        clocks.seed(msg.partition, engine.newest(mine), made)  # after a restart: the saved event time
        now = tick_now(msg.partition, made)
        if now is None:  # no event time known on this partition yet: nothing can be judged
            counts["ticks_waiting"] += 1
            return []
        before = {d: engine.export_state(d) for d in ids}
        out += engine.check(now, ids)
        changed = []
        for device_id in ids:
            unsaved = device_id not in batch and state.get(device_id) is None
            if unsaved or engine.export_state(device_id) != before[device_id]:
                batch[device_id] = {**load(device_id, batch), "tick_offset": msg.offset}
                changed.append(device_id)
        return changed

    def put(table: Any, partition: int, key: str, value: Any) -> None:
        # Written after the batch, outside the stream's iteration: name the changelog partition (the
        # readings partition the key lives on) as ``table[key] = value`` inside an event would.
        table.send_changelog(partition, key, value)
        table.data[key] = value

    @app.agent(source, name=f"{options.app_id}.detect")
    async def detect(stream: faust.StreamT[Any]) -> None:
        manual = stream.noack()  # type: ignore[attr-defined]  # a faust.Stream; StreamT lacks noack
        async for events in manual.noack_take(BATCH_MAX, within=BATCH_WITHIN_S):
            # 1. the whole batch in memory, with no await: nothing else touches the engine meanwhile
            batch: dict[str, dict[str, Any]] = {}  # device -> its record as of this batch's end
            home: dict[str, int] = {}  # device -> the partition its state lives on
            rain_changed: dict[str, int] = {}  # grid cell -> partition of its newest gauge reading
            detections: list[Detection] = []
            for event in events:
                msg = event.message
                if msg.topic == ticks_name:
                    touched = on_tick(msg, event.value, batch, detections)
                else:
                    one = on_reading(msg, event.value, batch, detections, rain_changed)
                    touched = [] if one is None else [one]
                for device_id in touched:
                    home[device_id] = msg.partition
            # snapshot before any await: the records are exactly the state the detections came from
            records = {d: {**batch[d], "engine": engine.export_state(d)} for d in home}
            shared_rain = {cell: engine.rain_for(cell) for cell in rain_changed}
            # 2. detections sent and delivered before the state that records them: a crash in between
            #    replays the batch from the saved offsets, which gives the same detection ids again
            await emit(detections)
            await dead_letters()
            # 3. each touched device's state once per batch, with its last offset; then the acks
            for device_id, record in records.items():
                put(state, home[device_id], device_id, record)
            for cell, rain_now in shared_rain.items():
                put(rain, rain_changed[cell], cell, rain_now)
            for event in events:
                await manual.ack(event)

    def caught_up(partition: int) -> bool:
        """Whether the partition has read all its readings there are (as far as the consumer knows)."""
        tp = TP(readings_name, partition)
        high = app.consumer.highwater(tp)
        if high is None:  # not fetched yet: there may be a backlog
            return False
        last = applied_offset.get(partition)
        if last is None:  # nothing read since the partition came: where the consumer was put (committed)
            position = getattr(app.consumer, "_read_offset", {}).get(tp)
            last = -1 if position is None else position - 1
        return last + 1 >= high

    def tick_now(partition: int, made: float) -> float | None:
        """The event time a tick made at wall time ``made`` brings to a partition, decided when it is
        applied: a partition still reading a backlog gets its newest event time; one that has read all
        there is moves on at wall speed (and follows the worker's newest event time less ``lateness_s``,
        when its devices went quiet while others' went on), so a silence is still noticed."""
        return clocks.now(partition, made, caught_up(partition), lag=engine.config.lateness_s)

    @app.timer(TICK_S)
    async def tick() -> None:
        # The tick says only when it was made; the partition's event time gives it its meaning when it is
        # applied (a tick queued behind hours of backlog must not jump the event time).
        body = json.dumps({"wall": time.time()}).encode()
        for partition in owned():
            await ticks.send(value=body, partition=partition)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types every receiver (sender, *args)
    async def _revoked(app: faust.App, revoked: set[Any], **kwargs: object) -> None:
        # another worker may take these devices: reload them from the table when they come back
        engine.forget()
        for tp in revoked:
            if tp.topic == readings_name:
                clocks.forget(tp.partition)
