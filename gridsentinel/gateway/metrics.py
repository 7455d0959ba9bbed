"""The gateway's /metrics: its counters read from ``GatewayStats`` at scrape time (the numbers its stats
file writes), the ledger's gauges, and two histograms the ledger feeds (produce -> delivery latency of one
message in ``LATENCY_SAMPLE``, PUBACKs per write). Labels: ``reason`` only (a fixed set of codes)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Histogram
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric

from gridsentinel.observability import LATENCY_BUCKETS, ReadCollector

if TYPE_CHECKING:
    from .service import Gateway

# Dead letters the ledger makes of records Kafka refused for good: accepted messages, so not "rejected".
KAFKA_REFUSED = "kafka_refused"


class GatewayMetrics:
    """Registers the gateway's metrics on ``registry``; ``latency``/``acks`` are handed to the ledger."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.latency = Histogram("gs_gateway_delivery_seconds", "Seconds from producing a message's records to "
                                 "Kafka acknowledging them all (one message in 16 is timed).",
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.acks = Histogram("gs_gateway_puback_batch_size", "PUBACKs sent to the broker per write (messages "
                              "released together by Kafka deliveries).", buckets=(1, 2, 5, 10, 20, 50, 100,
                                                                                  200, 500, 1000),
                              registry=registry)
        self._registry = registry

    def watch(self, gateway: Gateway) -> None:
        """Read ``gateway``'s counters and gauges at each scrape."""
        self._registry.register(ReadCollector(lambda: read_gateway(gateway)))


def read_gateway(gateway: Gateway) -> Iterator[Metric]:
    s, ledger = gateway.stats, gateway.ledger

    def counter(name: str, doc: str, value: float) -> CounterMetricFamily:
        return CounterMetricFamily(name, doc, value=value)

    yield counter("gs_gateway_messages_in", "MQTT messages the gateway took.", s.received)
    yield counter("gs_gateway_messages_accepted", "Messages turned into Kafka records.", s.accepted)
    rejected = CounterMetricFamily("gs_gateway_messages_rejected", "Messages rejected (each one dead-lettered), "
                                   "by reason.", labels=["reason"])
    letters = CounterMetricFamily("gs_gateway_dead_letters", "Dead letters produced, by reason (the rejected "
                                  "messages, and records Kafka refused for good: kafka_refused).", labels=["reason"])
    for reason, n in sorted(s.rejections.copy().items()):
        letters.add_metric([reason], n)
        if reason != KAFKA_REFUSED:
            rejected.add_metric([reason], n)
    yield rejected
    yield letters
    yield counter("gs_gateway_records_produced", "Records handed to the Kafka producer.", s.sent)
    yield counter("gs_gateway_records_delivered", "Records Kafka acknowledged.", s.produced)
    yield counter("gs_gateway_records_failed", "Records Kafka failed (their messages are resent after a "
                  "recovery).", s.refused)
    yield counter("gs_gateway_messages_acked", "Messages acknowledged to the broker (all their records in "
                  "Kafka).", s.acked)
    yield counter("gs_gateway_recoveries", "Recoveries: MQTT session resumed, the producer replaced or not.",
                  s.recoveries)
    yield counter("gs_gateway_producer_replacements", "Kafka producers replaced because they could no longer "
                  "deliver.", s.replacements)
    yield GaugeMetricFamily("gs_gateway_kafka_queue_records", "Records in the producer, not delivered yet "
                            "(their messages are unacked).", value=ledger.queued)
    yield GaugeMetricFamily("gs_gateway_kafka_solo_queue_records", "Records refused for good, being sent again "
                            "alone.", value=ledger.solo_queued)
    yield GaugeMetricFamily("gs_gateway_mqtt_connected", "1 while subscribed to the broker.",
                            value=1.0 if gateway.connected else 0.0)
