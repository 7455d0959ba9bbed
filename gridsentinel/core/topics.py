"""Kafka topic names: defined here once. A prefix gives tests and shadow runs their own topics."""

from __future__ import annotations

from dataclasses import dataclass

from gridsentinel.errors import ServiceError


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = ""

    def _name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def readings(self) -> str:
        return self._name("gs.readings")

    @property
    def frames(self) -> str:
        return self._name("gs.frames")

    @property
    def device_status(self) -> str:
        return self._name("gs.device-status")

    @property
    def detections(self) -> str:
        return self._name("gs.detections")

    @property
    def case_events(self) -> str:
        return self._name("gs.case-events")

    @property
    def deadletter(self) -> str:
        return self._name("gs.deadletter")

    @property
    def config(self) -> str:
        return self._name("gs.config")

    @property
    def devices(self) -> str:
        """The device registry's change feed (compacted; key = device id; see core/device_feed.py)."""
        return self._name("gs.devices")

    @property
    def device_health(self) -> str:
        """Per-device health snapshots from the gateways (compacted; key = device id)."""
        return self._name("gs.device-health")

    def compacted(self) -> list[str]:
        """Topics whose latest value per key is the state (created with ``cleanup.policy=compact``)."""
        return [self.config, self.devices, self.device_health]

    def all(self) -> list[str]:
        return [self.readings, self.frames, self.device_status, self.detections, self.case_events,
                self.deadletter, self.config, self.devices, self.device_health]


def delete_topics(bootstrap: str, *prefixes: str, timeout: float = 30.0) -> list[str]:
    """Delete every topic whose name starts with one of ``prefixes`` and return their names.

    A run's namespace is its topic prefix (``t1a2b.``) and its Faust app id followed by a dash
    (``gs-test-1a2b-``: table changelogs, repartition and ``__assignor-__leader`` topics). Raises
    ``ServiceError`` naming the topics that could not be deleted, after trying all of them.
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    if not prefixes or not all(prefixes):
        raise ValueError(f"refusing to delete topics by an empty prefix: {prefixes!r}")
    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        names = sorted(t for t in admin.list_topics(timeout=timeout).topics if t.startswith(prefixes))
    except KafkaException as exc:
        raise ServiceError(f"could not list the Kafka topics to delete ({exc})") from exc
    if not names:
        return []
    failed = []
    for name, future in admin.delete_topics(names, operation_timeout=timeout, request_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:  # already gone is what we want
                failed.append(f"{name} ({exc.args[0].str()})")
    if failed:
        raise ServiceError(f"could not delete {len(failed)} of {len(names)} Kafka topics: {', '.join(failed)}")
    return names


def ensure_topics(bootstrap: str, names: list[str], partitions: int, config: dict[str, str] | None = None,
                  timeout: float = 20.0) -> list[str]:
    """Create the topics that do not exist yet and return their names (another creator winning is fine).

    A stage creates the topics it consumes before its app subscribes: a consumer subscribed to a topic
    that does not exist yet only notices it at its next metadata refresh (five minutes). ``config``: topic
    settings for the ones created (``{"cleanup.policy": "compact"}`` for a table's changelog).
    """
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    try:
        existing = set(admin.list_topics(timeout=timeout).topics)
    except KafkaException as exc:
        raise ServiceError(f"could not list the Kafka topics ({exc})") from exc
    wanted = [NewTopic(n, num_partitions=partitions, replication_factor=1, config=config or {})
              for n in names if n not in existing]
    if not wanted:
        return []
    created = []
    for name, future in admin.create_topics(wanted, operation_timeout=timeout, request_timeout=timeout).items():
        try:
            future.result()
        except KafkaException as exc:
            if exc.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise ServiceError(f"could not create Kafka topic {name}: {exc.args[0].str()}") from exc
        else:
            created.append(name)
    return created
