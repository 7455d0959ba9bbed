"""The detection stage on the real Kafka: readings in, detections out, through crashes and rebalances."""

from __future__ import annotations

import base64
import json
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from gridsentinel.core.records import Reading

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration

LOCATION = {"lat": 31.87225, "lon": 120.55053}  # grid cell 320582004001001


@pytest.fixture(autouse=True)
def _fast_rebalance(monkeypatch: pytest.MonkeyPatch) -> None:
    # a killed worker's partitions move after the session timeout (Faust's default is 60 s)
    monkeypatch.setenv("BROKER_SESSION_TIMEOUT", "10")


class Kafka:
    """Publish readings to the test's gs.readings; collect its gs.detections and gs.deadletter."""

    def __init__(self, ns: Namespace) -> None:
        self.ns = ns
        names = [f"{ns.prefix}gs.readings", f"{ns.prefix}gs.detections", f"{ns.prefix}gs.deadletter"]
        ns.create_topics(*names)
        self.producer = ns.producer()
        self.consumer = ns.consumer(names[1:])
        self.detections: list[dict[str, Any]] = []
        self.dead: list[dict[str, Any]] = []

    def publish(self, readings: list[Reading]) -> None:
        for r in readings:
            self.producer.produce(f"{self.ns.prefix}gs.readings", key=r.device_id.encode(), value=r.to_json())
        assert self.producer.flush(30) == 0

    def poll(self) -> list[dict[str, Any]]:
        while (msg := self.consumer.poll(0.2)) is not None:
            if msg.error():
                continue
            topic, value = msg.topic(), msg.value()
            assert topic is not None and value is not None  # None only on error events
            target = self.dead if topic.endswith("gs.deadletter") else self.detections
            target.append(json.loads(value))
        return self.detections

    def of(self, device: str, kind: str | None = None) -> list[dict[str, Any]]:
        self.poll()
        return [d for d in self.detections
                if d["device_id"] == device and (kind is None or d["kind"] == kind)]

    def close(self) -> None:
        self.consumer.close()


@pytest.fixture
def kafka(ns: Namespace) -> Any:
    k = Kafka(ns)
    yield k
    k.close()


def _covers(ns: Namespace, n: int) -> list[str]:
    ids = [f"cover-{ns.prefix.strip('.')}-{i}" for i in range(n)]
    # a long reporting interval: a cover that goes quiet during the test is not "offline"
    ns.add_devices([{"id": d, "kind": "cover_tilt", "location": LOCATION, "expected_interval_s": 3600}
                    for d in ids])
    return ids


def _tilt(device: str, t: float, deg: float, seq: int) -> Reading:
    return Reading(device, "tilt", "deg", deg, round(t, 3), seq=seq, kind="cover_tilt")


def _worker(ns: Namespace, name: str) -> subprocess.Popen[bytes]:
    return ns.spawn(name, "worker", "--app-id", ns.app_id, "--stages", "detect",
                    "--stats-file", str(ns.workdir / f"{name}.stats.json"))


def _stats(ns: Namespace, name: str) -> dict[str, Any]:
    path = ns.workdir / f"{name}.stats.json"
    try:
        return json.loads(path.read_text()).get("detect") or {}
    except (OSError, ValueError):
        return {}


def _kill9(proc: subprocess.Popen[bytes], ns: Namespace) -> None:
    proc.send_signal(signal.SIGKILL)
    proc.wait(10)
    ns.procs.remove(proc)


def _incidents(dets: list[dict[str, Any]]) -> set[float]:
    return {d["evidence"]["incident_started_at"] for d in dets}


