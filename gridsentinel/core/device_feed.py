"""The device registry's change feed: one message per device change on the compacted ``gs.devices`` topic.

The registry's owner (the case database, written through ``gridsentinel devices`` and the API) produces a
``DeviceChange`` for every create, update, move, rotation and retirement, keyed by the device id; every
gateway, worker and API process follows the topic from the beginning and applies each change to its
in-memory ``Registry`` (core/devices.py), so a change reaches all of them within seconds and a process
that starts later ends on the current registry. Compaction keeps the latest change per device.

A retired device stays on the feed (``state="retired"``), never as a tombstone: the gateway must be able
to say *why* it rejects a retired device's messages. ``revision`` grows by one with every change of a
device; a follower ignores a change whose revision is not newer than the one it holds (a replay, or two
followers of one topic racing), so applying the feed is idempotent.

>>> from gridsentinel.core.devices import Device, Location
>>> d = Device(id="drain-9", kind="drain_level", location=Location(lat=31.87, lon=120.55))
>>> change = DeviceChange(device=d, state="active", revision=1, changed_at=0.0, credential_epoch=1)
>>> DeviceChange.decode(change.key(), change.encode()) == change
True
"""

from __future__ import annotations

import json
from typing import Literal

from pydantic import Field, ValidationError

from gridsentinel.core.config import StrictModel
from gridsentinel.core.devices import Device

DeviceState = Literal["active", "retired"]


class DeviceFeedError(ValueError):
    """A ``gs.devices`` message that does not match the schema (its reason names the field)."""


class DeviceChange(StrictModel):
    device: Device = Field(description="The device as it is after the change (a retired device's last record)")
    state: DeviceState = Field(description="active: may publish; retired: its messages are rejected")
    revision: int = Field(ge=1, description="Grows by one with each change of this device")
    changed_at: float = Field(description="When the change was made, Unix seconds (UTC)")
    credential_epoch: int = Field(default=0, ge=0,
                                  description="Grows with each credential issue, rotation or revocation")
    actor: str = Field(default="", max_length=128, description="Who made the change (user or 'seed')")

    @property
    def device_id(self) -> str:
        return self.device.id

    def key(self) -> bytes:
        return self.device.id.encode()

    def encode(self) -> bytes:
        return self.model_dump_json().encode()

    @classmethod
    def decode(cls, key: bytes | None, value: bytes | None) -> DeviceChange:
        """Parse one feed message; ``DeviceFeedError`` with the reason when it is not a valid change."""
        if value is None:
            raise DeviceFeedError("gs.devices message has no value (tombstones are not used)")
        try:
            change = cls.model_validate(json.loads(value))
        except (ValueError, ValidationError) as exc:
            raise DeviceFeedError(f"gs.devices message does not parse: {exc}") from None
        if key is not None and key.decode(errors="replace") != change.device.id:
            raise DeviceFeedError(f"gs.devices key {key!r} differs from the device id {change.device.id!r}")
        return change
