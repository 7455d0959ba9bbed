"""`gridsentinel bench cases`: detections/s through dedup + the case store, and detection → webhook latency.

Three phases, each on SQLite (a file) and on the stack's PostgreSQL (a fresh database):

1. **store**: ``apply_detections`` directly, ``--concurrency`` writers (one per simulated partition, each
   with its own region's cells), one transaction per ``--batch-size`` detections (as the stage takes
   them; case changes + applied ids + outbox); ``--batch-size 1`` is ``apply_detection`` one by one.
2. **stage**: the Faust path: detections pre-produced to Kafka, a real ``gridsentinel worker --stages
   cases`` applies them and publishes their events; rate = detections / (last applied − first applied).
3. **latency** (PostgreSQL): detections at ``--rate`` per second, each opening a case whose ``open`` event
   is pushed to a local webhook receiver; latency = arrival at the receiver − produce time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from gridsentinel import stack
from gridsentinel.bench.common import drop_topics, emit, percentile
from gridsentinel.cases.batch import apply_detections
from gridsentinel.cases.categories import load_catalog
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.gridcode import dedup_region
from gridsentinel.cases.incidents import load_families
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.core.records import Detection
from gridsentinel.core.topics import Topics
from gridsentinel.settings import REPO_ROOT, Settings

SECRET = "bench-webhook-secret-0123456789"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--detections", type=int, default=5000, help="detections per throughput run (default 5000)"
    )
    parser.add_argument("--per-case", type=int, default=10, help="detections per incident (default 10)")
    parser.add_argument(
        "--concurrency", type=int, default=4, help="concurrent writers in the store phase (default 4)"
    )
    parser.add_argument(
        "--batch-size",
        type=int,
        default=200,
        help="detections per store transaction in the store phase, as the stage takes them (default 200; "
        "1 = apply_detection one by one)",
    )
    parser.add_argument(
        "--rate", type=float, default=100.0, help="detections/s in the latency phase (default 100)"
    )
    parser.add_argument(
        "--latency-seconds", type=float, default=10.0, help="latency phase length (default 10)"
    )
    parser.add_argument(
        "--backends", nargs="+", default=["sqlite", "postgresql"], choices=["sqlite", "postgresql"]
    )
    parser.add_argument(
        "--skip-stage", action="store_true", help="only the store phase (no Kafka, no worker)"
    )
    parser.add_argument(
        "--no-incidents",
        action="store_true",
        help="store phase without incident linking (config/incident_families.yaml; the worker always links): "
        "run both ways to see what linking costs",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _detection(i: int, per_case: int, t0: float, tag: str, cell_base: int = 0) -> Detection:
    cell = f"320582110{cell_base + i // per_case:06d}"
    return Detection(
        detection_id=f"{tag}-{i}",
        source="sensor",
        detector="bench",
        detector_version="1",
        kind="drain_overflow",
        category_code="0103",
        category_standard="GB/T 30428.2-2013",
        severity="alarm",
        grid_code=cell,
        observed_at=t0 + i * 0.001,
        device_id="bench",
    )


class _Databases:
    def __init__(self, settings: Settings, tmp: Path) -> None:
        from gridsentinel.stack.services import PostgreSQL

        self.pg = PostgreSQL(settings)
        self.tmp = tmp
        self.created: list[str] = []

    async def _admin(self, sql: str) -> None:
        import asyncpg

        conn = await asyncpg.connect(self.pg.url("postgres"))
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    def url(self, backend: str) -> str:
        name = f"gs_bench_{uuid.uuid4().hex[:10]}"
        if backend == "sqlite":
            return f"sqlite:///{self.tmp / (name + '.db')}"
        asyncio.run(self._admin(f"CREATE DATABASE {name}"))
        self.created.append(name)
        return self.pg.url(name)

    def drop(self) -> None:
        for name in self.created:
            asyncio.run(self._admin(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))


async def _store_phase(url: str, settings: Settings, args: argparse.Namespace) -> dict[str, float]:
    catalog = load_catalog(settings.config_dir)
    # the drains' category is in the flooding family: each batch takes the family lock and looks for neighbours
    families = None if args.no_incidents else load_families(settings.config_dir, catalog)
    t0 = time.time()
    dets = [
        _detection(
            i,
            args.per_case,
            t0,
            "s",
        )
        for i in range(args.detections)
    ]
    # Each writer owns whole incidents (as a partition owns regions).
    lanes: list[list[Detection]] = [[] for _ in range(args.concurrency)]
    for d in dets:
        lanes[int(d.grid_code[-6:]) % args.concurrency].append(d)
    async with SqlCaseStore.open(url) as store:

        async def lane(items: list[Detection]) -> None:
            if args.batch_size <= 1:
                for d in items:
                    await apply_detection(d, store, catalog, {}, now=time.time(), families=families)
                return
            for start in range(0, len(items), args.batch_size):
                results = await apply_detections(
                    items[start : start + args.batch_size], store, catalog, {}, now=time.time(), families=families
                )
                failed = [r for r in results if r.error is not None]
                if failed:
                    raise RuntimeError(f"{failed[0].detection.detection_id}: {failed[0].error}")

        start = time.perf_counter()
        await asyncio.gather(*(lane(items) for items in lanes))
        elapsed = time.perf_counter() - start
    return {"detections_per_s": round(len(dets) / elapsed, 1), "seconds": round(elapsed, 2)}


class _Receiver:
    def __init__(self) -> None:
        self.arrivals: dict[str, float] = {}
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                now = time.time()
                event = json.loads(body)
                outer.arrivals.setdefault(str(event.get("data", {}).get("detection_id")), now)
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


async def _watch_applied(url: str, total: int, timeout_s: float) -> tuple[int, float, float]:
    """Count applied detections every 50 ms on one connection (a new engine per look would take CPU from
    the worker on a small machine) until all ``total`` are; returns (count at the first look that saw
    any, perf_counter then, perf_counter at the end)."""
    import sqlalchemy as sa
    from sqlalchemy.exc import DBAPIError
    from sqlalchemy.ext.asyncio import create_async_engine

    from gridsentinel.cases.store import applied_detections, async_url

    count = sa.select(sa.func.count()).select_from(applied_detections)
    engine = create_async_engine(async_url(url))  # plain BEGINs: a reader must not take SQLite's write lock
    first: tuple[int, float] | None = None
    n = 0
    deadline = time.monotonic() + timeout_s
    try:
        async with engine.connect() as conn:
            while time.monotonic() < deadline:
                try:
                    n = int(await conn.scalar(count) or 0)
                    await conn.commit()
                except DBAPIError:  # the worker has not created the schema yet
                    await conn.rollback()
                    n = 0
                now = time.perf_counter()
                if n and first is None:
                    first = (n, now)
                if n >= total and first is not None:
                    return first[0], first[1], now
                await asyncio.sleep(0.05)
    finally:
        await engine.dispose()
    raise RuntimeError(f"stage applied only {n} of {total}")


class _Worker:
    def __init__(self, settings: Settings, tmp: Path, url: str, receiver: _Receiver, tag: str) -> None:
        self.tag = tag
        config_dir = tmp / f"config-{tag}"
        shutil.copytree(settings.config_dir, config_dir)
        (config_dir / "receivers.yaml").write_text(
            yaml.safe_dump(
                {
                    "version": "bench",
                    "mqtt": {"enabled": False},
                    "receivers": [
                        {
                            "name": "bench",
                            "url": receiver.url,
                            "secret": SECRET,
                            "match": {"grid_prefixes": ["320582"]},
                        }
                    ],
                }
            )
        )
        self.topics = Topics(f"{tag}.")
        self.app_id = f"gs-{tag}"
        self.bootstrap = settings.kafka_bootstrap
        self.env = {
            **os.environ,
            "GS_TOPIC_PREFIX": f"{tag}.",
            "GS_WORKER_METRICS_PORT": "0",  # several benches' workers on one machine: no /metrics
            "GS_CONFIG_DIR": str(config_dir),
            "GS_DATABASE_URL": url,
            "GS_CASES_SWEEP_INTERVAL": "3600",
        }
        self.log = open(tmp / f"{tag}.log", "ab")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "gridsentinel.cli",
                "worker",
                "--app-id",
                self.app_id,
                "--stages",
                "cases",
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=REPO_ROOT,
        )

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        drop_topics(self.bootstrap, self.topics.prefix, self.app_id)


def _producer(settings: Settings) -> Any:
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": settings.kafka_bootstrap, "acks": "all", "linger.ms": 5})


def _stage_phase(
    settings: Settings, tmp: Path, url: str, args: argparse.Namespace, say: Any
) -> dict[str, float]:
    receiver = _Receiver()
    worker = _Worker(settings, tmp, url, receiver, f"benchcases{uuid.uuid4().hex[:8]}")
    producer = _producer(settings)
    t0 = time.time()
    for i in range(args.detections):
        d = _detection(i, args.per_case, t0, worker.tag)
        producer.produce(worker.topics.detections, key=dedup_region(d.grid_code), value=d.to_json())
        producer.poll(0)
    producer.flush(60)
    try:
        worker.start()
        first_n, first, last = asyncio.run(_watch_applied(url, args.detections, 600))
        elapsed = max(1e-6, last - first)
        return {
            "detections_per_s": round((args.detections - first_n) / elapsed, 1),
            "seconds": round(elapsed, 2),
        }
    finally:
        worker.stop()
        receiver.server.shutdown()


def _latency_phase(
    settings: Settings, tmp: Path, url: str, args: argparse.Namespace, say: Any
) -> dict[str, Any]:
    receiver = _Receiver()
    worker = _Worker(settings, tmp, url, receiver, f"benchlat{uuid.uuid4().hex[:8]}")
    producer = _producer(settings)
    worker.start()
    try:
        # Warm up until the worker answers (partitions assigned, store open, receiver reached).
        sent: dict[str, float] = {}
        base = 500_000
        i = 0
        deadline = time.monotonic() + 120
        while not receiver.arrivals and time.monotonic() < deadline:
            d = _detection(i, 1, time.time(), "warm", cell_base=base)
            producer.produce(worker.topics.detections, key=dedup_region(d.grid_code), value=d.to_json())
            producer.flush(10)
            i += 1
            time.sleep(0.5)
        if not receiver.arrivals:
            raise RuntimeError(f"no webhook arrived; see {worker.log.name}")
        n = int(args.rate * args.latency_seconds)
        start = time.perf_counter()
        for k in range(n):
            target = start + k / args.rate
            delay = target - time.perf_counter()
            if delay > 0:
                time.sleep(delay)
            d = _detection(k, 1, time.time(), "lat")
            sent[d.detection_id] = time.time()
            producer.produce(worker.topics.detections, key=dedup_region(d.grid_code), value=d.to_json())
            producer.poll(0)
        producer.flush(30)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and sum(1 for k in sent if k in receiver.arrivals) < n:
            time.sleep(0.2)
        lat = [(receiver.arrivals[k] - t) * 1000 for k, t in sent.items() if k in receiver.arrivals]
        return {
            "rate": args.rate,
            "sent": n,
            "delivered": len(lat),
            "p50_ms": round(percentile(lat, 50), 1),
            "p99_ms": round(percentile(lat, 99), 1),
            "max_ms": round(max(lat), 1) if lat else None,
        }
    finally:
        worker.stop()
        receiver.server.shutdown()


def run(args: argparse.Namespace, settings: Settings) -> int:
    say = stack.progress_printer()
    states = stack.up(settings, say, only=["kafka", "postgresql"] if not args.skip_stage else ["postgresql"])
    if not all(s.health.ok for s in states):
        print("gridsentinel bench cases: the stack is not healthy", file=sys.stderr)
        return 1
    tmp = Path(tempfile.mkdtemp(prefix="gs-bench-cases-"))
    dbs = _Databases(settings, tmp)
    result: dict[str, Any] = {
        "detections": args.detections,
        "per_case": args.per_case,
        "concurrency": args.concurrency,
        "batch_size": args.batch_size,
        "store": {},
        "stage": {},
    }
    try:
        for backend in args.backends:
            say(f"store phase on {backend}: {args.detections} detections, {args.concurrency} writers")
            result["store"][backend] = asyncio.run(_store_phase(dbs.url(backend), settings, args))
            if not args.skip_stage:
                say(f"stage phase on {backend} (Faust worker)")
                result["stage"][backend] = _stage_phase(settings, tmp, dbs.url(backend), args, say)
        if not args.skip_stage and "postgresql" in args.backends:
            say(f"latency phase on postgresql: {args.rate}/s for {args.latency_seconds}s")
            result["latency"] = _latency_phase(settings, tmp, dbs.url("postgresql"), args, say)
    finally:
        dbs.drop()
        shutil.rmtree(tmp, ignore_errors=True)
    lines = [
        f"{phase} {backend}: {r['detections_per_s']} detections/s"
        for phase in ("store", "stage")
        for backend, r in result[phase].items()
    ]
    if "latency" in result:
        lat = result["latency"]
        lines.append(
            f"detection -> webhook at {lat['rate']}/s: p50 {lat['p50_ms']} ms, p99 {lat['p99_ms']} ms "
            f"({lat['delivered']}/{lat['sent']} delivered)"
        )
    emit(result, args.json, "\n".join(lines))
    return 0
