"""The cases stage end to end on the real stack: detections on ``<prefix>gs.detections`` → a real
``gridsentinel worker --stages cases`` → cases in the store (SQLite and PostgreSQL), events on
``<prefix>gs.case-events``, and signed webhooks to a local HTTP receiver. Replays and a ``kill -9``
mid-stream leave one case per incident and lose no event."""

from __future__ import annotations

import asyncio
import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import yaml
from confluent_kafka import Consumer, Producer

from gridsentinel.alerts.delivery.signing import SIGNATURE_HEADER, TIMESTAMP_HEADER, verify
from gridsentinel.cases.gridcode import dedup_region
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.cases.store_protocol import CaseQuery
from gridsentinel.core.records import DeadLetter, Detection
from gridsentinel.core.topics import Topics

from ..conftest import drain_detection
from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration
SECRET = "test-webhook-secret-0123456789"
CELLS = [f"320582110152{n:03d}" for n in range(101, 107)]


class Receiver:
    """A dispatch center's webhook endpoint: records every POST."""

    def __init__(self) -> None:
        self.requests: list[tuple[dict[str, str], bytes]] = []
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                outer.requests.append(({k: v for k, v in self.headers.items()}, body))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def events(self) -> list[dict[str, Any]]:
        return [json.loads(body) for _, body in list(self.requests)]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    r.thread.start()
    yield r
    r.server.shutdown()
    r.server.server_close()


def configure(ns: Namespace, receiver: Receiver, database_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Point the worker at this test's store and webhook receiver (MQTT off: other tests share it)."""
    (ns.config_dir / "receivers.yaml").write_text(
        yaml.safe_dump(
            {
                "version": "test",
                "mqtt": {"enabled": False},
                "receivers": [
                    {
                        "name": "test-center",
                        "url": receiver.url,
                        "secret_env": "GS_TEST_WEBHOOK_SECRET",
                        "match": {"grid_prefixes": ["320582"]},
                        "retry": {"max_attempts": 3, "initial_backoff_s": 0.2, "max_backoff_s": 1},
                    }
                ],
            }
        )
    )
    for name, value in {
        "GS_DATABASE_URL": database_url,
        "GS_TEST_WEBHOOK_SECRET": SECRET,
        "GS_CASES_SWEEP_INTERVAL": "2",
        "GS_CASES_OUTBOX_GRACE": "1",
        # A killed worker's partitions move to its successor within seconds.
        "BROKER_SESSION_TIMEOUT": "6",
        "BROKER_HEARTBEAT_INTERVAL": "1",
    }.items():
        monkeypatch.setenv(name, value)


def detection(detection_id: str, cell: str, observed_at: float, **overrides: Any) -> Detection:
    return drain_detection(detection_id, **{"grid_code": cell, "observed_at": observed_at, **overrides})


class Kafka:
    def __init__(self, ns: Namespace) -> None:
        self.topics = Topics(ns.prefix)
        self.producer = Producer({"bootstrap.servers": ns.settings.kafka_bootstrap, "acks": "all"})
        self.bootstrap = ns.settings.kafka_bootstrap

    def produce(self, detections: list[Detection], raw: list[bytes] = ()) -> None:  # type: ignore[assignment]
        for d in detections:
            self.producer.produce(self.topics.detections, key=dedup_region(d.grid_code), value=d.to_json())
        for value in raw:
            self.producer.produce(self.topics.detections, key=b"bad", value=value)
        assert self.producer.flush(30) == 0

    def consumer(self, topic: str) -> Consumer:
        c = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"t-{uuid.uuid4().hex[:8]}",
                "auto.offset.reset": "earliest",
                "enable.auto.commit": False,
            }
        )
        c.subscribe([topic])
        return c


def drain(consumer: Consumer, into: list[bytes]) -> list[bytes]:
    """Append what ``consumer`` has now to ``into``, and return ``into``."""
    for msg in consumer.consume(num_messages=1000, timeout=0.5):
        if msg.error() is None:
            value = msg.value()
            assert value is not None  # these topics have no tombstones
            into.append(value)
    return into


