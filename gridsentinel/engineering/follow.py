"""Follow the compacted ``gs.config`` topic from its beginning, in every worker process.

Each follower joins its own consumer group (a fresh id), so every worker sees every config message —
a shared group would hand the message to one worker only. Reading from the beginning replays the
compacted log: a worker started later switches to the current config before its first reading.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

from gridsentinel.core.topics import Topics
from gridsentinel.settings import Settings

log = logging.getLogger(__name__)
Handler = Callable[[str, dict[str, Any]], Awaitable[None] | None]


async def follow_config(settings: Settings, handler: Handler, *, stop: asyncio.Event | None = None,
                        ready: asyncio.Event | None = None) -> None:
    """Call ``handler(key, value)`` for every message on ``gs.config`` until cancelled or ``stop`` is set.

    Undecodable messages are logged and skipped; an exception from ``handler`` is logged with the
    message's offset and does not stop the follower (the next config still applies).
    """
    from aiokafka import AIOKafkaConsumer

    consumer = AIOKafkaConsumer(
        Topics(settings.topic_prefix).config, bootstrap_servers=settings.kafka_bootstrap,
        group_id=f"gs-config-{uuid.uuid4().hex[:12]}", auto_offset_reset="earliest",
        enable_auto_commit=False)
    await consumer.start()
    try:
        if ready is not None:
            ready.set()
        while stop is None or not stop.is_set():
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                for record in records:
                    key = (record.key or b"").decode(errors="replace")
                    try:
                        value = json.loads(record.value or b"null")
                    except ValueError:
                        log.error("gs.config offset %s: value is not JSON; skipped", record.offset)
                        continue
                    if not isinstance(value, dict):
                        log.error("gs.config offset %s: value is not an object; skipped", record.offset)
                        continue
                    try:
                        result = handler(key, value)
                        if asyncio.iscoroutine(result):
                            await result
                    except Exception:
                        log.exception("gs.config offset %s (key %s): handler failed", record.offset, key)
    finally:
        await consumer.stop()
