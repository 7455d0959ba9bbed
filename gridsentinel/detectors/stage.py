"""Detection stage: ``gs.readings`` -> ``DetectionEngine`` -> ``gs.detections`` (key: dedup region).

- One agent consumes ``gs.readings`` plus this app's tick topic (``<app id>-detect-ticks``, co-partitioned
  with the readings). Readings are keyed by device id, so a device's state lives on one partition: the
  ``detect-state`` table (changelog-backed; memory store, recovered from the changelog) holds each device's
  engine state and the offset of the last reading applied to it.
- A timer on every worker sends a tick to each readings partition it owns; the agent answers it with
  ``engine.check(now)`` for that partition's devices (dropout, held tilt, idle flush). Ticks go through a
  topic because a table can only be written from a stream event (its changelog partition is the event's).
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

from gridsentinel.detectors.config import load_file
from gridsentinel.detectors.engine import RAIN_KIND, DetectionEngine, EventClock
from gridsentinel.ingest.grid import dedup_region, valid_grid_code
from gridsentinel.ingest.records import DeadLetter, Detection, Reading, RecordError
from gridsentinel.ingest.registry import Registry

if TYPE_CHECKING:
    from gridsentinel.ingest.app import StageContext

log = logging.getLogger(__name__)

TICK_S = 2.0
# Readings are applied in batches and each touched device's state is written once per batch, not once
# per reading. A batch closes at BATCH_MAX events or BATCH_WITHIN_S after it opened; the reorder buffer
# holds readings for ``lateness_s`` of event time anyway, so this wait is small beside it.
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
    partition_of: dict[str, int] = {}  # learnt from the readings; else the producer's default partitioner
    clock = EventClock()
    # per readings partition: a tick judges a partition's devices on that partition's own event time
    # while it is behind (see tick_now), so a lagging partition's devices never look silent
    part_clocks: dict[int, EventClock] = {}
    applied_offset: dict[int, int] = {}
    counts = {"detections_sent": 0, "replayed_skipped": 0, "bad_records": 0, "ticks": 0}

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
        saved = load(device_id, batch)
        if saved.get("offset", -1) >= msg.offset:
            counts["replayed_skipped"] += 1  # already in the saved state (a replay after a crash)
            return None
        device = engine.registry.get(device_id)
        if device is not None and device.kind != RAIN_KIND:
            for cell in engine.rain_cells(device_id):
                engine.note_rain(cell, rain.get(cell) or [])
        wall = time.time()
        clock.observe(reading.observed_at, wall)
        part_clocks.setdefault(msg.partition, EventClock()).observe(reading.observed_at, wall)
        # the arrival on the ticks' time line (the event clock), so the idle flush measures real quiet
        # and not how far a replay runs behind the wall clock
        out += engine.process(reading, now=clock.now(wall))
        if device is not None and device.kind == RAIN_KIND and device.grid_code:
            rain_changed[device.grid_code] = msg.partition
        batch[device_id] = {**saved, "offset": msg.offset}
        return device_id

    def on_tick(msg: Any, value: bytes, batch: dict[str, dict[str, Any]], out: list[Detection]) -> list[str]:
        """Let time pass for the tick's partition; returns the devices whose state changed."""
        now = float(json.loads(value)["now"])
        counts["ticks"] += 1
        ids = [d for d in devices_on(msg.partition) if load(d, batch).get("tick_offset", -1) < msg.offset]
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

    def tick_now(partition: int, wall: float) -> float:
        """The event time a tick brings to a partition. Partitions are read unevenly: one still behind
        on its readings while others ran ahead would see its devices silent on the worker's clock, so
        it gets its own event time; once it has read all there is (caught up, or its devices went
        quiet) it follows the worker's clock, so a silence is still noticed."""
        own = part_clocks.get(partition)
        if own is None:
            return clock.now(wall)
        high = app.consumer.highwater(TP(readings_name, partition))
        caught_up = high is None or applied_offset.get(partition, -1) + 1 >= high
        return clock.now(wall) if caught_up else own.now(wall)

    @app.timer(TICK_S)
    async def tick() -> None:
        # Timers run on event time (a replay or simulator runs behind the wall clock): see EventClock.
        wall = time.time()
        for partition in owned():
            body = json.dumps({"now": tick_now(partition, wall)}).encode()
            await ticks.send(value=body, partition=partition)

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types every receiver (sender, *args)
    async def _revoked(app: faust.App, revoked: set[Any], **kwargs: object) -> None:
        # another worker may take these devices: reload them from the table when they come back
        engine.forget()
