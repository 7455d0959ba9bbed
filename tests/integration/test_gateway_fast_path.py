"""The gateway's fast path (raw PUBLISH -> msgspec -> Kafka) makes exactly the records, dead letters and
PUBACKs of its general path (``_on_message`` and the general decoders), for good, bad, duplicate and
redelivered messages alike.

The same stream of PUBLISH packets is fed to two gateways with the same fixed clock, one with the fast
path and one without; what each produced to real Kafka is read back and compared byte for byte."""

from __future__ import annotations

import json
import time

import pytest
from confluent_kafka import TopicPartition

from gridsentinel.core.devices import Registry
from gridsentinel.gateway.producer import ensure_gateway_topics
from gridsentinel.gateway.service import Gateway

from ..conftest import mqtt_publish
from .conftest import Namespace
from .test_deadletter import bad_telemetry

pytestmark = pytest.mark.integration


def stream(now: float) -> list[tuple[str, bytes, bool]]:
    """(topic, payload, dup) in the order the broker would deliver them."""
    good = [json.dumps({"ts": now - i, "seq": i, "metrics": {"water_level_m": 0.5 + i / 100}}).encode()
            for i in range(20)]
    out = [("gs/v1/drain-001/telemetry", p, False) for p in good]
    out += [("gs/v1/drain-001/telemetry", good[3], False),  # a device's repeat: duplicate_seq
            ("gs/v1/drain-001/telemetry", good[4], True),  # the broker's redelivery: produced again
            ("gs/v1/drain-002/telemetry", json.dumps({"ts": now, "metrics": {"water_level_m": 1.0,
                                                                             "battery_v": 3.6}}).encode(), False),
            ("gs/v1/drain-002/telemetry", json.dumps({"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 60)),
                                                      "metrics": {"water_level_m": 1}}).encode(), False),
            ("gs/v1/drain-002/telemetry", b'[{"bn": "drain-002:", "n": "water_level", "u": "cm", "v": 120}]',
             False),
            ("gs/v1/nobody/telemetry", good[0], False),
            ("gs/v1/drain-001/status", b"online", False),
            ("gs/v1/drain-001/frame", b"\xff\xd8\xff\xd9", False)]
    out += [("gs/v1/drain-002/telemetry", payload, False) for _, payload in bad_telemetry(now)]
    return out


def run(ns: Namespace, prefix: str, fast: bool, packets: bytes, now: float) -> tuple[dict[str, list[bytes]], list[int]]:
    settings = ns.settings.with_(topic_prefix=prefix)
    gateway = Gateway(settings, Registry.load(ns.config_dir), client_id=f"gw-{prefix}", clock=lambda: now)
    ensure_gateway_topics(settings.kafka_bootstrap, gateway.topics, partitions=1)
    if not fast:
        gateway.mqtt.on_fast_publish = None
        gateway.acceptor.fast = False
    acked: list[int] = []
    gateway.mqtt.ack_many = acked.extend  # type: ignore[method-assign, assignment]  # records the acks
    rc, used = gateway.mqtt.feed(packets)
    assert (rc, used) == (0, len(packets))
    while gateway.producer.flush(1.0):
        pass
    gateway.producer.poll(0)
    gateway.ledger.flush_acks()
    gateway._raise_pending()
    out = {}
    for name in ("readings", "deadletter", "device_status"):
        topic = getattr(gateway.topics, name)
        consumer = ns.consumer([topic])
        records: list[bytes] = []
        deadline = time.monotonic() + 30
        expected = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=10)[1]
        while len(records) < expected and time.monotonic() < deadline:
            msg = consumer.poll(0.5)
            if msg is not None and not msg.error():
                value = msg.value()
                assert value is not None
                records.append(value)
        consumer.close()
        out[name] = records
    return out, acked


def test_fast_path_makes_the_same_records_as_the_general_path(ns: Namespace) -> None:
    now = round(time.time(), 3)
    packets = b"".join(mqtt_publish(topic, payload, mid, dup=dup)
                       for mid, (topic, payload, dup) in enumerate(stream(now), start=1))
    fast, fast_acks = run(ns, f"{ns.prefix}fast.", True, packets, now)
    general, general_acks = run(ns, f"{ns.prefix}general.", False, packets, now)
    assert fast == general
    assert sorted(fast_acks) == sorted(general_acks) == list(range(1, len(stream(now)) + 1))  # all acked, once
    readings = [json.loads(r) for r in fast["readings"]]
    assert len(readings) == 20 + 1 + 2 + 1 + 1  # good, the redelivery, two metrics, RFC 3339, SenML
    reasons = sorted(json.loads(d)["reason"] for d in fast["deadletter"])
    assert reasons.count("duplicate_seq") == 1 and reasons.count("unknown_device") == 1
    assert len(fast["device_status"]) == 1
