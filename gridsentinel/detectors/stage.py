"""Detection stage: ``gs.readings`` -> ``DetectionEngine`` -> ``gs.detections`` (key: dedup region).

- One agent consumes ``gs.readings`` plus this app's tick topic (``<app id>-detect-ticks``, co-partitioned
  with the readings). Readings are keyed by device id, so a device's state lives on one partition: the
  ``detect-state`` table (changelog-backed; memory store, recovered from the changelog) holds each device's
  engine state and the offset of the last reading applied to it.
- A timer on every worker sends a tick to each readings partition it owns; the agent answers it with
  ``engine.check(now)`` for that partition's devices (dropout, held tilt, idle flush). Ticks go through a
  topic because a table can only be written from a stream event (its changelog partition is the event's).
- Rain is shared across partitions in the ``detect-rain`` global table (grid cell -> recent rain).
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

from gridsentinel.alerts.grid import dedup_region, is_grid_code
from gridsentinel.detectors.config import load_file
from gridsentinel.detectors.engine import RAIN_KIND, DetectionEngine, EventClock
from gridsentinel.ingest.records import DeadLetter, Detection, Reading, RecordError
from gridsentinel.ingest.registry import Registry

if TYPE_CHECKING:
    from gridsentinel.ingest.app import StageContext

log = logging.getLogger(__name__)

TICK_S = 2.0


def detection_key(d: Detection) -> bytes:
    """``gs.detections`` key: the dedup region (street) of the detection's grid cell."""
    return (dedup_region(d.grid_code) if is_grid_code(d.grid_code) else d.grid_code or "unknown").encode()


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
    counts = {"detections_sent": 0, "replayed_skipped": 0, "bad_records": 0, "ticks": 0}

    def owned() -> list[int]:
        return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == readings_name)

    ctx.stats["detect"] = lambda: {**engine.counts, **counts, "partitions": owned()}

    def devices_on(partition: int) -> list[str]:
        # librdkafka's default (consistent_random) partitioner: crc32(key) % partitions
        return sorted(d for d in engine.registry.devices
                      if partition_of.get(d, zlib.crc32(d.encode()) % partitions) == partition)

    def load(device_id: str) -> dict[str, Any]:
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

    async def dead_letters(partition_key: bytes | None) -> None:
        for rej in engine.take_rejected():
            await ctx.dead_letter(DeadLetter(
                reason=rej.reason, detail=rej.detail, origin=readings_name, received_at=time.time(),
                payload_b64=base64.b64encode(rej.reading.to_json()).decode(), device_id=rej.reading.device_id,
            ), key=partition_key)

    async def on_reading(event: faust.EventT) -> None:
        msg = event.message
        try:
            reading = Reading.from_json(event.value)
        except (RecordError, TypeError):
            counts["bad_records"] += 1  # the ingest stage dead-letters malformed records
            return
        device_id = reading.device_id
        partition_of[device_id] = msg.partition
        saved = load(device_id)
        if saved.get("offset", -1) >= msg.offset:
            counts["replayed_skipped"] += 1  # already in the saved state (a replay after a crash)
            return
        device = engine.registry.get(device_id)
        if device is not None and device.kind != RAIN_KIND:
            for cell in engine.rain_cells(device_id):
                engine.note_rain(cell, rain.get(cell) or [])
        wall = time.time()
        clock.observe(reading.observed_at, wall)
        detections = engine.process(reading, now=wall)
        if device is not None and device.kind == RAIN_KIND and device.grid_code:
            rain[device.grid_code] = engine.rain_for(device.grid_code)
        await emit(detections)
        await dead_letters(msg.key)
        state[device_id] = {**saved, "engine": engine.export_state(device_id), "offset": msg.offset}

    async def on_tick(event: faust.EventT) -> None:
        msg = event.message
        now = float(json.loads(event.value)["now"])
        counts["ticks"] += 1
        ids = []
        for device_id in devices_on(msg.partition):
            if (load(device_id).get("tick_offset", -1)) < msg.offset:
                ids.append(device_id)
        before = {d: engine.export_state(d) for d in ids}
        await emit(engine.check(now, ids))
        for device_id in ids:
            after = engine.export_state(device_id)
            saved = state.get(device_id)
            if after != before[device_id] or saved is None:
                state[device_id] = {**(saved or {}), "engine": after, "tick_offset": msg.offset}

    @app.agent(source, name=f"{options.app_id}.detect")
    async def detect(stream: faust.StreamT) -> None:
        async for event in stream.events():
            if event.message.topic == ticks_name:
                await on_tick(event)
            else:
                await on_reading(event)

    @app.timer(TICK_S)
    async def tick() -> None:
        # Timers run on event time (a replay or simulator runs behind the wall clock): see EventClock.
        body = json.dumps({"now": clock.now(time.time())}).encode()
        for partition in owned():
            await ticks.send(value=body, partition=partition)

    @app.on_partitions_revoked.connect
    async def _revoked(app: faust.App, revoked: set[Any], **kwargs: object) -> None:
        # another worker may take these devices: reload them from the table when they come back
        engine.forget()
