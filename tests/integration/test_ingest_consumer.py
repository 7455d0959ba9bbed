"""The ingest consumer against real Kafka and InfluxDB, without restarting either: a batch whose write
never succeeded (InfluxDB unreachable: the sink points at a closed port) is not committed and is read again
by the next consumer of the group; every reading is then stored exactly once, a redelivered batch
overwrites its own points, and a record that is no reading goes to the dead letter with its reason."""

from __future__ import annotations

import base64
import socket
import subprocess
import sys
import threading

import pytest
from confluent_kafka import Consumer, TopicPartition

from gridsentinel.core.records import Reading
from gridsentinel.ingest.consumer import BatchIngest
from gridsentinel.ingest.influx import InfluxSink

from .conftest import Namespace, wait_for
from .test_ingest_refused import count, dead_letters

pytestmark = pytest.mark.integration
TODAY = 1_749_434_400.0
N = 3000


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readings(device: str) -> list[Reading]:
    return [Reading(device_id=device, metric="water_level", unit="m", value=0.5 + i / 10_000,
                    observed_at=TODAY + i / 1000, seq=i, kind="drain_level", grid_code="320582004001001")
            for i in range(N)]


def start(ns: Namespace, sink: InfluxSink, group: str) -> tuple[BatchIngest, threading.Thread]:
    ingest = BatchIngest(bootstrap=ns.settings.kafka_bootstrap, group_id=group, topic=f"{ns.prefix}gs.readings",
                         deadletter_topic=f"{ns.prefix}gs.deadletter", sink=sink, batch_size=500)
    thread = threading.Thread(target=ingest.run, daemon=True)
    thread.start()
    return ingest, thread


def committed(ns: Namespace, group: str) -> int:
    consumer = Consumer({"bootstrap.servers": ns.settings.kafka_bootstrap, "group.id": group,
                         "enable.auto.commit": False})
    try:
        parts = [TopicPartition(f"{ns.prefix}gs.readings", p) for p in range(4)]
        return sum(max(0, tp.offset) for tp in consumer.committed(parts, timeout=10))
    finally:
        consumer.close()


def test_unwritten_batches_are_read_again_and_every_reading_is_stored_once(ns: Namespace) -> None:
    topic, group, device = f"{ns.prefix}gs.readings", f"{ns.app_id}-ingest", "drain-once"
    ns.create_topics(topic, f"{ns.prefix}gs.deadletter")
    producer = ns.producer()
    for r in readings(device):
        producer.produce(topic, key=r.device_id.encode(), value=r.to_json())
    producer.produce(topic, key=b"drain-bad", value=b'{"device_id": "drain-bad", "value": "high"}')
    assert producer.flush(30) == 0

    # InfluxDB unreachable: the consumer takes a batch, retries its write, and is stopped meanwhile
    down = InfluxSink(f"http://127.0.0.1:{closed_port()}", ns.settings.influx_token, ns.settings.influx_org,
                      ns.bucket, max_backoff_s=0.2)
    ingest, thread = start(ns, down, group)
    wait_for(lambda: down.failures >= 3, 60, "the write to fail and be retried", ns=ns)
    ingest.stop()
    thread.join(30)
    assert not thread.is_alive() and down.points_written == 0
    assert committed(ns, group) == 0  # nothing written, nothing committed

    up = InfluxSink(ns.settings.influx_url, ns.settings.influx_token, ns.settings.influx_org, ns.bucket)
    ingest, thread = start(ns, up, group)
    try:
        wait_for(lambda: up.points_written >= N, 90, f"{N} points written", ns=ns)
    finally:
        ingest.stop()
        thread.join(30)
    assert count(ns, device) == N
    assert committed(ns, group) == N + 1  # the bad record's offset too: its dead letter is on Kafka
    [letter] = dead_letters(ns, 1)
    assert letter.reason == "bad_record" and "`$.value`" in letter.detail and letter.origin == topic
    assert base64.b64decode(letter.payload_b64) == b'{"device_id": "drain-bad", "value": "high"}'

    # the same readings delivered again (another group reading from the start): same points, none added
    again = InfluxSink(ns.settings.influx_url, ns.settings.influx_token, ns.settings.influx_org, ns.bucket)
    ingest, thread = start(ns, again, f"{group}-replay")
    try:
        wait_for(lambda: again.points_written >= N, 90, "the replay written", ns=ns)
    finally:
        ingest.stop()
        thread.join(30)
    assert count(ns, device) == N


CRASHING_WORKER = """
import sys
from gridsentinel.ingest import consumer as consumer_module
from gridsentinel.ingest.stage import IngestStage
from gridsentinel.settings import Settings
from gridsentinel.streams.context import WorkerOptions
from gridsentinel.worker.app import create_app

def fail(consumer, pending, what):
    raise consumer_module.IngestError("Kafka consumer: fatal error (planted by the test)")

consumer_module.store_pending = fail  # called in every turn of the loop: it fails at the first
app = create_app(Settings(), WorkerOptions(app_id=sys.argv[1]), [IngestStage()])
app.Worker(loglevel="warning", quiet=True, redirect_stdouts=False).execute_from_commandline()
"""


def test_a_failing_ingest_loop_ends_the_worker_with_a_non_zero_status(ns: Namespace) -> None:
    """The supervisor (and test_reliability's unsupervised worker) restart a worker that exits non-zero; an
    ingest loop that cannot go on must end the worker so, not leave it alive and idle."""
    proc = subprocess.run([sys.executable, "-c", CRASHING_WORKER, ns.app_id], env=ns.env(), capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode != 0, proc.stderr[-2000:]
    assert "planted by the test" in proc.stderr
