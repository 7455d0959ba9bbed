"""Readings InfluxDB refuses for good (a field type conflict) go to the dead letter with InfluxDB's reason;
the good readings of the same batch and of the batches after it are written, and the worker keeps going.

The conflict is real: a point whose ``value`` is a string is written first, straight into InfluxDB, in a
week long ago (InfluxDB keeps a field's type per measurement and shard, a shard being a week of a fresh
bucket), so every float ``value`` of that week is refused (HTTP 422) and the readings of today are not.
"""

from __future__ import annotations

import base64

import pytest
from influxdb_client import WritePrecision
from influxdb_client.client.write_api import SYNCHRONOUS

from gridsentinel.core.records import DeadLetter, Reading
from gridsentinel.ingest.influx import InfluxSink

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration
TODAY = 1_749_434_400.0  # 2025-06-09 10:00 +08:00
OLD_WEEK = 1_704_280_000.0  # 2024-01-03: a shard of its own
GOOD = "drain-good"


def count(ns: Namespace, device: str, *, old_week: bool = False) -> int:
    """Points of the device (any field) in today's range or in the old week. One range per query: Flux
    over both shards would show only the field type of one of them."""
    span = "start: 2024-01-01T00:00:00Z, stop: 2024-01-10T00:00:00Z" if old_week else "start: 2025-01-01T00:00:00Z"
    query = (f'from(bucket: "{ns.bucket}") |> range({span}) '
             f'|> filter(fn: (r) => r._measurement == "reading" and r.device == "{device}") '
             f'|> group(columns: ["_field"]) |> count()')
    with ns.influx() as client:
        tables = client.query_api().query(query)
    return max((int(rec.get_value()) for table in tables for rec in table.records), default=0)


def reading(device: str, observed_at: float, seq: int) -> Reading:
    return Reading(device_id=device, metric="water_level", unit="m", value=0.25 + seq / 100,
                   observed_at=observed_at, seq=seq, kind="drain_level", grid_code="320582004001001")


def plant_string_value(ns: Namespace) -> None:
    """``value`` as a string in the old week: the float readings of that week now conflict."""
    with ns.influx() as client:
        client.write_api(write_options=SYNCHRONOUS).write(
            bucket=ns.bucket, org=ns.settings.influx_org, write_precision=WritePrecision.S,
            record=f'reading,device=planted,metric=water_level,unit=m value="wet" {int(OLD_WEEK)}')


def test_sink_writes_the_good_points_of_a_batch_and_hands_back_the_refused_ones(ns: Namespace) -> None:
    plant_string_value(ns)
    batch = [reading(GOOD, TODAY + i, i) for i in range(7)]
    batch.insert(2, reading("drain-bad-1", OLD_WEEK + 60, 100))
    batch.insert(6, reading("drain-bad-2", OLD_WEEK + 120, 101))
    sink = InfluxSink(ns.settings.influx_url, ns.settings.influx_token, ns.settings.influx_org, ns.bucket)
    try:
        refused = sink.write(batch)
        again = sink.write([reading(GOOD, TODAY + 10 + i, 10 + i) for i in range(3)])
    finally:
        sink.close()
    assert refused is not None and [r.reading.device_id for r in refused] == ["drain-bad-1", "drain-bad-2"]
    assert all("field type conflict" in r.reason and "string" in r.reason for r in refused), refused
    assert again == []
    assert count(ns, GOOD) == 10
    assert count(ns, "drain-bad-1", old_week=True) == 0 and count(ns, "drain-bad-2", old_week=True) == 0
    assert count(ns, "planted", old_week=True) == 1  # the probe is still there: the query does see that week
    assert sink.points_written == 10 and sink.points_refused == 2 and sink.failures == 0


def dead_letters(ns: Namespace, want: int) -> list[DeadLetter]:
    consumer = ns.consumer([f"{ns.prefix}gs.deadletter"])
    letters: list[DeadLetter] = []
    try:
        def read() -> bool:
            msg = consumer.poll(1.0)
            if msg is not None and msg.error() is None:
                letters.append(DeadLetter.from_json(msg.value() or b""))
            return len(letters) >= want

        wait_for(read, 90, f"{want} dead letter(s)", every=0, ns=ns, on_timeout=lambda: ns.log("worker"))
    finally:
        consumer.close()
    return letters


def test_worker_dead_letters_a_type_conflict_and_keeps_writing(ns: Namespace) -> None:
    plant_string_value(ns)
    readings_topic = f"{ns.prefix}gs.readings"
    ns.create_topics(readings_topic, f"{ns.prefix}gs.deadletter")
    producer = ns.producer()
    bad = reading("drain-bad", OLD_WEEK + 60, 100)
    first = [reading(GOOD, TODAY + i, i) for i in range(20)]
    for r in [*first[:10], bad, *first[10:]]:  # all queued before the worker starts: one batch
        producer.produce(readings_topic, key=r.device_id.encode(), value=r.to_json())
    assert producer.flush(30) == 0
    ns.spawn("worker", "worker", "--app-id", ns.app_id, "--bucket", ns.bucket, "--stages", "ingest")

    [letter] = dead_letters(ns, 1)
    assert letter.reason == "influx_refused" and letter.device_id == "drain-bad"
    assert "field type conflict" in letter.detail and letter.origin == readings_topic, letter.detail
    assert Reading.from_json(base64.b64decode(letter.payload_b64)) == bad
    wait_for(lambda: count(ns, GOOD) == 20, 60, "the batch's good readings in InfluxDB", ns=ns,
             on_timeout=lambda: ns.log("worker"))

    for r in (reading(GOOD, TODAY + 100 + i, 100 + i) for i in range(10)):  # the batches after it
        producer.produce(readings_topic, key=r.device_id.encode(), value=r.to_json())
    assert producer.flush(30) == 0
    wait_for(lambda: count(ns, GOOD) == 30, 60, "the later readings in InfluxDB", ns=ns,
             on_timeout=lambda: ns.log("worker"))
    assert count(ns, "drain-bad", old_week=True) == 0
    ns.check_alive()
