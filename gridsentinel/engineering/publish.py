"""Publishing config versions on ``gs.config`` (compacted; key = the config kind: ``detectors`` = the live
detector config, ``cameras``, ``categories``, ``routing``, ``receivers``, ``calendar`` the other live
configs (liveconfig/kinds.py); ``shadow`` = a candidate detector config).

The value is JSON ``{"version", "label", "config_version", "author", "time", "yaml", "kind"}``; a ``shadow``
value with ``"stopped": true`` ends a shadow run. Compaction keeps the latest value per key, so a worker
that starts later reads the topic from the beginning and ends up on the current config.
"""

from __future__ import annotations

import json
from typing import Any

from gridsentinel.core.topics import Topics, ensure_topics
from gridsentinel.engineering.versions import ConfigVersion
from gridsentinel.errors import ServiceError
from gridsentinel.settings import Settings

LIVE_KEY = "detectors"
SHADOW_KEY = "shadow"


def message_for(version: ConfigVersion, **extra: Any) -> dict[str, Any]:
    """The ``gs.config`` value for ``version``.

    >>> v = ConfigVersion(3, "2025.2", "li", 10.0, "version: '2025.2'\\n", "")
    >>> sorted(message_for(v))
    ['author', 'config_version', 'kind', 'label', 'time', 'version', 'yaml']
    """
    return {"version": version.number, "label": version.label, "config_version": version.config_version,
            "author": version.author, "time": version.created_at, "yaml": version.yaml, "kind": version.kind,
            **extra}


def ensure_config_topic(settings: Settings, partitions: int = 1) -> str:
    """Create the compacted config topic if it is missing; return its name."""
    name = Topics(settings.topic_prefix).config
    ensure_topics(settings.kafka_bootstrap, [name], partitions, config={"cleanup.policy": "compact"}, timeout=10)
    return name


def publish(settings: Settings, key: str, value: dict[str, Any], timeout_s: float = 30.0) -> None:
    """Produce one config message and wait until Kafka has it (acks=all)."""
    from confluent_kafka import Producer

    topic = ensure_config_topic(settings)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all",
                         "enable.idempotence": True, "message.timeout.ms": int(timeout_s * 1000)})
    errors: list[str] = []

    def delivered(err: object, _msg: object) -> None:
        if err is not None:
            errors.append(str(err))

    producer.produce(topic, key=key.encode(), value=json.dumps(value).encode(), on_delivery=delivered)
    left = producer.flush(timeout_s)
    if left or errors:
        raise ServiceError(f"could not publish config to {topic}: {errors[0] if errors else 'timed out'}")


def publish_version(settings: Settings, version: ConfigVersion, key: str = LIVE_KEY, **extra: Any) -> None:
    publish(settings, key, message_for(version, **extra))