def store_state(url: str) -> dict[str, Any]:
    async def read() -> dict[str, Any]:
        async with SqlCaseStore.open(url) as store:
            cases = await store.list_cases(CaseQuery(limit=1000))
            log = [f"{e.case_id}:{e.seq}" for c in cases for e in await store.case_log(c.case_id)]
            return {"cases": cases, "log": log, "pending": await store.pending_events()}

    return asyncio.run(read())


def start_worker(ns: Namespace, name: str = "worker") -> Any:
    return ns.spawn(name, "worker", "--app-id", ns.app_id, "--stages", "cases", "--loglevel", "warning")


def test_detections_become_cases_events_and_signed_webhooks(
    ns: Namespace, receiver: Receiver, case_store_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    configure(ns, receiver, case_store_url, monkeypatch)
    kafka = Kafka(ns)
    t0 = time.time()
    dets = [detection(f"d{i}", CELLS[i % 2], t0 + i) for i in range(6)]
    dets.append(detection("cam-1", CELLS[0], t0 + 7, source="camera"))
    # Originals, a replay of all of them, and two that cannot become cases.
    kafka.produce(
        dets + dets,
        raw=[b"{not json", detection("x1", CELLS[0], t0, kind="nope", category_code="9999").to_json()],
    )
    events_consumer = kafka.consumer(kafka.topics.case_events)
    dead_consumer = kafka.consumer(kafka.topics.deadletter)
    start_worker(ns)
    try:
        state = wait_for(
            lambda: (
                (s := store_state(case_store_url))
                and sum(c.detection_count for c in s["cases"]) == len(dets)
                and not s["pending"]
                and s
            ),
            120,
            "the detections to be applied and published",
            ns=ns,
            on_timeout=lambda: ns.log("worker"),
        )
        assert isinstance(state, dict)
        events: list[bytes] = []
        wait_for(
            lambda: len({json.loads(e)["event_id"] for e in drain(events_consumer, events)}) >= len(state["log"]),
            60,
            "the case events",
            ns=ns,
        )
        dead: list[bytes] = []
        wait_for(lambda: len(drain(dead_consumer, dead)) >= 2, 60, "the dead letters", ns=ns)
        wait_for(
            lambda: any(e["type"] == "open" for e in receiver.events()) and len(receiver.events()) >= 2,
            60,
            "the webhooks",
            ns=ns,
            on_timeout=lambda: ns.log("worker"),
        )
    finally:
        events_consumer.close()
        dead_consumer.close()

    # One case per cell (sensor and camera detections of cell 0 share one), each detection once.
    assert sorted(c.grid_code for c in state["cases"]) == sorted(CELLS[:2])
    by_cell = {c.grid_code: c for c in state["cases"]}
    assert by_cell[CELLS[0]].sources == {"sensor": 3, "camera": 1}
    # Every case log entry is on gs.case-events, nothing else is.
    assert {json.loads(e)["event_id"] for e in events} == set(state["log"])
    assert sorted(DeadLetter.from_json(d).reason for d in dead) == ["bad_record", "unknown_category"]
    # The receiver got each case's open event once, signed.
    opens = [(h, b) for h, b in receiver.requests if json.loads(b)["type"] == "open"]
    assert sorted(json.loads(b)["grid_code"] for _, b in opens) == sorted(CELLS[:2])
    for headers, body in opens:
        assert verify(SECRET, body, headers[TIMESTAMP_HEADER], headers[SIGNATURE_HEADER], now=time.time())
    assert all(json.loads(b)["notify"] for _, b in receiver.requests)  # evidence events are not pushed


def test_kill_9_mid_stream_loses_no_event_and_opens_no_duplicate(
    ns: Namespace, receiver: Receiver, postgres_url: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = postgres_url()
    configure(ns, receiver, url, monkeypatch)
    kafka = Kafka(ns)
    t0 = time.time()
    dets = [detection(f"k{i}", CELLS[i % len(CELLS)], t0 + i) for i in range(240)]
    events_consumer = kafka.consumer(kafka.topics.case_events)
    worker = start_worker(ns, "worker-1")
    try:
        kafka.produce(dets[:120])
        # Kill it once it is part-way through (applied some, not all) - mid-stream, no clean shutdown.
        wait_for(
            lambda: 0 < sum(c.detection_count for c in store_state(url)["cases"]),
            120,
            "the first worker to apply detections",
            ns=ns,
            every=0.2,
            on_timeout=lambda: ns.log("worker-1"),
        )
        worker.kill()
        worker.wait()
        ns.procs.remove(worker)
        kafka.produce(dets[60:])  # the rest, plus a replay of 60 the first worker may have seen
        start_worker(ns, "worker-2")
        state = wait_for(
            lambda: (
                (s := store_state(url))
                and sum(c.detection_count for c in s["cases"]) == len(dets)
                and not s["pending"]
                and s
            ),
            180,
            "every detection to be applied and the outbox drained",
            ns=ns,
            on_timeout=lambda: ns.log("worker-2"),
        )
        assert isinstance(state, dict)
        events: list[bytes] = []
        wait_for(
            lambda: {json.loads(e)["event_id"] for e in drain(events_consumer, events)} >= set(state["log"]),
            60,
            "every case event on Kafka",
            ns=ns,
        )
    finally:
        events_consumer.close()

    assert sorted(c.grid_code for c in state["cases"]) == sorted(CELLS)  # one case per cell
    assert {json.loads(e)["event_id"] for e in events} == set(state["log"])  # none lost, none invented


def _offsets(bootstrap: str, group: str, topic: str) -> tuple[int, list[int], list[int]]:
    """(partitions, ``group``'s committed offsets, the end offsets) on ``topic``; -1001: nothing committed."""
    from confluent_kafka import TopicPartition

    c = Consumer({"bootstrap.servers": bootstrap, "group.id": group, "enable.auto.commit": False})
    try:
        parts = sorted(c.list_topics(topic, timeout=10).topics[topic].partitions)
        committed = [tp.offset for tp in c.committed([TopicPartition(topic, p) for p in parts], timeout=10)]
        ends = [c.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in parts]
        return len(parts), committed, ends
    finally:
        c.close()


def test_a_cases_worker_leaving_alerts_to_an_alerts_worker_gets_each_new_case_delivered_once(
    ns: Namespace, receiver: Receiver, postgres_url: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """GS_CASES_ALERTS=separate: the cases worker writes cases and produces their events, a worker running
    only the `alerts` stage (the delivery's consumer group, read with librdkafka) delivers them, and nothing is
    delivered twice."""
    url = postgres_url()
    configure(ns, receiver, url, monkeypatch)
    monkeypatch.setenv("GS_CASES_ALERTS", "separate")
    kafka = Kafka(ns)
    t0 = time.time()
    dets = [detection(f"a{i}", CELLS[i % 3], t0 + i) for i in range(9)]  # three new cases, then evidence
    kafka.produce(dets)
    start_worker(ns, "cases")
    ns.spawn("alerts", "worker", "--app-id", ns.app_id, "--stages", "alerts", "--loglevel", "warning")
    logs = lambda: ns.log("cases") + ns.log("alerts")  # noqa: E731
    state = wait_for(
        lambda: (s := store_state(url)) and sum(c.detection_count for c in s["cases"]) == len(dets)
        and not s["pending"] and s,
        120, "the detections to be applied and published", ns=ns, on_timeout=logs)
    assert isinstance(state, dict)
    topic = kafka.topics.case_events
    # the alerts worker's group has read every case event (its offsets commit once they are delivered)
    read_all = lambda: all(end == 0 or done == end  # noqa: E731  # (nothing to commit in an empty partition)
                           for done, end in zip(*_offsets(kafka.bootstrap, f"{ns.app_id}-alert-delivery", topic)[1:],
                                                strict=True))
    wait_for(read_all, 90, "the alerts worker to have read every case event", ns=ns,
             on_timeout=lambda: f"{_offsets(kafka.bootstrap, f'{ns.app_id}-alerts', topic)}, "
                                f"{len(receiver.requests)} webhooks\n{logs()}")
    opens = [json.loads(b) for _, b in receiver.requests if json.loads(b)["type"] == "open"]
    assert sorted(e["grid_code"] for e in opens) == sorted(CELLS[:3])  # each new case's open event, once
    assert len({e["case_id"] for e in opens}) == 3
    # the cases worker's group never read the case events itself (it would have delivered them again)
    partitions, committed, _ = _offsets(kafka.bootstrap, ns.app_id, topic)
    assert committed == [-1001] * partitions
