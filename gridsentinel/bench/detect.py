"""`gridsentinel bench detect`: readings/s through the detection stage (one worker), and the limit measured
in the same run: the readings-only Faust consume rate (one worker whose agent only decodes and acks).

Both phases read the same pre-produced backlog of N readings (``--devices`` cover-tilt and drain devices,
one reading per device every 10 s of event time, a few incidents planted) from their own topics, with
their own consumer group, in a worker subprocess; the rate is taken from the worker's own counters
between its first and its last processed reading (start-up and recovery excluded).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path
from typing import Any

import yaml
from confluent_kafka import Producer

from gridsentinel.core.records import Reading
from gridsentinel.core.topics import Topics, ensure_topics

from .. import stack
from ..settings import REPO_ROOT, Settings
from .common import drop_topics, emit

LOCATION = {"lat": 31.87225, "lon": 120.55053}
PARTITIONS = 4


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--readings", type=int, default=50_000,
                        help="readings in the backlog (default 50000)")
    parser.add_argument("--devices", type=int, default=200,
                        help="devices the readings spread over (default 200)")
    parser.add_argument("--timeout", type=float, default=600.0,
                        help="give up a phase after this (default 600 s)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


def _backlog(n: int, devices: list[tuple[str, str]], t0: float) -> list[Reading]:
    rng = random.Random(42)
    out: list[Reading] = []
    rounds = -(-n // len(devices))
    for k in range(rounds):
        for device, kind in devices:
            if len(out) == n:
                return out
            t = t0 + 10.0 * k
            if kind == "cover_tilt":  # a cover in twenty gets knocked over for a while
                value = 35.0 if zlib.crc32(device.encode()) % 20 == 0 and 30 <= k < 60 else rng.uniform(0, 2)
                out.append(Reading(device, "tilt", "deg", round(value, 2), t, seq=k, kind=kind))
            else:
                out.append(Reading(device, "water_level", "m", round(0.5 + rng.uniform(-0.02, 0.02), 3), t,
                                   seq=k, kind=kind))
    return out


def _phase(settings: Settings, config_dir: Path, workdir: Path, mode: str, readings: list[Reading],
           timeout: float) -> dict[str, Any]:
    tag = f"bd{mode[0]}{int(time.time() * 1000) % 10**9}"
    prefix, app_id = f"{tag}.", f"gs-{tag}"
    names = Topics(prefix)
    ensure_topics(settings.kafka_bootstrap, [names.readings, names.detections, names.deadletter], PARTITIONS)
    producer = Producer({"bootstrap.servers": settings.kafka_bootstrap, "linger.ms": 20,
                         "batch.num.messages": 10000, "queue.buffering.max.messages": 500000})
    for r in readings:
        producer.produce(names.readings, key=r.device_id.encode(), value=r.to_json())
        producer.poll(0)
    producer.flush(120)
    stats = workdir / f"{mode}.stats.json"
    env = {**os.environ, "GS_TOPIC_PREFIX": prefix, "GS_CONFIG_DIR": str(config_dir)}
    log = open(workdir / f"{mode}.log", "wb")  # closed below
    proc = subprocess.Popen([sys.executable, "-m", "gridsentinel.bench.detect", "--child", mode, app_id,
                             str(stats)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=REPO_ROOT)
    samples: list[tuple[float, int]] = []
    detections = None
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"{mode} worker exited: {(workdir / f'{mode}.log').read_text()[-2000:]}")
            try:
                body = json.loads(stats.read_text())
            except (OSError, ValueError):
                body = {}
            if body and (not samples or body["time"] != samples[-1][0]):
                detect = body.get("detect") or {}
                samples.append((body["time"], int(body.get("count", detect.get("readings", 0)))))
                detections = detect.get("detections_sent")
                if samples[-1][1] >= len(readings):
                    break
            time.sleep(0.2)
        else:
            raise RuntimeError(f"{mode}: not all {len(readings)} readings processed in {timeout:.0f} s")
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()  # gone before its topics are deleted (the broker would create them again)
        log.close()
        drop_topics(settings.kafka_bootstrap, prefix, app_id)
    started = next((t, c) for t, c in samples if c > 0)
    seconds = samples[-1][0] - started[0]
    counted = samples[-1][1] - started[1]
    return {"readings": len(readings), "seconds": round(seconds, 2),
            "readings_per_s": round(counted / seconds, 1) if seconds > 0 else None,
            "detections": detections}


def run(args: argparse.Namespace, settings: Settings) -> int:
    if getattr(args, "child", None):
        return _child(settings, *args.child)
    say = stack.progress_printer()
    stack.up(settings, say)
    tmp = Path(tempfile.mkdtemp(prefix="gs-bench-detect-"))
    try:
        config_dir = tmp / "config"
        shutil.copytree(settings.config_dir, config_dir)
        devices = [(f"bench-cover-{i:04d}" if i % 2 else f"bench-drain-{i:04d}",
                    "cover_tilt" if i % 2 else "drain_level") for i in range(args.devices)]
        data = yaml.safe_load((config_dir / "devices.yaml").read_text())
        data["devices"] += [{"id": d, "kind": k, "location": LOCATION, "expected_interval_s": 86400,
                             **({"install": {"depth_m": 3.0, "rim_m": 3.0}} if k == "drain_level" else {})}
                            for d, k in devices]
        (config_dir / "devices.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        readings = _backlog(args.readings, devices, time.time() - 10.0 * (args.readings // args.devices + 1))
        say(f"baseline: {len(readings)} readings, decode-and-ack agent")
        baseline = _phase(settings, config_dir, tmp, "baseline", readings, args.timeout)
        say(f"detect: {len(readings)} readings through the detection stage")
        detect = _phase(settings, config_dir, tmp, "detect", readings, args.timeout)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    share = (detect["readings_per_s"] / baseline["readings_per_s"]
             if detect["readings_per_s"] and baseline["readings_per_s"] else None)
    result = {"bench": "detect", "workers": 1, "partitions": PARTITIONS, "devices": args.devices,
              "detect": detect, "readings_only_limit": baseline,
              "share_of_limit": round(share, 3) if share is not None else None}
    render = (f"detect: {detect['readings_per_s']} readings/s per worker "
              f"(readings-only Faust limit {baseline['readings_per_s']}/s"
              + (f", {share:.0%} of it" if share is not None else "") + f"; {args.readings} readings, "
              f"{args.devices} devices, {PARTITIONS} partitions, {detect['detections']} detections)")
    emit(result, args.json, render)
    return 0


def _child(settings: Settings, mode: str, app_id: str, stats_path: str) -> int:
    """The worker of one phase: ``detect`` (the real stage) or ``baseline`` (decode and ack only)."""
    import faust

    from gridsentinel.streams.context import WorkerOptions
    from gridsentinel.worker.app import _atomic_write, create_app
    from gridsentinel.worker.stages import build_stages

    if mode == "detect":  # the real stage; the app writes its counters to the stats file each second
        options = WorkerOptions(app_id=app_id, stats_file=stats_path)
        app = create_app(settings, options, build_stages(settings, options, ["detect"]))
    else:
        app = create_app(settings, WorkerOptions(app_id=app_id))
        counter = {"count": 0}
        topic = app.topic(Topics(settings.topic_prefix).readings, partitions=PARTITIONS)

        @app.agent(topic, name=f"{app_id}.baseline")
        async def baseline(stream: faust.StreamT[Any]) -> None:
            async for value in stream:
                Reading.from_json(value)
                counter["count"] += 1

        @app.timer(1.0)
        async def write_stats() -> None:
            _atomic_write(stats_path, json.dumps({"time": time.time(), "count": counter["count"]}))

    worker = app.Worker(loglevel="warning", quiet=True, redirect_stdouts=False)
    worker.spinner = None  # as the stage's worker (worker/command.py): the root logger stays at WARNING
    worker.execute_from_commandline()
    return 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--child", nargs=3, metavar=("MODE", "APP_ID", "STATS"))
    add_arguments(parser)
    sys.exit(run(parser.parse_args(), Settings()))