def test_cover_flip_is_detected_and_survives_kill_9_of_the_worker(ns: Namespace, kafka: Kafka) -> None:
    (cover,) = _covers(ns, 1)
    worker = _worker(ns, "worker")
    t0 = time.time() - 60
    # knocked to 30° and held: an alarm (hold 2 s) -- the incident starts
    kafka.publish([_tilt(cover, t0 + 5 * i, deg, i) for i, deg in enumerate([1, 1, 30, 30, 30])])
    logs = lambda: ns.log("worker")  # noqa: E731
    wait_for(lambda: kafka.of(cover, "cover_tilt"), 90, "the alarm detection", ns=ns, on_timeout=logs)
    alarm = kafka.of(cover, "cover_tilt")[0]
    assert (alarm["severity"], alarm["category_code"]) == ("alarm", "0103")
    assert alarm["grid_code"] == "320582004001001"
    assert alarm["detector_version"] and alarm["message"].startswith("cover tilted 30°")

    wait_for(lambda: _stats(ns, "worker").get("released", 0) >= 5, 30, "the readings to be applied", ns=ns)
    _kill9(worker, ns)  # mid-incident: the cover is still tilted
    _worker(ns, "worker2")
    # the cover flips past 90°: the same incident escalates; no second incident opens
    kafka.publish([_tilt(cover, t0 + 25 + 5 * i, deg, 5 + i) for i, deg in enumerate([30, 120, 120])])
    wait_for(lambda: [d for d in kafka.of(cover, "cover_tilt") if d["severity"] == "critical"], 90,
             "the critical escalation after the restart", ns=ns, on_timeout=lambda: ns.log("worker2"))
    time.sleep(3)  # let any duplicate the replay might produce arrive before counting
    found = kafka.of(cover, "cover_tilt")
    assert _incidents(found) == {alarm["evidence"]["incident_started_at"]}
    assert {d["severity"]: d["detection_id"] for d in found} == {
        "alarm": alarm["detection_id"], "critical": found[-1]["detection_id"]}
    assert len({d["detection_id"] for d in found}) == 2
    assert [d["evidence"]["phase"] for d in found if d["severity"] == "alarm"][0] == "open"


def test_two_workers_share_partitions_and_one_takes_over_with_state(ns: Namespace, kafka: Kafka) -> None:
    covers = _covers(ns, 8)
    a, _b = _worker(ns, "worker-a"), _worker(ns, "worker-b")
    wait_for(lambda: _stats(ns, "worker-a").get("partitions") and _stats(ns, "worker-b").get("partitions")
             and sorted(_stats(ns, "worker-a")["partitions"] + _stats(ns, "worker-b")["partitions"])
             == [0, 1, 2, 3], 90, "both workers to own partitions", ns=ns,
             on_timeout=lambda: ns.log("worker-a") + ns.log("worker-b"))
    t0 = time.time() - 60
    kafka.publish([_tilt(c, t0 + 5 * i, deg, i) for c in covers for i, deg in enumerate([1, 30, 30, 30])])
    wait_for(lambda: all(kafka.of(c, "cover_tilt") for c in covers), 90, "an alarm for every cover", ns=ns)
    # both workers released readings (their stats files are rewritten once a second: wait for them)
    wait_for(lambda: _stats(ns, "worker-a").get("released", 0) > 0 and _stats(ns, "worker-b").get("released", 0) > 0,
             30, "both workers' stats to show released readings", ns=ns)
    alarms = {c: kafka.of(c, "cover_tilt")[0] for c in covers}

    _kill9(a, ns)
    kafka.publish([_tilt(c, t0 + 20 + 5 * i, deg, 4 + i) for c in covers for i, deg in enumerate([30, 120])])
    wait_for(lambda: _stats(ns, "worker-b").get("partitions") == [0, 1, 2, 3], 90,
             "worker-b to take every partition", ns=ns, on_timeout=lambda: ns.log("worker-b"))
    wait_for(lambda: all(len(kafka.of(c, "cover_tilt")) >= 2 for c in covers), 90,
             "the critical escalation for every cover", ns=ns, on_timeout=lambda: ns.log("worker-b"))
    time.sleep(3)
    for c in covers:
        found = kafka.of(c, "cover_tilt")
        assert _incidents(found) == {alarms[c]["evidence"]["incident_started_at"]}, c
        assert sorted({(d["severity"], d["detection_id"]) for d in found}) == sorted(
            {("alarm", alarms[c]["detection_id"]), ("critical", found[-1]["detection_id"])}), c


