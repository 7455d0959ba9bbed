"""The registry's operations: each change is committed to the case database first, then its credential
goes to the broker's password file (one write and one batched reload per operation, bulk import
included), then its ``DeviceChange`` goes to ``gs.devices``.

- A password is issued at creation and at each rotation (``secrets.token_urlsafe``), returned once and
  stored only hashed (Mosquitto's ``$7$`` PBKDF2-SHA512 lines); one device's password opens nothing else.
- Rotation replaces the device's line, revocation and retirement remove it; the reload that follows
  disconnects a connected client whose password no longer matches (Mosquitto re-checks them).
- Kafka down: the change is committed with its outbox row (``device_history.published_at`` empty) and the
  operation reports it unpublished; the next operation, or ``gridsentinel devices sync``, publishes it.
- Seeded devices (config/devices.yaml, the dev/demo path) keep the password derived from the stack's
  device secret (``Settings.device_password``) until they are rotated or revoked.
"""

from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass, field
from typing import Any

from gridsentinel.core.device_feed import DeviceChange
from gridsentinel.core.devices import Device, Location
from gridsentinel.core.topics import Topics, ensure_topics
from gridsentinel.devices.bulk import RowError, parse_import
from gridsentinel.devices.store import DeviceError, DeviceRecord, DeviceStore
from gridsentinel.errors import GridSentinelError, ServiceError
from gridsentinel.settings import Settings
from gridsentinel.stack.services import Mosquitto

log = logging.getLogger(__name__)


def new_password() -> str:
    """A device password: 32 random bytes, URL-safe base64 (no ':' for the password file)."""
    return secrets.token_urlsafe(32)


class CredentialError(DeviceError):
    """The change is committed but the broker's password file could not be written or reloaded."""

    status = 503


class BrokerCredentials:
    """Device and alert-subscriber credentials in the local broker's password file and ACL
    (``Mosquitto.set_credentials``)."""

    def __init__(self, settings: Settings) -> None:
        self.mosquitto = Mosquitto(settings)

    async def apply(self, issue: dict[str, str], revoke: list[str],
                    grants: dict[str, list[str]] | None = None) -> None:
        """Passwords to set and to remove, and (alert subscribers) ACL read grants, in one reload."""
        await asyncio.to_thread(self.mosquitto.set_credentials, issue, revoke, True, grants)

    async def ensure_seeded(self, device_ids: list[str]) -> None:
        await asyncio.to_thread(self.mosquitto.ensure_devices, device_ids)

    def present(self) -> set[str]:
        return self.mosquitto.known_users()


class FeedPublisher:
    """Produces ``DeviceChange`` messages to the compacted ``gs.devices`` (acks=all, idempotent producer)."""

    def __init__(self, settings: Settings, timeout_s: float = 15.0) -> None:
        self.settings = settings
        self.topic = Topics(settings.topic_prefix).devices
        self.timeout_s = timeout_s
        self._producer: Any = None

    def _send_sync(self, changes: list[DeviceChange]) -> None:
        from confluent_kafka import KafkaException, Producer

        try:
            if self._producer is None:
                ensure_topics(self.settings.kafka_bootstrap, [self.topic], 1,
                              config={"cleanup.policy": "compact"}, timeout=self.timeout_s)
                self._producer = Producer({
                    "bootstrap.servers": self.settings.kafka_bootstrap, "acks": "all",
                    "enable.idempotence": True, "message.timeout.ms": int(self.timeout_s * 1000),
                    "linger.ms": 5})
            errors: list[str] = []

            def delivered(err: object, _msg: object) -> None:
                if err is not None:
                    errors.append(str(err))

            for change in changes:
                while True:
                    try:
                        self._producer.produce(self.topic, key=change.key(), value=change.encode(),
                                               on_delivery=delivered)
                        break
                    except BufferError:  # the local queue is full: let it drain
                        self._producer.poll(0.1)
            left = self._producer.flush(self.timeout_s)
        except KafkaException as exc:
            raise ServiceError(f"could not publish to {self.topic}: {exc}") from exc
        if left or errors:
            self._producer = None  # a fresh producer next time (idempotence state of a failed one is stale)
            raise ServiceError(f"could not publish to {self.topic}: "
                               f"{errors[0] if errors else f'{left} message(s) not acknowledged in time'}")

    async def send(self, changes: list[DeviceChange]) -> None:
        await asyncio.to_thread(self._send_sync, changes)


@dataclass
class Outcome:
    """What an operation did: the records changed, passwords issued (shown once), and the feed state."""

    records: list[DeviceRecord] = field(default_factory=list)
    passwords: dict[str, str] = field(default_factory=dict)
    published: int = 0  # changes put on gs.devices by this operation (earlier pending ones included)
    pending: int = 0  # changes committed but not on gs.devices yet
    publish_error: str | None = None

    @property
    def record(self) -> DeviceRecord:
        return self.records[0]


@dataclass
class ImportReport:
    devices: int  # valid rows
    errors: list[RowError]
    dry_run: bool
    outcome: Outcome | None = None  # the import's result when it was done

    @property
    def ok(self) -> bool:
        return not self.errors


