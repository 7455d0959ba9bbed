"""The gateway on a registry that changes under it (the followed feed): a new device is accepted at once,
a retired one is dead-lettered with ``device_retired`` and its retirement time, a moved one gets its new
grid code; and the per-device health counters and their reports."""

from __future__ import annotations

import json

import pytest

from gridsentinel.core.device_feed import DeviceChange
from gridsentinel.core.device_health import HealthReport
from gridsentinel.core.devices import Device, Location, Registry
from gridsentinel.core.records import DeadLetter
from gridsentinel.core.topics import Topics
from gridsentinel.gateway.accept import Accepted, Acceptor, Rejected
from gridsentinel.gateway.health import HealthTracker

pytestmark = pytest.mark.unit

NOW = 1_780_000_000.0
CELL, CELL2 = "320582004001001", "320582004001002"


def _device(device_id: str, cell: str = CELL) -> Device:
    return Device(id=device_id, kind="drain_level", location=Location(lat=31.0, lon=120.0), grid_code=cell)


def _telemetry(seq: int, **metrics: float) -> bytes:
    return json.dumps({"ts": NOW - 1, "seq": seq, "metrics": metrics or {"water_level_m": 0.5}}).encode()


@pytest.mark.parametrize("fast", [True, False])
def test_the_acceptor_follows_changes_of_its_registry(fast: bool) -> None:
    registry = Registry([_device("drain-1")])
    acc = Acceptor(registry, Topics("t."), fast=fast)
    topic = b"gs/v1/drain-2/telemetry"
    assert isinstance(acc.accept(topic, _telemetry(1), None, NOW), Rejected)  # not registered yet
    registry.apply(DeviceChange(device=_device("drain-2"), state="active", revision=1, changed_at=NOW))
    assert isinstance(acc.accept(topic, _telemetry(2), None, NOW), Accepted)

    # drain-1: accepted (its route cached), then moved to another cell, then retired
    one = b"gs/v1/drain-1/telemetry"
    assert CELL.encode() in acc.accept(one, _telemetry(1), None, NOW).records[0][2]
    registry.apply(DeviceChange(device=_device("drain-1", CELL2), state="active", revision=1, changed_at=NOW))
    assert CELL2.encode() in acc.accept(one, _telemetry(2), None, NOW).records[0][2]
    registry.apply(DeviceChange(device=_device("drain-1", CELL2), state="retired", revision=2,
                                changed_at=1_779_000_000.0))
    result = acc.accept(one, _telemetry(3), None, NOW)
    assert isinstance(result, Rejected) and result.reason == "device_retired"
    letter = DeadLetter.from_json(result.records[0][2])
    assert letter.reason == "device_retired" and letter.device_id == "drain-1"
    assert "2026-05-17T" in letter.detail and "1779000000.000" in letter.detail and "revision 2" in letter.detail
    # a retired device's status and frames are rejected the same way
    status = acc.accept("gs/v1/drain-1/status", b"offline", None, NOW)
    assert isinstance(status, Rejected) and status.reason == "device_retired"


@pytest.mark.parametrize("fast", [True, False])
def test_battery_and_signal_are_noted_as_vitals(fast: bool) -> None:
    acc = Acceptor(Registry([_device("drain-1")]), Topics("t."), fast=fast)
    result = acc.accept(b"gs/v1/drain-1/telemetry", _telemetry(1, water_level_m=0.4, battery_v=3.61, rssi=-71.0,
                                                                 battery_pct=80.0), None, NOW)
    assert isinstance(result, Accepted) and len(result.records) == 4
    assert result.vitals == {"battery": 3.61, "rssi": -71.0, "battery_level": 80.0}
    plain = acc.accept(b"gs/v1/drain-1/telemetry", _telemetry(2), None, NOW)
    assert isinstance(plain, Accepted) and plain.vitals is None
    status = acc.accept("gs/v1/drain-1/status", b"offline", None, NOW)
    assert isinstance(status, Accepted) and status.status == "offline"


def test_the_tracker_reports_only_what_changed() -> None:
    tracker = HealthTracker("gw-1")
    tracker.note("d-1", NOW, vitals={"battery": 3.6})
    tracker.note("d-1", NOW + 1, rejected="out_of_range")
    tracker.note("d-2", NOW + 2, status="offline")
    reports = {r.device_id: r for r in tracker.reports(NOW + 3)}
    d1, d2 = reports["d-1"], reports["d-2"]
    assert (d1.messages, d1.rejections, d1.last_seen, d1.vitals) == (2, {"out_of_range": 1}, NOW + 1,
                                                                       {"battery": 3.6})
    assert sum(d1.message_buckets.values()) == 2 and sum(d1.rejection_buckets.values()) == 1
    assert (d2.status, d2.status_at, d2.last_seen, d2.messages) == ("offline", NOW + 2, None, 0)
    assert all(r.gateway == "gw-1" for r in reports.values())
    assert tracker.reports(NOW + 4) == []  # nothing changed since
    tracker.note("d-2", NOW + 5)
    [again] = tracker.reports(NOW + 6)
    assert again.device_id == "d-2" and again.status == "offline" and again.messages == 1
    assert HealthReport.decode(b"d-2", again.encode()) == again
    tracker.again("d-1")  # a failed report is sent again
    assert [r.device_id for r in tracker.reports(NOW + 7)] == ["d-1"]
    assert len(tracker) == 2
