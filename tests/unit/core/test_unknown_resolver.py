"""UnknownResolver: one feed sync per unknown id per recheck period; a device found is returned at once."""

from __future__ import annotations

import time
from typing import Any, cast

import pytest

from gridsentinel.core.device_feed import DeviceChange
from gridsentinel.core.device_follow import RegistryFollower, UnknownResolver
from gridsentinel.core.devices import Device, Location, Registry

pytestmark = pytest.mark.unit


class FeedAtEnd:
    """What ``UnknownResolver`` uses of a follower: ``sync`` applies the changes the feed holds by then."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        self.pending: list[DeviceChange] = []
        self.syncs = 0

    def sync(self, timeout: float) -> bool:
        self.syncs += 1
        for change in self.pending:
            self.registry.apply(change)
        self.pending.clear()
        return True


def _change(device_id: str, revision: int = 1, state: str = "active") -> DeviceChange:
    device = Device(id=device_id, kind="noise", location=Location(lat=31.87, lon=120.55))
    return DeviceChange(device=device, state=state, revision=revision, changed_at=time.time())  # type: ignore[arg-type]


def test_a_device_registered_a_moment_ago_is_found_after_one_sync() -> None:
    feed = FeedAtEnd(Registry([]))
    now = [0.0]
    resolve = UnknownResolver(cast(RegistryFollower, feed), clock=lambda: now[0])
    feed.pending.append(_change("noise-9"))
    device = resolve("noise-9")
    assert device is not None and device.id == "noise-9" and feed.syncs == 1
    assert resolve.counts == {"synced": 1, "found": 1, "skipped": 0}


def test_an_unknown_device_costs_one_sync_per_recheck_period() -> None:
    feed = FeedAtEnd(Registry([]))
    now = [100.0]
    resolve = UnknownResolver(cast(RegistryFollower, feed), recheck_s=5.0, clock=lambda: now[0])
    results: list[Any] = [resolve("ghost") for _ in range(50)]
    assert results == [None] * 50 and feed.syncs == 1
    now[0] += 5.0
    feed.pending.append(_change("ghost"))  # registered meanwhile: found at the next allowed sync
    assert resolve("ghost") is not None and feed.syncs == 2
    assert resolve.counts["skipped"] == 49
