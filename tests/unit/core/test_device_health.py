"""Device health: the state from the last will vs silence (whichever comes first), rate windows,
merging gateways' reports, and the report's wire format."""

from __future__ import annotations

import pytest

from gridsentinel.core.device_health import BUCKET_S, HealthReport, RateWindow, judge, merge, rate_per_minute

pytestmark = pytest.mark.unit


def test_heard_from_recently_is_online() -> None:
    v = judge(1000.0, 60, last_seen=900.0, status="online", status_at=100.0)
    assert (v.state, v.since) == ("online", 900.0)


def test_the_last_will_makes_it_offline_before_the_silence_would() -> None:
    v = judge(1000.0, 60, last_seen=950.0, status="offline", status_at=960.0)
    assert v.state == "offline" and v.since == 960.0 and "last will" in v.reason


def test_silence_first_when_the_will_comes_later() -> None:
    # silent since 500 + 180 = 680; the will only came at 990: the silence was first
    v = judge(1000.0, 60, last_seen=500.0, status="offline", status_at=990.0)
    assert (v.state, v.since) == ("silent", 680.0)
    assert "3 x the expected interval of 60 s" in v.reason


def test_silent_without_any_will() -> None:
    v = judge(1000.0, 60, last_seen=819.0, status=None, status_at=None)
    assert v.state == "silent"
    assert judge(1000.0, 60, last_seen=821.0, status=None, status_at=None).state == "online"


def test_a_message_after_the_will_means_it_is_back() -> None:
    v = judge(1000.0, 60, last_seen=990.0, status="offline", status_at=900.0)
    assert v.state == "online"


def test_online_status_but_never_a_message_goes_silent() -> None:
    assert judge(1000.0, 60, last_seen=None, status="online", status_at=950.0).state == "online"
    assert judge(1000.0, 60, last_seen=None, status="online", status_at=800.0).state == "silent"
    assert judge(1000.0, 60, last_seen=None, status=None, status_at=None).state == "unknown"


def test_the_rate_window_forgets_old_buckets_and_keeps_fixed_memory() -> None:
    w = RateWindow(bucket_s=10, buckets=6)
    for t in range(600):  # ten minutes, one a second
        w.add(10_000.0 + t)
    assert len(w.counts) == 6 and len(w.buckets(10_599.0)) == 6
    assert w.per_minute(10_599.0) == pytest.approx(60.0, rel=0.2)
    assert w.total(10_599.0 + 60) == 0  # a minute of quiet: every bucket is out of the window


def test_a_young_window_is_shorter_not_emptier() -> None:
    buckets = {int(1000 // BUCKET_S): 10}
    assert rate_per_minute(buckets, 1000.0 + 29, since=1000.0) == pytest.approx(20.0)  # 10 in 30 s
    assert rate_per_minute(buckets, 1000.0 + 29) == pytest.approx(2.0)  # 10 in five minutes


def _report(gateway: str, **kw: object) -> HealthReport:
    return HealthReport(device_id="d-1", gateway=gateway, at=1000.0, since=0.0, **kw)  # type: ignore[arg-type]


def test_merge_adds_gateways_and_takes_the_newest() -> None:
    b = int(990 // BUCKET_S)
    a = _report("gw-a", last_seen=990.0, messages=10, rejections={"out_of_range": 2}, status="online",
                status_at=10.0, vitals={"battery": 3.6}, vitals_at=900.0, message_buckets={b: 10},
                rejection_buckets={b: 2})
    c = _report("gw-b", last_seen=995.0, messages=5, rejections={"out_of_range": 1, "duplicate_seq": 1},
                status="offline", status_at=5.0, vitals={"battery": 3.4}, vitals_at=980.0,
                message_buckets={b: 5})
    m = merge([a, c], 1000.0)
    assert (m.last_seen, m.messages, m.rejections) == (995.0, 15, {"out_of_range": 3, "duplicate_seq": 1})
    assert (m.status, m.vitals, m.gateways) == ("online", {"battery": 3.4}, ["gw-a", "gw-b"])
    assert m.messages_per_min == pytest.approx(3.0) and m.rejections_per_min == pytest.approx(0.4)


def test_a_report_round_trips_and_a_bad_one_says_why() -> None:
    r = _report("gw-a", last_seen=990.0, messages=3, message_buckets={33: 3}, vitals={"rssi": -70.0},
                vitals_at=990.0)
    assert HealthReport.decode(b"d-1", r.encode()) == r
    with pytest.raises(ValueError, match="differs"):
        HealthReport.decode(b"d-2", r.encode())
    with pytest.raises(ValueError, match="does not parse"):
        HealthReport.decode(b"d-1", b'{"device_id": "d-1"}')