class DeviceRegistry:
    """The registry's operations over its store, the broker's credentials and the change feed.

    ``publisher`` None: changes stay in the outbox (``gridsentinel devices sync`` publishes them)."""

    def __init__(self, store: DeviceStore, credentials: BrokerCredentials,
                 publisher: FeedPublisher | None) -> None:
        self.store = store
        self.credentials = credentials
        self.publisher = publisher

    async def publish(self, outcome: Outcome | None = None) -> Outcome:
        """Publish every pending change; a Kafka failure is reported in the outcome, not raised."""
        outcome = outcome or Outcome()
        if self.publisher is not None:
            try:
                outcome.published = await self.store.publish_pending(self.publisher.send)
            except GridSentinelError as exc:
                outcome.publish_error = str(exc)
                log.warning("device changes committed but not on %s yet (%s); `gridsentinel devices sync` "
                            "or the next change publishes them", self.publisher.topic, exc)
        outcome.pending = await self.store.pending_count()
        return outcome

    async def _credentials(self, issue: dict[str, str], revoke: list[str], what: str) -> None:
        try:
            await self.credentials.apply(issue, revoke)
        except (GridSentinelError, OSError) as exc:
            raise CredentialError(f"{what} is committed, but the broker's password file could not be updated "
                                  f"({exc}); {'rotate the device again' if issue else 'run gridsentinel devices sync'}"
                                  ) from exc

    async def create(self, device: Device, actor: str) -> Outcome:
        record = (await self.store.create([device], actor))[0]
        password = new_password()
        await self._credentials({record.id: password}, [], f"device {record.id}")
        return await self.publish(Outcome([record], {record.id: password}))

    async def update(self, device_id: str, changes: dict[str, Any], actor: str) -> Outcome:
        return await self.publish(Outcome([await self.store.update(device_id, changes, actor)]))

    async def move(self, device_id: str, location: Location, actor: str, grid_code: str | None = None) -> Outcome:
        return await self.publish(Outcome([await self.store.move(device_id, location, actor, grid_code)]))

    async def retire(self, device_id: str, actor: str, reason: str = "") -> Outcome:
        record = await self.store.retire(device_id, actor, reason)
        await self._credentials({}, [device_id], f"retirement of {device_id}")
        return await self.publish(Outcome([record]))

    async def rotate(self, device_id: str, actor: str) -> Outcome:
        record = await self.store.rotate(device_id, actor)
        password = new_password()
        await self._credentials({device_id: password}, [], f"credential epoch {record.credential_epoch} of "
                                                           f"{device_id}")
        return await self.publish(Outcome([record], {device_id: password}))

    async def revoke(self, device_id: str, actor: str) -> Outcome:
        record = await self.store.revoke(device_id, actor)
        await self._credentials({}, [device_id], f"revocation of {device_id}")
        return await self.publish(Outcome([record]))

    async def import_text(self, text: str, name: str, actor: str, *, dry_run: bool) -> ImportReport:
        """Bulk create from CSV/YAML. Every problem is listed by row (ids the registry has included); with
        any problem, or ``dry_run``, nothing changes. Otherwise all devices in one transaction, one
        password-file write and one broker reload."""
        rows, errors = parse_import(text, name)
        existing = await self.store.existing_ids([d.id for _, d in rows])
        errors += [RowError(where, "id", f"{d.id!r} is already in the registry ({existing[d.id]}); "
                                         f"use update or move" if existing[d.id] == "active" else
                            f"{d.id!r} is a retired device; retired ids are not reused")
                   for where, d in rows if d.id in existing]
        subscribers = set(await self.store.subscriber_names([d.id for _, d in rows]))
        errors += [RowError(where, "id", f"{d.id!r} is an alert subscriber's MQTT username; choose another id")
                   for where, d in rows if d.id in subscribers]
        report = ImportReport(devices=len(rows), errors=errors, dry_run=dry_run)
        if errors or dry_run:
            return report
        records = await self.store.create([d for _, d in rows], actor)
        passwords = {r.id: new_password() for r in records}
        await self._credentials(passwords, [], f"the import of {len(records)} devices")
        report.outcome = await self.publish(Outcome(records, passwords))
        return report

    async def seed(self, devices: list[Device], actor: str = "seed", *, broker: bool = True) -> Outcome:
        """Add the seed devices the registry lacks (stack-derived passwords; the dev/demo path)."""
        records = await self.store.seed(devices, actor)
        if records and broker:
            await self.credentials.ensure_seeded([r.id for r in records])
        return await self.publish(Outcome(records))

    async def sync(self) -> tuple[Outcome, list[str]]:
        """Publish pending changes and remove password lines the registry revoked (a retire or revoke whose
        file write failed); the outcome and the ids whose lines were removed."""
        revoked = [r.id for r in await self.store.list_devices() if r.credential == "revoked"]
        stale = sorted(set(revoked) & self.credentials.present())
        if stale:
            await self._credentials({}, stale, f"revocation of {len(stale)} device(s)")
        return await self.publish(), stale
