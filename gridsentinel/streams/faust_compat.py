"""Every Faust / aiokafka workaround of the worker, in one place: what an upgrade must re-check.

faust-streaming 0.15 and aiokafka 0.14 (pinned in constraints.txt) lack a few settings and have a few
failure modes the worker cannot live with; the fixes below override private members of both, and the
stages reach three more internals through the small functions at the end instead of touching them:

- ``KafkaTransport`` (+ ``_Consumer``, ``_ConsumerThread``): a settable fetch long-poll, commit errors that
  do not stop the worker, deliveries without the per-message race, no records lost around the seek after
  a table recovery (each documented on its method).
- ``table_put``: a table write outside the stream's iteration (``Table.send_changelog`` + ``Table.data``).
- ``read_position``: where the consumer was put on a partition (``Consumer._read_offset``).

The cases and alerts stages no longer read through Faust (``streams.batches``, session 13).

:func:`check_versions` runs when the app is built and stops the worker on a version it was not tested with.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from importlib import metadata
from typing import Any

import aiokafka
import aiokafka.errors
import faust
from aiokafka.structs import OffsetAndMetadata
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP
from mode.services import WaitResults

from gridsentinel.errors import GridSentinelError

log = logging.getLogger(__name__)

# The versions these workarounds were written and tested against (constraints.txt pins the same).
TESTED_VERSIONS: dict[str, str] = {
    "faust-streaming": "0.15.3",
    "aiokafka": "0.14.0",
    "mode-streaming": "0.7.1",
}
# What to re-read in the new versions' sources (and the tests that show it) before raising a pin.
RECHECK = """\
  - faust Consumer._drain_messages still calls wait_first(callback(message), suspend_flow.wait()), and
    Consumer.perform_seek / flow_control / producer.buffer / topic queues keep their names (_Consumer);
  - faust AIOKafkaConsumerThread._create_worker_consumer, _commit, tp_last_committed_at and
    ensure_aiokafka_TP, and aiokafka's AIOKafkaConsumer._fetch_max_wait_ms (_ConsumerThread);
  - whether faust now passes fetch_max_wait_ms through, or tolerates commit errors itself (then drop the
    override), and whether faust-streaming/faust#596 (records lost after a recovery seek) is fixed;
  - Table.send_changelog / Table.data (table_put), Consumer._read_offset (read_position);
  - then run tests/integration/test_reliability.py (Kafka restarts), test_detection_stage.py,
    test_frames_stage.py (kill -9) and `gridsentinel bench ingest` / `bench detect` (throughput)."""


class UntestedVersion(GridSentinelError):
    """The installed Faust / aiokafka is not a version the workarounds were tested with."""


def check_versions(installed: Mapping[str, str | None] | None = None) -> None:
    """Raise :class:`UntestedVersion` naming what differs and what to re-check before raising the pin.

    >>> check_versions(TESTED_VERSIONS)
    >>> try:
    ...     check_versions({**TESTED_VERSIONS, "aiokafka": "0.15.0"})
    ... except UntestedVersion as exc:
    ...     print(str(exc).splitlines()[0].split("; ")[-1])
    this environment has aiokafka 0.15.0 (tested: 0.14.0).
    """
    if installed is None:
        installed = {name: _installed(name) for name in TESTED_VERSIONS}
    wrong = [f"{name} {installed.get(name) or 'not installed'} (tested: {tested})"
             for name, tested in TESTED_VERSIONS.items() if installed.get(name) != tested]
    if wrong:
        raise UntestedVersion(
            "the worker's Faust workarounds (gridsentinel/streams/faust_compat.py) are tested only with "
            + ", ".join(f"{n} {v}" for n, v in TESTED_VERSIONS.items())
            + f", as constraints.txt pins them; this environment has {'; '.join(wrong)}.\n"
            "Install the pinned versions (`pip install -c constraints.txt -e .`), or, to raise a pin, "
            "re-check first:\n" + RECHECK)


def _installed(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


# -- the transport ----------------------------------------------------------------------------------

class _ConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    def _create_worker_consumer(self, transport: Any) -> aiokafka.AIOKafkaConsumer:
        consumer = super()._create_worker_consumer(transport)
        # aiokafka hands this to its Fetcher in start(), so setting it before start is enough.
        consumer._fetch_max_wait_ms = transport.fetch_max_wait_ms
        return consumer

    async def _commit(self, offsets: Mapping[Any, int]) -> bool:
        """Commit, and treat a Kafka error as "not committed yet" instead of crashing the worker.

        Faust 0.15 calls ``crash()`` on any commit error but "already rebalanced"; the consumer has no
        supervisor, so the crash stops the whole worker. Around a broker restart the group rejoins and
        aiokafka raises ``IllegalStateError("No partitions assigned")`` (or a non-retriable
        ``KafkaError``) for a commit made meanwhile. An offset that is not committed is only read again
        (points are idempotent), and the next commit carries it, so the worker keeps running.
        """
        consumer = self._ensure_consumer()
        assigned = self.assignment()
        committable = {tp: offset for tp, offset in offsets.items() if tp in assigned}
        try:
            self.tp_last_committed_at.update({tp: time.monotonic() for tp in committable})
            await consumer.commit({faust_aiokafka.ensure_aiokafka_TP(tp): OffsetAndMetadata(offset, "")
                                   for tp, offset in committable.items()})
        except (aiokafka.errors.KafkaError, aiokafka.errors.IllegalStateError) as exc:
            log.warning("Kafka commit not done (%r); the offsets stay uncommitted until the next commit",
                        exc)
            return False
        return True


class _Consumer(faust_aiokafka.Consumer):
    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return _ConsumerThread(self, loop=self.loop, beacon=self.beacon)

    async def perform_seek(self) -> None:
        """Stop the flow, then seek the partitions to their committed offsets.

        After a table recovery, Faust 0.15 resumes the stream partitions while the flow is still on (it was
        turned on to read the changelogs), then seeks, then clears the stream buffers
        (``flow_control.resume()``). Records fetched in between are queued for the agents and move the read
        offset past themselves; when the fetcher is still handing out that batch after the seek, the read
        offset ends past the refetched records, the clear drops the queued ones, and they never come back:
        the worker sits idle on its backlog until the next rebalance, its commits stuck behind the gap
        (faust-streaming/faust#596). With the flow stopped first, the fetcher stops at the next record, the
        seek's read offsets are the last word, and whatever the clear drops is fetched again (at least once;
        the recovery turns the flow back on after the clear).
        """
        self.stop_flow()
        await super().perform_seek()

    async def wait_first(self, *coros: Any, timeout: Any = None) -> WaitResults:
        """Deliver a fetched message without four asyncio tasks when it cannot block.

        Faust's fetch loop (``Consumer._drain_messages``, the only caller) hands every message to the
        streams with ``wait_first(callback(message), suspend_flow.wait())``: a race, so that a rebalance
        can interrupt a delivery stuck on a full stream buffer. The race makes four tasks per message,
        about a third of a worker's CPU at full load. The delivery can block only while flow control is
        suspended (a rebalance), on a full buffer, or on a full producer buffer; when the flow is active
        and no stream buffer is full the callback is awaited directly, and otherwise the race runs as
        before. About 1.5x the readings/s per ingest worker (docs/ingest.md).
        """
        if (len(coros) == 2 and timeout is None and not self.suspend_flow.is_set()
                and self.app.flow_control.is_active()
                and self.app.producer.buffer.size <= self.app.producer.buffer.max_messages
                and not any(chan.queue.full() for chan in self.app.topics)):
            delivery, suspended = coros
            suspended.close()  # the un-awaited suspend_flow.wait()
            return WaitResults([delivery], [await delivery], False)
        return await super().wait_first(*coros, timeout=timeout)


class KafkaTransport(faust_aiokafka.Transport):
    """Faust's aiokafka transport with a settable fetch long-poll, commit errors that do not stop the worker
    (``_ConsumerThread._commit``), deliveries without the per-message race when nothing can block
    (``_Consumer.wait_first``) and no records lost around the seek after a recovery (``_Consumer.perform_seek``).

    Faust 0.15 passes ``fetch_max_wait_ms=1500`` to aiokafka with no setting to change it. aiokafka
    sends one fetch per broker at a time, and a partition whose records were just consumed is not
    fetched again until the fetch in flight for the other partitions returns: with one broker and an
    idle partition in that fetch, a busy partition waits up to the whole long-poll (1.5 s) each time.
    """

    Consumer = _Consumer

    def __init__(self, url: Any, app: faust.App, *, fetch_max_wait_ms: int) -> None:
        super().__init__(url, app)
        self.fetch_max_wait_ms = fetch_max_wait_ms



def install_transport(app: faust.App, *, fetch_max_wait_ms: int) -> None:
    """Give ``app`` the :class:`KafkaTransport` (before anything has started it)."""
    app.transport = KafkaTransport(app.conf.broker_consumer, app, fetch_max_wait_ms=fetch_max_wait_ms)


# -- internals the stages use -----------------------------------------------------------------------

def table_put(table: Any, partition: int, key: str, value: Any) -> None:
    """``table[key] = value`` outside the stream's iteration: the changelog partition is named (the source
    partition the key lives on) as ``table[key] = value`` inside an event would take it from the event."""
    table.send_changelog(partition, key, value)
    table.data[key] = value


def read_position(app: faust.App, topic: str, partition: int) -> int | None:
    """The offset the consumer reads next on the partition (where it was put: the committed offset), if
    known. Faust keeps it in ``Consumer._read_offset`` and offers no public accessor."""
    position: int | None = getattr(app.consumer, "_read_offset", {}).get(TP(topic, partition))
    return position


def consumer_lag(app: faust.App) -> dict[tuple[str, int], int]:
    """Records not yet committed on each partition assigned to this worker: the high watermark less the
    committed offset (the consumer group's lag, as kafka-consumer-groups shows it). A partition whose high
    watermark is not fetched yet is left out. Faust keeps the committed offsets in
    ``Consumer._committed_offset`` and offers no public accessor."""
    consumer = app.consumer
    committed: dict[TP, int | None] = dict(getattr(consumer, "_committed_offset", {}))
    lag: dict[tuple[str, int], int] = {}
    for tp in list(consumer.assignment()):
        try:
            high = consumer.highwater(tp)
        except Exception:  # not fetched yet (aiokafka raises on an unknown partition)
            continue
        if high is None:
            continue
        done = committed.get(tp)
        if done is None:
            done = read_position(app, tp.topic, tp.partition) or 0
        lag[(tp.topic, tp.partition)] = max(0, int(high) - int(done))
    return lag
