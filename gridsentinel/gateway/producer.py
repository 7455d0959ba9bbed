"""The gateway's side of Kafka: its producer's configuration, its topics, and a probe of Kafka's health."""

from __future__ import annotations

from collections.abc import Callable

from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient

from gridsentinel.core.topics import Topics, ensure_topics

MAX_RECORD_BYTES = 8 * 1024 * 1024  # Kafka record limit of the gateway's producer and its big topics


def new_producer(bootstrap: str, client_id: str, solo: bool, error_cb: Callable[[KafkaError], None]) -> Producer:
    """The gateway's producer; ``solo``: one that sends each record in a batch of its own."""
    batching = {"linger.ms": 0, "batch.num.messages": 1} if solo else {"linger.ms": 5,
                                                                      "batch.num.messages": 10000}
    return Producer({
        "bootstrap.servers": bootstrap,
        "client.id": client_id,
        "acks": "all",
        "enable.idempotence": True,
        **batching,
        "compression.type": "lz4",
        "message.timeout.ms": 0,  # never give up: Kafka down means wait, not drop
        "queue.buffering.max.messages": 200000,
        "message.max.bytes": MAX_RECORD_BYTES,
        "error_cb": error_cb,
    })


def ensure_gateway_topics(bootstrap: str, topics: Topics, partitions: int = 4) -> None:
    """Create the topics the gateway writes (idempotent); the config, device and device-health topics are
    compacted, and the frames and dead letters (frames are 2 MB by default) allow ``MAX_RECORD_BYTES``."""
    big = [topics.frames, topics.deadletter]
    compacted = topics.compacted()
    ensure_topics(bootstrap, compacted, partitions, {"cleanup.policy": "compact"})
    ensure_topics(bootstrap, big, partitions, {"max.message.bytes": str(MAX_RECORD_BYTES)})
    ensure_topics(bootstrap, [t for t in topics.all() if t not in big and t not in compacted], partitions)


def kafka_answers(bootstrap: str, topic: str, timeout: float = 5.0) -> bool:
    """Kafka answers a metadata request with a leader for every partition of ``topic`` (a fresh client,
    so a wedged producer's state does not colour the answer)."""
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        md = admin.list_topics(topic, timeout=timeout)
    except KafkaException:
        return False
    found = md.topics.get(topic)
    return bool(found is not None and found.error is None and found.partitions
                and all(p.leader >= 0 and p.error is None for p in found.partitions.values()))
