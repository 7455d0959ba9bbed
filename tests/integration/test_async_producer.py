"""AsyncProducer (the cases stage's producer of case events) against real Kafka: every future completes
once its record is on Kafka (the reports of many records reach the loop together), each record is there
once, and one key's records are in the order produced."""

from __future__ import annotations

import asyncio

import pytest

from gridsentinel.streams.batches import KafkaBatches
from gridsentinel.streams.producer import AsyncProducer

from .conftest import Namespace

pytestmark = pytest.mark.integration
N = 2000


def test_every_record_is_acknowledged_once_on_kafka_and_read_back_in_order(ns: Namespace) -> None:
    topic = f"{ns.prefix}gs.case-events"
    ns.create_topics(topic)

    async def scenario() -> list[tuple[bytes | None, int]]:
        producer = AsyncProducer(ns.settings.kafka_bootstrap, f"{ns.app_id}-test")
        futures = [producer.produce(topic, f"case-{i % 7}".encode(), str(i).encode(), [("notify", b"1")])
                   for i in range(N)]
        await asyncio.wait_for(asyncio.gather(*futures), 60)
        tail = producer.produce(topic, b"case-0", str(N).encode())  # produced just before close()
        assert await producer.close() == 0
        await asyncio.wait_for(tail, 5)
        source = KafkaBatches(bootstrap=ns.settings.kafka_bootstrap, group_id=f"{ns.app_id}-read", topic=topic,
                              client_id=f"{ns.app_id}-read")
        read: list[tuple[bytes | None, int]] = []
        async for records in source.batches():
            read += [(r.key, int(r.value or b"")) for r in records]
            if len(read) >= N + 1:
                break
        await source.close()
        return read

    read = asyncio.run(scenario())
    assert sorted(v for _, v in read) == list(range(N + 1))  # each record once
    for case in {k for k, _ in read}:  # one key's records in the order produced
        values = [v for k, v in read if k == case]
        assert values == sorted(values)
