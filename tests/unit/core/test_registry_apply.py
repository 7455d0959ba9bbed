"""Registry.apply: the change feed's ordering (revisions), retirement, grid resolution, O(1) per change;
RegistryFollower's handling of bad feed messages (no Kafka: the handler alone)."""

from __future__ import annotations

import threading

import pytest
from shapely.geometry import box

from gridsentinel.core.device_feed import DeviceChange, DeviceFeedError
from gridsentinel.core.device_follow import RegistryFollower
from gridsentinel.core.devices import Device, Location, Registry
from gridsentinel.core.grid import GridMap

pytestmark = pytest.mark.unit

CELL_A, CELL_B = "320582110152101", "320582110152102"


def _grid() -> GridMap:
    return GridMap({CELL_A: box(120.0, 31.0, 120.01, 31.01), CELL_B: box(120.01, 31.0, 120.02, 31.01)})


def _device(device_id: str, lon: float = 120.005, interval: float = 60.0) -> Device:
    return Device(id=device_id, kind="drain_level", location=Location(lat=31.005, lon=lon),
                  expected_interval_s=interval)


def _change(device: Device, revision: int, state: str = "active", at: float = 100.0) -> DeviceChange:
    return DeviceChange(device=device, state=state, revision=revision, changed_at=at)  # type: ignore[arg-type]


def test_a_new_device_is_registered_with_its_grid_resolved() -> None:
    registry = Registry([], _grid())
    assert registry.apply(_change(_device("d-1", lon=120.015), 1))
    assert registry.get("d-1") is not None and registry.get("d-1").grid_code == CELL_B  # type: ignore[union-attr]
    assert registry.version == 1 and registry.ids() == ["d-1"]


def test_a_change_not_newer_than_the_one_held_is_ignored() -> None:
    registry = Registry([], _grid())
    assert registry.apply(_change(_device("d-1", interval=60), 2))
    assert not registry.apply(_change(_device("d-1", interval=999), 2))  # a replay
    assert not registry.apply(_change(_device("d-1", interval=999), 1))  # an older one, late
    assert registry.get("d-1").expected_interval_s == 60  # type: ignore[union-attr]
    assert registry.apply(_change(_device("d-1", interval=120), 3))
    assert registry.get("d-1").expected_interval_s == 120  # type: ignore[union-attr]
    assert registry.version == 2


def test_the_feed_overrides_the_yaml_seed_and_a_move_changes_the_grid() -> None:
    registry = Registry([_device("d-1")], _grid())  # the seed: revision 0
    seeded = registry.get("d-1")
    assert seeded is not None and seeded.grid_code == CELL_A
    assert registry.apply(_change(_device("d-1", lon=120.015), 1))
    moved = registry.get("d-1")
    assert moved is not seeded and moved is not None and moved.grid_code == CELL_B


def test_a_retired_device_is_kept_as_retired_and_can_come_back() -> None:
    registry = Registry([_device("d-1")], _grid())
    assert registry.apply(_change(_device("d-1"), 1, "retired", at=1234.5))
    assert registry.get("d-1") is None and registry.ids() == []
    retired = registry.retirement("d-1")
    assert retired is not None and (retired.retired_at, retired.revision) == (1234.5, 1)
    assert not registry.apply(_change(_device("d-1"), 1))  # the same revision does not revive it
    assert registry.apply(_change(_device("d-1"), 2))
    assert registry.get("d-1") is not None and registry.retirement("d-1") is None


def test_applying_from_a_thread_while_others_read_is_safe() -> None:
    registry = Registry([], _grid())
    changes = [_change(_device(f"d-{i}"), 1) for i in range(3000)]
    done = threading.Event()
    seen: list[int] = []

    def read() -> None:
        while not done.is_set():
            seen.append(len(registry.ids()))
            registry.active()

    reader = threading.Thread(target=read)
    reader.start()
    for change in changes:
        registry.apply(change)
    done.set()
    reader.join()
    assert len(registry.devices) == 3000 and registry.version == 3000
    assert seen == sorted(seen)  # the reader only ever saw the registry grow


def test_the_follower_counts_bad_messages_and_never_raises() -> None:
    registry = Registry([], _grid())
    follower = RegistryFollower(registry, "127.0.0.1:9", "t.gs.devices")  # not started: the handler alone
    good = _change(_device("d-1"), 1)
    follower._take(good.key(), good.encode())
    follower._take(b"d-2", b"not json")
    follower._take(b"d-2", None)  # a tombstone
    follower._take(b"other-id", good.encode())  # key and id disagree
    follower._take(good.key(), good.encode())  # a replay: stale
    assert follower.stats == {"read": 5, "bad": 3, "applied": 1, "stale": 1}
    assert registry.ids() == ["d-1"]
    with pytest.raises(DeviceFeedError):
        DeviceChange.decode(b"d-2", b"{}")
