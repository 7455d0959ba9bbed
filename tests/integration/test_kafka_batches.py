"""KafkaBatches (the alert delivery's consumer) against real Kafka: only acked batches are committed, so
a consumer closed with batches taken but not acked hands them to the group's next consumer; and a new group
starts where the Faust group that read the topic before had committed, not at the topic's start."""

from __future__ import annotations

import asyncio

import pytest
from confluent_kafka import Consumer, TopicPartition

from gridsentinel.streams.batches import KafkaBatches, Record

from .conftest import Namespace

pytestmark = pytest.mark.integration
N = 400


def batches(ns: Namespace, topic: str, group: str, legacy: tuple[str, ...] = ()) -> KafkaBatches:
    return KafkaBatches(bootstrap=ns.settings.kafka_bootstrap, group_id=group, topic=topic,
                        client_id=f"{group}-test", max_batch=50, legacy_groups=legacy, idle_s=0.2)


async def take(source: KafkaBatches, at_least: int, timeout_s: float = 60.0) -> list[list[Record]]:
    """Batches until ``at_least`` records were taken."""
    taken: list[list[Record]] = []

    async def run() -> None:
        async for records in source.batches():
            taken.append(records)
            if sum(map(len, taken)) >= at_least:
                return

    await asyncio.wait_for(run(), timeout_s)
    return taken


def commit(ns: Namespace, group: str, topic: str, offsets: dict[int, int]) -> None:
    """What a Faust group would have left: ``offsets`` committed for ``group``."""
    c = Consumer({"bootstrap.servers": ns.settings.kafka_bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        c.commit(offsets=[TopicPartition(topic, p, o) for p, o in offsets.items()], asynchronous=False)
    finally:
        c.close()


def produce(ns: Namespace, topic: str, n: int, start: int = 0) -> None:
    producer = ns.producer()
    for i in range(start, start + n):
        producer.produce(topic, key=f"k{i % 16}".encode(), value=f"{i}".encode(), headers=[("n", b"1")])
    assert producer.flush(30) == 0


def test_a_short_batch_soon_after_the_last_takes_what_comes_within_the_interval(ns: Namespace) -> None:
    topic, group = f"{ns.prefix}gs.detections", f"{ns.app_id}-cases"
    ns.create_topics(topic)

    async def scenario() -> list[list[int]]:
        source = KafkaBatches(bootstrap=ns.settings.kafka_bootstrap, group_id=group, topic=topic,
                              client_id=f"{group}-test", max_batch=50, idle_s=0.2, min_interval_s=2.0)
        taken: list[list[int]] = []

        async def trickle() -> None:
            # two records, one after the other, while the next take already waits, well within the 2 s
            # after the first batch: without the interval that take hands over the first of them alone
            for i in (1, 2):
                await asyncio.sleep(0.3)
                await asyncio.to_thread(produce, ns, topic, 1, i)

        produce(ns, topic, 1)  # a record after a quiet spell: a batch of its own
        later: asyncio.Task[None] | None = None
        async for records in source.batches():
            taken.append([int(r.value or b"") for r in records])
            if later is None:
                later = asyncio.create_task(trickle())
            if sum(map(len, taken)) >= 3:
                break
        assert later is not None
        await later
        await source.close()
        return taken

    assert asyncio.run(scenario()) == [[0], [1, 2]]


def test_only_acked_batches_are_committed_and_the_rest_go_to_the_next_consumer(ns: Namespace) -> None:
    topic, group = f"{ns.prefix}gs.case-events", f"{ns.app_id}-alert-delivery"
    ns.create_topics(topic)
    produce(ns, topic, N)

    async def scenario() -> tuple[list[int], list[int], int]:
        first = batches(ns, topic, group)
        taken = await take(first, N)
        # the first half of the batches done, in order; the rest taken but never done (a crash, a revoke)
        half = len(taken) // 2
        for records in taken[:half]:
            first.ack(records)
        await first.close()
        done = [int(r.value or b"") for records in taken[:half] for r in records]
        assert all(r.headers == {"n": b"1"} for records in taken for r in records)
        second = batches(ns, topic, group)
        again = await take(second, N - len(done))
        for records in again:
            second.ack(records)
        await second.close()
        return done, [int(r.value or b"") for records in again for r in records], max(map(len, taken))

    done, again, largest = asyncio.run(scenario())
    assert sorted(done + again) == list(range(N))  # every record done once: none lost, none done twice
    assert 1 < largest <= 50  # what waited came in batches, none over max_batch


def test_a_new_group_starts_where_the_furthest_legacy_group_got_to(ns: Namespace) -> None:
    topic, group, legacy = f"{ns.prefix}gs.case-events", f"{ns.app_id}-alert-delivery", f"{ns.app_id}-faust"
    ns.create_topics(topic)
    produce(ns, topic, 40)  # 10 per partition on average; the legacy group had delivered them all
    c = Consumer({"bootstrap.servers": ns.settings.kafka_bootstrap, "group.id": "x"})
    try:
        ends = {p: c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(4)}
    finally:
        c.close()
    commit(ns, legacy, topic, ends)

    async def scenario() -> list[int]:
        source = batches(ns, topic, group, legacy=(f"{ns.app_id}-never-read-it", legacy))
        loop = asyncio.get_running_loop()
        first = asyncio.ensure_future(take(source, 1))
        await loop.run_in_executor(None, produce, ns, topic, 1, 1000)  # one new record
        taken = await first
        for records in taken:
            source.ack(records)
        await source.close()
        return [int(r.value or b"") for records in taken for r in records]

    assert asyncio.run(scenario()) == [1000]  # not the 40 the legacy group had done


CRASHING_WORKER = """
import asyncio, sys
from gridsentinel.settings import Settings
from gridsentinel.streams.batches import loop_service
from gridsentinel.streams.context import WorkerOptions
from gridsentinel.worker.app import create_app


class Failing:
    def register(self, app, ctx):
        async def body():
            await asyncio.sleep(1)
            raise RuntimeError("the loop failed")

        async def finish():
            print("finish ran", flush=True)

        app.service(loop_service("FailingService", body, finish))


app = create_app(Settings(), WorkerOptions(app_id=sys.argv[1]), [Failing()])
worker = app.Worker(loglevel="warning", quiet=True, redirect_stdouts=False)
worker.spinner = None
worker.execute_from_commandline()
"""


def test_a_failing_loop_service_stops_the_worker_with_an_error(ns: Namespace) -> None:
    """What the cases and alerts stages rely on: their loop failing (Kafka refusing a produce, a fatal
    consumer error) ends the worker process non-zero, so its supervisor restarts it, after ``finish``."""
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", CRASHING_WORKER, f"{ns.app_id}-crash"], env=ns.env(),
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "the loop failed" in done.stderr + done.stdout and "finish ran" in done.stdout
