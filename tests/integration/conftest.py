"""Integration fixtures: the real Mosquitto, Kafka and InfluxDB, started once per test session by the
project's own stack code; each test gets its own topics, bucket, consumer group and devices."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml
from confluent_kafka import Consumer, KafkaException, Producer
from confluent_kafka.admin import AdminClient, NewTopic
from influxdb_client import InfluxDBClient

from gridsentinel import stack
from gridsentinel.core.topics import delete_topics
from gridsentinel.errors import ServiceError
from gridsentinel.gateway.service import drop_session
from gridsentinel.settings import REPO_ROOT, Settings
from gridsentinel.stack.services import Mosquitto

pytestmark = pytest.mark.integration


@pytest.fixture(scope="session")
def settings() -> Settings:
    s = Settings()
    states = stack.up(s, stack.progress_printer())
    bad = [f"{st.name}: {st.health.detail}" for st in states if not st.health.ok]
    if bad:
        pytest.fail("the local stack is not healthy: " + "; ".join(bad))
    return s


@dataclass
class Namespace:
    """One test's private slice of the stack."""

    settings: Settings
    prefix: str
    bucket: str
    app_id: str
    config_dir: Path
    workdir: Path
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    gateway_ids: set[str] = field(default_factory=set)  # MQTT sessions to drop at the end

    def env(self) -> dict[str, str]:
        return {**os.environ, "GS_TOPIC_PREFIX": self.prefix, "GS_CONFIG_DIR": str(self.config_dir),
                "GS_INFLUX_BUCKET": self.bucket, "GS_MQTT_SHARE_GROUP": f"g{self.prefix.strip('.')}",
                "GS_MQTT_SESSION_EXPIRY": "120",
                # tests run side by side: /metrics only where a test asks for a port (test_metrics.py)
                "GS_GATEWAY_METRICS_PORT": "0", "GS_WORKER_METRICS_PORT": "0",
                "PYTHONUNBUFFERED": "1"}

    def add_devices(self, devices: list[dict[str, object]]) -> None:
        path = self.config_dir / "devices.yaml"
        data = yaml.safe_load(path.read_text()) or {}
        data.setdefault("devices", []).extend(devices)
        path.write_text(yaml.safe_dump(data, sort_keys=False))
        Mosquitto(self.settings).ensure_devices([str(d["id"]) for d in devices])

    def spawn(self, name: str, *args: str) -> subprocess.Popen[bytes]:
        log = open(self.workdir / f"{name}.log", "ab")
        proc = subprocess.Popen([sys.executable, "-m", "gridsentinel.cli", *args], env=self.env(),
                                stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
        log.close()
        self.procs.append(proc)
        return proc

    def start_gateway(self, name: str = "gateway", *args: str) -> subprocess.Popen[bytes]:
        """Start a gateway and wait until it is subscribed (messages before that have no subscriber)."""
        if "--client-id" not in args:
            args = (*args, "--client-id", f"gw-{self.prefix.strip('.')}-{name}")
        self.gateway_ids.add(args[args.index("--client-id") + 1])
        proc = self.spawn(name, "gateway", *args)
        wait_for(lambda: " ready: " in self.log(name, tail=None), 60, f"{name} to subscribe", ns=self,
                 on_timeout=lambda: self.log(name))
        return proc

    def create_topics(self, *names: str, partitions: int = 4) -> None:
        """Create this test's topics (full names) up front, so consumers see every partition at once."""
        admin = AdminClient({"bootstrap.servers": self.settings.kafka_bootstrap})
        for fut in admin.create_topics([NewTopic(n, num_partitions=partitions, replication_factor=1)
                                        for n in names]).values():
            fut.result()

    def producer(self) -> Producer:
        return Producer({"bootstrap.servers": self.settings.kafka_bootstrap, "acks": "all"})

    def consumer(self, topics: list[str]) -> Consumer:
        """A reader of ``topics`` from the beginning, in a fresh group of its own."""
        consumer = Consumer({"bootstrap.servers": self.settings.kafka_bootstrap,
                             "group.id": f"check-{uuid.uuid4().hex[:8]}", "auto.offset.reset": "earliest",
                             "enable.auto.commit": False})
        consumer.subscribe(topics)
        return consumer

    def check_alive(self) -> None:
        """Fail fast, with its log, when a spawned service died."""
        for proc in self.procs:
            if proc.poll() is not None:
                name = proc.args[3] if isinstance(proc.args, list) else "?"
                raise AssertionError(f"{name} exited with {proc.returncode}:\n{self.log(str(name))}")

    def log(self, name: str, tail: int | None = 4000) -> str:
        """The process's log: its last ``tail`` characters (for messages), or all of it (``tail=None``, for
        a line that must be found however much came after it: another test's devices on the shared broker
        make a gateway log a rejection for each of their messages)."""
        path = self.workdir / f"{name}.log"
        if not path.exists():
            return ""
        text = path.read_text(errors="replace")
        return text if tail is None else text[-tail:]

    def influx(self) -> InfluxDBClient:
        return InfluxDBClient(url=self.settings.influx_url, token=self.settings.influx_token,
                              org=self.settings.influx_org)


@pytest.fixture
def ns(settings: Settings, tmp_path: Path) -> Iterator[Namespace]:
    tag = uuid.uuid4().hex[:10]
    config_dir = tmp_path / "config"
    shutil.copytree(settings.config_dir, config_dir)
    space = Namespace(settings=settings.with_(topic_prefix=f"t{tag}.", config_dir=config_dir,
                                              influx_bucket=f"test-{tag}"),
                      prefix=f"t{tag}.", bucket=f"test-{tag}", app_id=f"gs-test-{tag}", config_dir=config_dir,
                      workdir=tmp_path)
    with space.influx() as client:
        org = client.organizations_api().find_organizations(org=settings.influx_org)[0]
        bucket = client.buckets_api().create_bucket(bucket_name=space.bucket, org=org)
    yield space
    for proc in space.procs:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    _drop_topics(space)
    for client_id in space.gateway_ids:  # else the broker queues every later test's telemetry for them
        drop_session(space.settings, client_id)
    with space.influx() as client:
        client.buckets_api().delete_bucket(bucket)


def _drop_topics(space: Namespace) -> None:
    """Delete the test's topics and its workers' Faust topics (changelogs, ``__assignor-__leader``...): the
    broker's data outlives the session. Once its processes are stopped; a failure warns, the test stands."""
    try:
        delete_topics(space.settings.kafka_bootstrap, space.prefix, f"{space.app_id}-")
    except (ServiceError, KafkaException) as exc:
        with warnings.catch_warnings():
            warnings.simplefilter("always")  # pytest turns warnings into errors; this one must not fail the test
            warnings.warn(f"Kafka topics of {space.prefix} / {space.app_id} left behind: {exc}", stacklevel=1)


T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float, what: str, every: float = 0.5,
             on_timeout: Callable[[], str] = lambda: "", ns: Namespace | None = None) -> T:
    """Poll until ``predicate`` is truthy. A bound on waiting, not a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        if ns is not None:
            ns.check_alive()
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting {timeout:.0f}s for {what}\n{on_timeout()}")
        time.sleep(every)


@pytest.fixture
def postgres_url(settings: Settings) -> Iterator[Callable[[], str]]:
    """A factory of fresh PostgreSQL databases on the stack's server (dropped after the test)."""
    import asyncio

    import asyncpg

    from gridsentinel.stack.services import PostgreSQL

    pg = PostgreSQL(settings)
    created: list[str] = []

    async def admin(sql: str) -> None:
        conn = await asyncpg.connect(pg.url("postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def make() -> str:
        name = f"gs_test_{uuid.uuid4().hex[:12]}"
        asyncio.run(admin(f"CREATE DATABASE {name}"))
        created.append(name)
        return pg.url(name)

    yield make
    for name in created:
        pg.drop_database(name)


@pytest.fixture(params=["sqlite", "postgresql"])
def case_store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The case store's URL, once per backend: a SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'cases.db'}"
    make: Callable[[], str] = request.getfixturevalue("postgres_url")
    return make()


@pytest.fixture
def browser_ready() -> Iterator[str]:
    """Debian's chromium for the page tests under tests/browser (playwright-core from `npm ci` there)."""
    from gridsentinel.analytics.report import chromium_path

    path = chromium_path()
    if path is None or not (REPO_ROOT / "tests" / "browser" / "node_modules" / "playwright-core").is_dir():
        pytest.fail("needs Debian's chromium and `npm ci` in tests/browser (scripts/setup.sh installs both)")
    yield path


@contextmanager
def serve_api(app: Any, start_timeout_s: float = 30.0) -> Iterator[str]:
    """Run an ASGI ``app`` (the API) with uvicorn in a thread of this process on a free local port; yields its
    base URL once it accepts connections, and stops it afterwards."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + start_timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise AssertionError("the API did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(15)
