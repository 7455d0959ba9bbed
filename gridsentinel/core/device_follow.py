"""Following a Kafka topic from its beginning in a daemon thread; ``RegistryFollower`` follows ``gs.devices``.

Every gateway, worker and API process keeps its own in-memory ``Registry`` (core/devices.py): seeded from
config/devices.yaml, then overridden by each ``DeviceChange`` of the compacted ``gs.devices`` feed
(core/device_feed.py). A follower reads the whole topic at each start (all partitions assigned, no
consumer group offsets: compaction keeps it one message per device), so a process that starts later ends
on the same registry, and goes on reading, so a change reaches it within a poll (a fraction of a second).

``caught_up`` is set once the follower has read up to the end offsets it saw when it started: a process
waits for it at start-up (``wait_caught_up``, with a timeout and a log line either way) so it does not
reject a device registered minutes ago just because it has not read that far yet.

A message that is not a valid change is counted (``stats["bad"]``) and logged, never raised: a bad
message on the feed must not stop the process that follows it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any, Self

from gridsentinel.core.device_feed import DeviceChange
from gridsentinel.core.devices import Device, Registry

log = logging.getLogger(__name__)

# Handles one message (key, value); raises ValueError (or a subclass) for one it cannot take.
Handler = Callable[[bytes | None, bytes | None], None]


class TopicFollower:
    """Reads ``topic`` from the beginning in a daemon thread and hands each message to ``handle``.

    ``ensure``: create the topic first (with this topic config, e.g. ``{"cleanup.policy": "compact"}``)
    when it does not exist, so a follower that starts before any producer does not wait for it.
    """

    def __init__(self, bootstrap: str, topic: str, handle: Handler, *, name: str = "",
                 ensure: dict[str, str] | None = None, partitions: int = 4, poll_s: float = 0.2) -> None:
        self.bootstrap = bootstrap
        self.topic = topic
        self.handle = handle
        self.name = name or topic
        self.ensure = ensure
        self.partitions = partitions
        self.poll_s = poll_s
        self.caught_up = threading.Event()
        self.stats: dict[str, int] = {"read": 0, "bad": 0}
        self.last_error = ""
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.started_at = 0.0
        self.caught_up_after_s: float | None = None  # how long reading up to the start's end offsets took
        self._read_to: dict[int, int] = {}  # partition -> the next offset to read (the thread advances it)
        self._progress = threading.Condition()
        self._probe: Any = None  # a consumer of the caller's thread for ``sync``'s end offsets

    def start(self) -> Self:
        self.started_at = time.monotonic()
        self._thread = threading.Thread(target=self._run, name=f"follow-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait_caught_up(self, timeout: float) -> bool:
        """Wait until the follower has read what the topic held when it started; logs either way."""
        if self.caught_up.wait(timeout):
            log.info("%s: caught up with %s (%d messages read in %.1f s, %d bad)", self.name, self.topic,
                     self.stats["read"], self.caught_up_after_s or 0.0, self.stats["bad"])
            return True
        log.warning("%s: not caught up with %s after %.0f s (%d messages read so far%s); going on, and "
                    "following it in the background", self.name, self.topic, timeout, self.stats["read"],
                    f"; {self.last_error}" if self.last_error else "")
        return False

    def sync(self, timeout: float) -> bool:
        """Wait until the follower has read everything the topic holds *now* (its end offsets at this call).

        A gateway calls it before it rejects a device it does not know: a registration returns only once
        its change is in Kafka, so a device that connects with its new credentials right away is known after
        a sync, never dead-lettered as unknown because this process had not read that far. False when the
        end offsets cannot be read or the follower does not get there within ``timeout``."""
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        deadline = time.monotonic() + timeout
        try:
            if self._probe is None:
                self._probe = Consumer({"bootstrap.servers": self.bootstrap, "enable.auto.commit": False,
                                        "group.id": f"gs-probe-{uuid.uuid4().hex[:12]}"})
            md = self._probe.list_topics(self.topic, timeout=timeout)
            found = md.topics.get(self.topic)
            if found is None or found.error is not None:
                return False
            ends = {}
            for p in found.partitions:
                low, high = self._probe.get_watermark_offsets(TopicPartition(self.topic, p),
                                                              timeout=max(0.1, deadline - time.monotonic()))
                if high > low:
                    ends[p] = high
        except KafkaException as exc:
            self.last_error = f"sync: {exc}"
            return False
        with self._progress:
            return self._progress.wait_for(
                lambda: all(self._read_to.get(p, 0) >= end for p, end in ends.items()),
                max(0.0, deadline - time.monotonic()))

    def close_probe(self) -> None:
        if self._probe is not None:
            self._probe.close()
            self._probe = None

    # -- the thread ----------------------------------------------------------------------------------
    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._follow()
                return
            except Exception as exc:  # Kafka unreachable, topic missing: log, wait, start over
                self.last_error = f"{type(exc).__name__}: {exc}"
                log.warning("%s: following %s failed (%s); retrying in 2 s", self.name, self.topic, self.last_error)
                self._stop.wait(2.0)

    def _follow(self) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        if self.ensure is not None:
            from gridsentinel.core.topics import ensure_topics

            ensure_topics(self.bootstrap, [self.topic], self.partitions, self.ensure)
        consumer = Consumer({
            "bootstrap.servers": self.bootstrap,
            "group.id": f"gs-follow-{uuid.uuid4().hex[:12]}",  # never joins: partitions are assigned
            "enable.auto.commit": False,
            "enable.partition.eof": False,
            "auto.offset.reset": "earliest",
        })
        try:
            md = consumer.list_topics(self.topic, timeout=10)
            found = md.topics.get(self.topic)
            if found is None or found.error is not None or not found.partitions:
                raise RuntimeError(f"topic {self.topic} not found ({found.error if found else 'no metadata'})")
            numbers = sorted(found.partitions)
            ends: dict[int, int] = {}
            for p in numbers:
                low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)
                if high > low:
                    ends[p] = high
            consumer.assign([TopicPartition(self.topic, p, OFFSET_BEGINNING) for p in numbers])
            self._check_caught_up(ends)
            while not self._stop.is_set():
                for msg in consumer.consume(1000, timeout=self.poll_s):
                    err = msg.error()
                    if err is not None:
                        if err.fatal():
                            raise RuntimeError(str(err))
                        continue
                    self._take(msg.key(), msg.value())
                    p, offset = msg.partition(), msg.offset()
                    if p is not None and offset is not None:
                        self._read_to[p] = offset + 1
                    if p in ends and offset is not None and offset + 1 >= ends[p]:
                        del ends[p]
                with self._progress:
                    self._progress.notify_all()
                self._check_caught_up(ends)
        finally:
            consumer.close()

    def _check_caught_up(self, ends: dict[int, int]) -> None:
        if not ends and not self.caught_up.is_set():
            self.caught_up_after_s = time.monotonic() - self.started_at
            self.caught_up.set()

    def _take(self, key: bytes | None, value: bytes | None) -> None:
        self.stats["read"] += 1
        try:
            self.handle(key, value)
        except ValueError as exc:
            self.stats["bad"] += 1
            if self.stats["bad"] <= 10 or self.stats["bad"] % 1000 == 0:
                log.warning("%s: skipped a bad message on %s (key %r; %d so far): %s", self.name, self.topic,
                            key, self.stats["bad"], exc)


class RegistryFollower(TopicFollower):
    """Applies every ``DeviceChange`` of ``gs.devices`` to ``registry`` (``Registry.apply``).

    ``on_change``: called (in the follower's thread) with each change that was applied.
    ``stats``: read, applied, stale (a revision not newer than the one held), bad.
    """

    def __init__(self, registry: Registry, bootstrap: str, topic: str, *, name: str = "registry",
                 on_change: Callable[[DeviceChange], None] | None = None, **kwargs: Any) -> None:
        kwargs.setdefault("ensure", {"cleanup.policy": "compact"})
        super().__init__(bootstrap, topic, self._apply, name=name, **kwargs)
        self.registry = registry
        self.on_change = on_change
        self.stats.update({"applied": 0, "stale": 0})

    def _apply(self, key: bytes | None, value: bytes | None) -> None:
        change = DeviceChange.decode(key, value)  # DeviceFeedError (a ValueError): counted as bad
        if not self.registry.apply(change):
            self.stats["stale"] += 1
            return
        self.stats["applied"] += 1
        if self.on_change is not None:
            self.on_change(change)


class UnknownResolver:
    """Asked before a process rejects a device its registry does not know: it reads the registry's feed up to
    its end first (``RegistryFollower.sync``, at most ``wait_s``), so a device registered a moment ago is known,
    not dead-lettered. A registration returns only once its change is in Kafka, so a device that starts
    publishing right away is found. Each id is synced for at most once per ``recheck_s``: a device that is
    really unknown and keeps sending costs one end-offset query per ``recheck_s``, nothing more.

    >>> r = UnknownResolver(None)
    >>> r("nobody") is None
    True
    """

    def __init__(self, follower: RegistryFollower | None, *, wait_s: float = 2.0, recheck_s: float = 5.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.follower = follower
        self.wait_s = wait_s
        self.recheck_s = recheck_s
        self.clock = clock
        self.counts = {"synced": 0, "found": 0, "skipped": 0}
        self._checked: dict[str, float] = {}  # device id -> when a sync last failed to find it

    def __call__(self, device_id: str) -> Device | None:
        follower = self.follower
        if follower is None:
            return None
        now = self.clock()
        last = self._checked.get(device_id)
        if last is not None and now - last < self.recheck_s:
            self.counts["skipped"] += 1
            return None
        if len(self._checked) >= 10_000:  # bounded: ids that stay unknown are forgotten in bulk
            self._checked.clear()
        self._checked[device_id] = now
        self.counts["synced"] += 1
        if not follower.sync(self.wait_s):
            return None
        device = follower.registry.get(device_id)
        if device is not None:
            self.counts["found"] += 1
            self._checked.pop(device_id, None)
        return device


def follow_registry(registry: Registry, bootstrap: str, topic: str, *, name: str,
                    wait_s: float = 30.0) -> RegistryFollower:
    """Start following ``topic`` into ``registry`` and wait (at most ``wait_s``) until caught up."""
    follower = RegistryFollower(registry, bootstrap, topic, name=name)
    follower.start()
    if wait_s > 0:
        follower.wait_caught_up(wait_s)
    return follower