def test_late_and_out_of_order_readings_give_the_in_order_detections(ns: Namespace, kafka: Kafka) -> None:
    ordered, shuffled = _covers(ns, 2)
    _worker(ns, "worker")
    t0 = time.time() - 300
    angles = [1, 1, 30, 30, 30, 30, 8, 1, 30, 120, 120, 5, 1, 1, 1, 1, 1, 1, 1, 1]
    series = [(t0 + 10 * i, float(deg), i) for i, deg in enumerate(angles)]
    in_order = [_tilt(ordered, t, deg, i) for t, deg, i in series]
    mixed = [_tilt(shuffled, t, deg, i) for t, deg, i in series]
    for i in range(0, len(mixed) - 1, 2):  # each reading 10 s out of place (lateness: 120 s)
        mixed[i], mixed[i + 1] = mixed[i + 1], mixed[i]
    too_late = _tilt(shuffled, t0 + 2, 60.0, 99)  # 188 s behind the newest reading
    kafka.publish(in_order + mixed)
    kafka.publish([too_late])

    def shape(device: str) -> list[tuple[Any, ...]]:
        return [(d["kind"], d["severity"], round(d["observed_at"] - t0, 3),
                 round(d["evidence"]["incident_started_at"] - t0, 3)) for d in kafka.of(device, "cover_tilt")]

    wait_for(lambda: len(shape(ordered)) >= 2 and len(shape(shuffled)) >= 2, 90, "both covers' detections",
             ns=ns, on_timeout=lambda: ns.log("worker"))
    wait_for(lambda: kafka.poll() is not None and [x for x in kafka.dead if x["reason"] == "too_late"], 60,
             "the too-late dead letter", ns=ns)
    time.sleep(2)
    assert shape(shuffled) == shape(ordered)
    assert [(k, s) for k, s, *_ in shape(ordered)] == [("cover_tilt", "alarm"), ("cover_tilt", "critical")]
    late = [x for x in kafka.dead if x["reason"] == "too_late"]
    assert len(late) == 1 and late[0]["device_id"] == shuffled
    assert Reading.from_json(base64.b64decode(late[0]["payload_b64"])).value == 60.0


def test_detect_and_ingest_stages_share_the_readings_in_one_worker(ns: Namespace, kafka: Kafka) -> None:
    """Both agents of one app get every reading; a device override in the test's config is applied."""
    (cover,) = _covers(ns, 1)
    path = Path(ns.config_dir) / "detectors.yaml"
    text = path.read_text().replace("device_overrides:", f"device_overrides:\n  {cover}:\n"
                                                        "    cover_tilt: {alarm_deg: 40.0}", 1)
    path.write_text(text)
    ns.spawn("worker", "worker", "--app-id", ns.app_id, "--stages", "ingest", "detect", "--bucket", ns.bucket)
    t0 = time.time() - 60
    kafka.publish([_tilt(cover, t0 + 5 * i, deg, i) for i, deg in enumerate([1, 30, 30, 30, 50, 50, 50])])
    wait_for(lambda: kafka.of(cover, "cover_tilt"), 90, "the alarm", ns=ns,
             on_timeout=lambda: ns.log("worker"))
    first = kafka.of(cover, "cover_tilt")[0]
    assert first["value"] == 50.0 and "limit 40°" in first["message"]

    query = (f'from(bucket: "{ns.bucket}") |> range(start: -1h) '
             f'|> filter(fn: (r) => r._measurement == "reading" and r.device == "{cover}" '
             f'and r._field == "value")')

    def points() -> int:
        with ns.influx() as influx:
            return sum(len(table.records) for table in influx.query_api().query(query))

    wait_for(lambda: points() >= 7, 60, "all 7 readings in InfluxDB", ns=ns,
             on_timeout=lambda: ns.log("worker"))


