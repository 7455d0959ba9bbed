"""What the gateway makes of Kafka's verdict on a record (``Ledger._delivered``), without a broker: the
producer is made but never used, and nothing is acked (no MQTT connection)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from confluent_kafka import KafkaError

from gridsentinel.core.devices import Registry
from gridsentinel.gateway.service import Gateway
from gridsentinel.settings import Settings


@pytest.fixture
def gateway() -> Iterator[Gateway]:
    gw = Gateway(Settings(kafka_bootstrap="127.0.0.1:9", mqtt_port=9), Registry([]), client_id="unit-test")
    yield gw
    gw.producer.purge()


def state(gw: Gateway) -> tuple[int, int, None, tuple[str, int], str, int, None, float]:
    return (7, 1, None, ("d1", 41), "gs/v1/d1/telemetry", gw.ledger.generation, None, 0.0)


def test_records_purged_with_a_replaced_producer_are_not_counted_as_refused_by_kafka(gateway: Gateway) -> None:
    # recover() purges the old producer's ~1000 records: each comes back as _PURGE_QUEUE / _PURGE_INFLIGHT.
    # They are resent with the resumed session; they are not Kafka's refusals (the stats' kafka_refused).
    gateway.acceptor.seqs.seen("d1", 41)
    for code in (KafkaError._PURGE_QUEUE, KafkaError._PURGE_INFLIGHT):
        gateway.ledger._delivered(state(gateway), KafkaError(code), None)
    assert gateway.stats.refused == 0 and gateway.stats.acked == 0
    assert not gateway.ledger.resume.is_set()
    assert not gateway.acceptor.seqs.seen("d1", 41), "the resent message must not be taken for a duplicate"


def test_a_record_kafka_failed_is_counted_and_its_message_resent_by_resuming_the_session(gateway: Gateway) -> None:
    gateway.ledger._delivered(state(gateway), KafkaError(KafkaError.NOT_ENOUGH_REPLICAS), None)
    assert gateway.stats.refused == 1 and gateway.stats.acked == 0
    assert gateway.ledger.resume.is_set()