def test_a_backlog_of_hours_gives_no_false_dropout_and_finds_the_silent_devices_on_event_time(
        ns: Namespace, kafka: Kafka) -> None:
    """Hours of readings wait in Kafka before the worker starts (a replay, an outage's backlog): reading
    them must not make a reporting device look offline, while a device that fell silent within the
    backlog, and one never heard from, are found on the backlog's event time."""
    tag = ns.prefix.strip(".")
    reporting = [f"cover-{tag}-{i}" for i in range(3)]
    quiet, never = f"cover-{tag}-quiet", f"cover-{tag}-never"
    ns.add_devices([{"id": d, "kind": "cover_tilt", "location": LOCATION, "expected_interval_s": 60}
                    for d in [*reporting, quiet, never]])
    end = time.time() - 3600  # the backlog's newest reading, an hour behind the wall clock
    start, quiet_last = end - 4 * 3600, end - 3 * 3600
    backlog = [_tilt(d, start + 60 * i + j, 1.0, i) for i in range(4 * 60 + 1)
               for j, d in enumerate([*reporting, quiet]) if d != quiet or start + 60 * i <= quiet_last]
    kafka.publish(backlog)
    _worker(ns, "worker")  # its tick topic does not exist yet: the stage creates it before subscribing

    def offline() -> dict[str, list[dict[str, Any]]]:
        return {d: kafka.of(d, "device_offline") for d in [*reporting, quiet, never]}

    wait_for(lambda: offline()[quiet] and offline()[never], 90, "the silent covers found offline", ns=ns,
             on_timeout=lambda: ns.log("worker"))
    # every reading applied, then ticks applied to every partition after the worker caught up
    wait_for(lambda: _stats(ns, "worker").get("readings", 0) >= len(backlog), 60, "the backlog read", ns=ns)
    ticks = _stats(ns, "worker")["ticks"]
    wait_for(lambda: _stats(ns, "worker").get("ticks", 0) >= ticks + 12, 60, "three more rounds of ticks",
             ns=ns, on_timeout=lambda: ns.log("worker"))
    time.sleep(2)
    found = offline()
    assert {d for d, dets in found.items() if dets} == {quiet, never}, found
    # judged on the backlog's event time (an hour behind the wall clock), where ticks reached it
    assert quiet_last + 180 <= found[quiet][0]["observed_at"] <= end + 300
    assert start + 180 <= found[never][0]["observed_at"] <= end + 300
    # silent since the backlog began: counted from its first event time, not from the worker's first check
    # (how far into the backlog the first judging tick lands depends on the machine's speed)
    never_found = found[never][0]
    assert abs(never_found["evidence"]["silent_intervals"] * 60 - (never_found["observed_at"] - start)) < 60
    assert "not found in cluster metadata" not in ns.log("worker", tail=None)


def test_a_running_worker_takes_a_device_registered_and_retired_on_the_feed(ns: Namespace, kafka: Kafka) -> None:
    """No restart: a cover registered on gs.devices while the worker runs gets its detections at once (its
    first readings may arrive before the worker read the change: it reads the feed to the end first), and
    once retired its readings are dead letters."""
    from gridsentinel.core.device_feed import DeviceChange
    from gridsentinel.core.devices import Device, Location

    worker = _worker(ns, "worker")
    wait_for(lambda: _stats(ns, "worker").get("partitions") is not None, 90, "the worker to start", ns=ns,
             on_timeout=lambda: ns.log("worker"))
    cover = f"cover-{ns.prefix.strip('.')}-new"
    device = Device(id=cover, kind="cover_tilt", location=Location(**LOCATION), expected_interval_s=3600)
    feed = f"{ns.prefix}gs.devices"
    producer = ns.producer()

    def change(revision: int, state: str) -> None:
        c = DeviceChange(device=device, state=state, revision=revision, changed_at=time.time(),  # type: ignore[arg-type]
                         actor="test")
        producer.produce(feed, key=c.key(), value=c.encode())
        assert producer.flush(30) == 0

    change(1, "active")
    t0 = time.time() - 60
    kafka.publish([_tilt(cover, t0 + 5 * i, deg, i) for i, deg in enumerate([1, 1, 30, 30, 30])])  # right away
    wait_for(lambda: kafka.of(cover, "cover_tilt"), 90, "the new cover's alarm", ns=ns,
             on_timeout=lambda: ns.log("worker"))
    alarm = kafka.of(cover, "cover_tilt")[0]
    assert alarm["grid_code"] == "320582004001001" and alarm["severity"] == "alarm"
    assert not [x for x in kafka.dead if x["device_id"] == cover], "no reading of the new cover was refused"

    change(2, "retired")
    seq = 10

    def refused() -> bool:
        nonlocal seq
        seq += 1
        kafka.publish([_tilt(cover, t0 + 30 + seq, 1.0, seq)])
        kafka.poll()
        return any(x["device_id"] == cover and x["reason"] == "unknown_device" for x in kafka.dead)

    wait_for(refused, 60, "the retired cover's readings to be dead letters", every=1.0, ns=ns)
    assert worker.poll() is None, "the same worker throughout"
