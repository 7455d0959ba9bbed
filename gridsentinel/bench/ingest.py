"""`gridsentinel bench ingest`: readings/s from Kafka into InfluxDB (the ingest stage against a raw loop),
from MQTT into Kafka (gateway alone) and into InfluxDB (end to end), with the limits measured in the same
run, plus publish->InfluxDB latency at a steady rate.

Phases (each on its own topics, bucket and MQTT session, all against the real local stack):

0. ingest: N readings preloaded in a topic of their own; the raw limit (``bench/ingest_raw.py``, a tight
   loop in its own process, run before and after the stage: the better run counts), then the ingest
   stage (``worker --stages ingest``) once per ``--workers`` count, each into a fresh bucket; with
   ``--ingest-only`` the run ends here;
1. broker limit: N messages queued for an offline ``mosquitto_sub`` session, then drained by it;
2. Kafka limit: N reading-sized records produced raw with the gateway's producer settings;
3. gateway alone: N messages queued for the offline gateway, then drained into Kafka;
4. end to end: gateway + worker running, N messages published as fast as the publishers go, until
   the worker reports all N points written to InfluxDB;
5. latency: a paced publisher at ``--latency-rate`` readings/s; p50/p99 of event time -> written.

Before the latency phase the bench waits until everything published earlier is through the gateway and
written, so the phase's histogram holds only its own readings. A probe times a QoS 1 publish to the
broker every 10 ms throughout: Mosquitto answers nobody while it saves its persistence file
(``autosave_interval``), and the pauses it finds in a phase are reported with that phase.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import yaml
from confluent_kafka import Consumer, Producer, TopicPartition

from gridsentinel.core.topics import Topics

from .. import stack
from ..children import Children
from ..gateway.service import drop_session
from ..settings import Settings
from ..stack.services import InfluxDB, Kafka, Mosquitto, mosquitto_tool
from .common import PARTITIONS, CpuMeter, drop_topics, emit, first_child, percentile, worker_counts


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--messages", type=int, default=100_000, help="messages per throughput phase (default 100000)")
    parser.add_argument("--devices", type=int, default=10, help="publishing devices (default 10)")
    parser.add_argument("--latency-rate", type=float, default=1000.0,
                        help="readings/s for the latency phase (default 1000)")
    parser.add_argument("--latency-seconds", type=float, default=20.0, help="latency phase length (default 20)")
    parser.add_argument("--workers", type=worker_counts, default=[1], metavar="N[,N...]",
                        help="worker processes: the ingest-stage phase runs once per count (a scaling table, e.g. "
                             "1,2,4; at most the topic's 4 partitions); the end-to-end and latency phases use the "
                             "first count (default 1)")
    parser.add_argument("--ingest-only", action="store_true",
                        help="only the ingest phases (raw Kafka -> InfluxDB limit, then the ingest stage), no MQTT")
    parser.add_argument("--peer", choices=["telegraf"], default=None,
                        help="also run the same MQTT load through Telegraf into Kafka and into InfluxDB, after the "
                             "other phases, and print our figures against it (needs a telegraf binary: "
                             "scripts/telegraf.sh, or GS_TELEGRAF)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")


class Bench:
    def __init__(self, settings: Settings, args: argparse.Namespace) -> None:
        self.args = args
        self.say = stack.progress_printer()
        self.tag = f"bench{int(time.time())}"
        self.tmp = Path(tempfile.mkdtemp(prefix="gs-bench-"))
        config_dir = self.tmp / "config"
        shutil.copytree(settings.config_dir, config_dir)
        self.devices = [f"{self.tag}-d{i:03d}" for i in range(args.devices)]
        data = yaml.safe_load((config_dir / "devices.yaml").read_text())
        data["devices"] += [{"id": d, "kind": "drain_level", "location": {"lat": 31.8718, "lon": 120.5511},
                             "expected_interval_s": 60, "install": {"depth_m": 3.0, "rim_m": 3.0}}
                            for d in self.devices]
        (config_dir / "devices.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
        self.settings = settings.with_(config_dir=config_dir, topic_prefix=f"{self.tag}.",
                                       influx_bucket=self.tag, mqtt_share_group=self.tag,
                                       mqtt_session_expiry_s=600)
        self.topics = Topics(self.settings.topic_prefix)
        self.children = Children(self.tmp / "logs", env={
            "GS_CONFIG_DIR": str(config_dir), "GS_TOPIC_PREFIX": self.settings.topic_prefix,
            # several workers (and a machine's other gateways): no /metrics listeners in the benchmark
            "GS_GATEWAY_METRICS_PORT": "0", "GS_WORKER_METRICS_PORT": "0",
            "GS_INFLUX_BUCKET": self.tag, "GS_MQTT_SHARE_GROUP": self.tag, "GS_MQTT_SESSION_EXPIRY": "600"})
        self.gateway_id = f"{self.tag}-gw"
        self.worker_names = ["worker" if i == 0 else f"worker{i + 1}" for i in range(args.workers[0])]
        self.stats_files = [self.tmp / f"{name}-stats.json" for name in self.worker_names]
        self.gateway_stats_file = self.tmp / "gateway-stats.json"
        self.to_gateway = 0  # messages published for the (second) gateway process to take
        self.probe = BrokerProbe(self.settings, f"{self.tag}-probe", f"{self.tag}/probe")
        self.buckets: list[str] = []  # made by the ingest phases, dropped by cleanup()

    # -- helpers ----------------------------------------------------------------------------------
    def _payload_lines(self, device: str, count: int, start_seq: int, distinct_ts: bool = False) -> bytes:
        """``count`` JSON readings; with ``distinct_ts`` each has its own time (1 ms apart, ending now), so a
        store keyed by time (InfluxDB, for the Telegraf peer) keeps every one."""
        now = time.time()
        step = 0.001 if distinct_ts else 0.0
        return "".join(json.dumps({"ts": round(now - (count - i) * step, 3), "seq": start_seq + i,
                                   "metrics": {"water_level_m": round(0.5 + (i % 100) / 1000, 3)}},
                                  separators=(",", ":")) + "\n" for i in range(count)).encode()

    def publish_all(self, total: int, start_seq: int, distinct_ts: bool = False) -> float:
        """Publish ``total`` QoS 1 messages split over the devices with mosquitto_pub; returns seconds."""
        per = total // len(self.devices)
        procs = []
        pub = mosquitto_tool(self.settings, "mosquitto_pub")
        t0 = time.monotonic()
        for d in self.devices:
            p = subprocess.Popen([pub, "-h", self.settings.mqtt_host, "-p", str(self.settings.mqtt_port),
                                  "-u", d, "-P", self.settings.device_password(d), "-i", f"{d}-pub",
                                  "-V", "mqttv5", "-q", "1", "-M", "1000", "-t", f"gs/v1/{d}/telemetry", "-l"],
                                 stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            procs.append((p, self._payload_lines(d, per, start_seq, distinct_ts)))
        threads = [threading.Thread(target=p.communicate, args=(lines,)) for p, lines in procs]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        failed = [p.stderr.read().decode() if p.stderr else "" for p, _ in procs if p.returncode]
        if failed:
            raise RuntimeError(f"mosquitto_pub failed: {failed[0][:300]}")
        return time.monotonic() - t0

    def kafka_count(self, topic: str) -> int:
        consumer = Consumer({"bootstrap.servers": self.settings.kafka_bootstrap, "group.id": f"{self.tag}-wm"})
        try:
            md = consumer.list_topics(topic, timeout=5)
            parts = md.topics[topic].partitions if topic in md.topics else {}
            return sum(consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=5)[1] for p in parts)
        finally:
            consumer.close()

    def worker_stats(self) -> dict[str, Any]:
        """The workers' counters added up (histograms bucket by bucket)."""
        total: dict[str, Any] = {}
        for stats in map(_read_json, self.stats_files):
            for key, value in stats.items():
                if isinstance(value, list):
                    old = total.get(key)
                    total[key] = [a + b for a, b in zip(old, value, strict=True)] if old else list(value)
                elif isinstance(value, int):
                    total[key] = total.get(key, 0) + value
        return total

    def pids(self) -> dict[str, int]:
        out = {name: proc.pid for name, proc in self.children.procs.items()}
        for name in self.worker_names:  # `gridsentinel worker` supervises: the Faust app runs in its child
            child = first_child(out[name]) if name in out else None
            if child:
                out[name] = child
        for svc in (Mosquitto(self.settings), Kafka(self.settings), InfluxDB(self.settings)):
            pid = svc.proc.pid()
            if pid:
                out[svc.name] = pid
        return out

    # -- phases -----------------------------------------------------------------------------------
    def broker_limit(self, n: int) -> dict[str, float]:
        sub_id = f"{self.tag}-sub"
        base = [mosquitto_tool(self.settings, "mosquitto_sub"), "-h", self.settings.mqtt_host,
                "-p", str(self.settings.mqtt_port), "-u", "gateway", "-P", self.settings.gateway_password,
                "-V", "mqttv5", "-q", "1", "-c", "-i", sub_id, "-x", "600",
                "-t", f"$share/{self.tag}-sub/gs/v1/+/telemetry"]
        subprocess.run([*base, "-E"], check=True, capture_output=True, timeout=30)
        publish_s = self.publish_all(n, 0)
        t0 = time.monotonic()
        subprocess.run([*base, "-C", str(n)], check=True, stdout=subprocess.DEVNULL, timeout=600)
        drain_s = time.monotonic() - t0
        drop_session(self.settings, sub_id)
        return {"publish_per_s": round(n / publish_s), "mosquitto_sub_per_s": round(n / drain_s)}

    def kafka_limit(self, n: int) -> dict[str, float]:
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap, "acks": "all",
                             "enable.idempotence": True, "linger.ms": 5, "batch.num.messages": 10000,
                             "compression.type": "lz4", "queue.buffering.max.messages": 200000})
        value = (b'{"device_id":"bench-d000","metric":"water_level","unit":"m","value":0.512,'
                 b'"observed_at":1780000000.123,"seq":1,"received_at":1780000000.2,"kind":"drain_level",'
                 b'"grid_code":"320582004001001"}')
        topic = f"{self.tag}.raw"
        t0 = time.monotonic()
        for i in range(n):
            while True:
                try:
                    producer.produce(topic, value=value, key=self.devices[i % len(self.devices)])
                    break
                except BufferError:
                    producer.poll(0.01)
            if i % 1000 == 0:
                producer.poll(0)
        producer.flush(120)
        return {"kafka_produce_per_s": round(n / (time.monotonic() - t0))}

    def gateway_alone(self, n: int) -> dict[str, Any]:
        gw = self.children.start("gateway", "gateway", "--client-id", self.gateway_id)
        self.children.wait_log("gateway", " ready: ")
        gw.terminate()
        gw.wait(30)
        del self.children.procs["gateway"]
        self.publish_all(n, 1_000_000)  # queued by the broker for the gateway's session
        self.to_gateway += n - n % len(self.devices)
        before = self.kafka_count(self.topics.readings)
        self.children.start("gateway", "gateway", "--client-id", self.gateway_id,
                            "--stats-file", str(self.gateway_stats_file))
        meter = CpuMeter({"gateway": self.children.procs["gateway"].pid, **{k: v for k, v in self.pids().items()
                                                                          if k == "mosquitto"}})
        first_t = None
        first_n = 0
        meter.start()
        deadline = time.monotonic() + 600
        while True:
            count = self.kafka_count(self.topics.readings) - before
            now = time.monotonic()
            if count > 0 and first_t is None:
                first_t, first_n = now, count
            if count >= n or now > deadline:
                break
            self.children.check()
            time.sleep(0.05)
        usage = meter.stop()
        rate = (count - first_n) / max(1e-9, now - (first_t or now))
        return {"gateway_per_s": round(rate), "gateway_delivered": count, "usage": usage}

    def end_to_end(self, n: int, backlog: int) -> dict[str, Any]:
        for name, stats_file in zip(self.worker_names, self.stats_files, strict=True):
            self.children.start(name, "worker", "--app-id", f"{self.tag}-w", "--bucket", self.tag,
                                "--stats-file", str(stats_file))
        # Warm the worker up on the gateway phase's readings before timing.
        base_points = self._wait_points(lambda p: p >= backlog, 600)
        meter = CpuMeter(self.pids())
        meter.start()
        t0 = time.monotonic()
        publish_s = self.publish_all(n, 2_000_000)
        self.to_gateway += n - n % len(self.devices)
        target = base_points + n
        self._wait_points(lambda p: p >= target, 600)
        t1 = time.monotonic()
        elapsed = t1 - t0
        stalls = self.probe.stalls(t0, t1)
        usage = meter.stop()
        return {"end_to_end_per_s": round(n / elapsed), "usage": usage,
                # the pipeline's processes' CPU per reading (the services' too: Kafka, InfluxDB, Mosquitto)
                "end_to_end_cpu_us_per_reading": {name: round(u["cpu_cores"] * elapsed / n * 1e6, 1)
                                                  for name, u in usage.items()},
                "end_to_end_publish_per_s": round(n / publish_s),
                "end_to_end_broker_stalls": len(stalls),
                "end_to_end_broker_stall_s": round(sum(b - a for a, b in stalls), 2),
                # the same run with the broker's pauses taken out: what the pipeline does while it can
                "end_to_end_per_s_outside_stalls": round(n / max(1e-9, elapsed - sum(b - a for a, b in stalls)))}

    def end_to_end_drain(self, n: int) -> dict[str, Any]:
        """End to end as the gateway-alone and Telegraf phases measure: ``n`` messages queued by the broker
        for the gateway's session while it is stopped, then drained by the gateway and the worker (both
        running, nothing else) into InfluxDB; rate = points from the first to the last. The live phase's
        ten ``mosquitto_pub`` processes share the 2 cores with the pipeline while they publish, so its rate
        is partly theirs; this one compares like with like."""
        gw = self.children.procs.pop("gateway")
        gw.terminate()
        gw.wait(30)
        # queued for the gateway's persistent session; seqs below the latency phase's (3,000,000 on)
        self.publish_all(n, 2_500_000)
        n -= n % len(self.devices)  # what publish_all sent
        self.to_gateway = n  # what the new gateway process acks (its counters start at 0)
        before, _, _ = self._points_snapshot()
        self.children.start("gateway", "gateway", "--client-id", self.gateway_id,
                            "--stats-file", str(self.gateway_stats_file))
        meter = CpuMeter(self.pids())
        meter.start()
        # Timed by the workers' stats snapshots themselves (each written once a second with its wall time),
        # over the snapshots taken while the backlog drained (0 < points < n): a count read at poll time is
        # up to a second older than the poll, and the snapshot that shows the last points was written up to
        # a second after them, on a phase of a few seconds.
        inside: list[tuple[int, float]] = []
        deadline = time.monotonic() + 600
        while True:
            points, oldest, newest = self._points_snapshot()
            count = points - before
            if 0 < count < n and (not inside or inside[-1][1] != newest):
                inside.append((count, oldest))
            if count >= n or time.monotonic() > deadline:
                break
            self.children.check()
            time.sleep(0.05)
        usage = meter.stop()
        if len(inside) >= 2:
            (first_n, first_t), (last_n, last_t) = inside[0], inside[-1]
        else:  # drained within a second: from the first snapshot (or the start) to the last
            first_n, first_t = inside[0] if inside else (0, newest - 1.0)
            last_n, last_t = count, newest
        elapsed = max(1e-9, last_t - first_t)
        drained = max(1, last_n - first_n)
        return {"end_to_end_drain_per_s": round(drained / elapsed),
                "end_to_end_drain_snapshots": len(inside),
                "end_to_end_drain_cpu_us_per_reading": {name: round(u["cpu_cores"] * elapsed / drained * 1e6, 1)
                                                        for name, u in usage.items()},
                "usage": usage}

    def _points_snapshot(self) -> tuple[int, float, float]:
        """Points written by the workers, and the oldest and newest wall time of their stats files."""
        snapshots = [_read_json(f) for f in self.stats_files]
        times = [float(st.get("time", 0.0)) for st in snapshots] or [0.0]
        return sum(int(st.get("points_written", 0)) for st in snapshots), min(times), max(times)

    def _wait_points(self, ok: Any, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while True:
            points = int(self.worker_stats().get("points_written", 0))
            if ok(points):
                return points
            if time.monotonic() > deadline:
                raise RuntimeError(f"worker wrote only {points} points; see {self.children.log_dir}")
            self.children.check()
            time.sleep(0.1)

    def _wait_quiet(self, quiet_s: float = 2.5, timeout: float = 120) -> None:
        """Wait until the worker has written nothing for ``quiet_s`` (the stats file lags up to 1 s), so
        the latency phase's histogram holds only its own readings, not a late tail of the last phase."""
        deadline = time.monotonic() + timeout
        last, since = -1, time.monotonic()
        while time.monotonic() < deadline:
            points = int(self.worker_stats().get("points_written", 0))
            if points != last:
                last, since = points, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return
            time.sleep(0.1)

    def _wait_drained(self, timeout: float = 300) -> None:
        """Wait until the gateway has taken and acked every message published for it and the worker
        has written every record in the readings topic (a broker pause can hold a tail of them back for
        seconds, longer than any "quiet" interval): then the latency phase sees only its own readings."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            gw = _read_json(self.gateway_stats_file)
            if int(gw.get("acked", 0)) >= self.to_gateway and gw.get("kafka_queue", 1) == 0:
                break
            self.children.check()
            time.sleep(0.1)
        else:
            raise RuntimeError(f"the gateway did not take all {self.to_gateway} messages; see {self.children.log_dir}")
        records = self.kafka_count(self.topics.readings)
        self._wait_points(lambda p: p >= records, timeout)

    def latency(self, rate: float, seconds: float) -> dict[str, Any]:
        self._wait_drained()
        self._wait_quiet()
        before = self.worker_stats()["latency_ms_hist"]
        before_gw = self.worker_stats().get("gateway_to_influx_ms_hist")
        points0 = int(self.worker_stats()["points_written"])
        clients = []
        for d in self.devices:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"{d}-lat", protocol=mqtt.MQTTv5)
            c.username_pw_set(d, self.settings.device_password(d))
            c.max_inflight_messages_set(1000)
            c.connect(self.settings.mqtt_host, self.settings.mqtt_port)
            c.loop_start()
            clients.append((d, c))
        total = int(rate * seconds)
        t0 = time.monotonic()
        for i in range(total):
            target = t0 + i / rate
            delay = target - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            d, c = clients[i % len(clients)]
            c.publish(f"gs/v1/{d}/telemetry", json.dumps({"ts": time.time(), "seq": 3_000_000 + i,
                                                          "metrics": {"water_level_m": 0.7}}), qos=1)
        achieved = total / (time.monotonic() - t0)
        self._wait_points(lambda p: p >= points0 + total, 120)
        stalls = self.probe.stalls(t0, time.monotonic())
        time.sleep(1.2)  # the stats file is rewritten every second
        after = self.worker_stats()["latency_ms_hist"]
        after_gw = self.worker_stats().get("gateway_to_influx_ms_hist")
        for _, c in clients:
            c.loop_stop()
            c.disconnect()
        samples = _hist_samples(before, after)
        out = {"latency_rate_per_s": round(achieved), "latency_p50_ms": percentile(samples, 50),
               "latency_p99_ms": percentile(samples, 99), "latency_max_ms": max(samples, default=float("nan")),
               "latency_samples": len(samples),
               # > 0: points written in this phase that it did not publish (late or repeated earlier ones)
               "latency_extra_samples": len(samples) - total,
               "latency_p99_own_ms": percentile(sorted(samples)[:total], 99),
               "latency_broker_stalls": len(stalls),
               "latency_broker_stall_max_ms": round(1000 * max((b - a for a, b in stalls), default=0.0))}
        if before_gw and after_gw:  # where the time goes: device -> gateway, gateway -> InfluxDB
            gw = _hist_samples(before_gw, after_gw)
            out.update({"gateway_to_influx_p50_ms": percentile(gw, 50), "gateway_to_influx_p99_ms": percentile(gw, 99)})
        return out

    # -- ingest stage vs raw limit ------------------------------------------------------------------
    def preload_readings(self, n: int) -> str:
        """``n`` readings as the gateway writes them, in a readings topic of their own (4 partitions)."""
        from gridsentinel.core.records import Reading
        from gridsentinel.core.topics import ensure_topics

        topic = Topics(f"{self.tag}.ingest.").readings
        ensure_topics(self.settings.kafka_bootstrap, [topic], PARTITIONS)
        producer = Producer({"bootstrap.servers": self.settings.kafka_bootstrap, "acks": "all",
                             "linger.ms": 5, "batch.num.messages": 10000, "compression.type": "lz4",
                             "queue.buffering.max.messages": 200000})
        base = time.time() - 3600
        for i in range(n):
            device = self.devices[i % len(self.devices)]
            value = Reading(device_id=device, metric="water_level", unit="m", value=round(0.5 + (i % 1000) / 1000, 3),
                            observed_at=round(base + i / 1000, 3), seq=i, received_at=round(base + i / 1000 + 0.01, 3),
                            kind="drain_level", grid_code="320582004001001").to_json()
            while True:
                try:
                    producer.produce(topic, key=device.encode(), value=value)
                    break
                except BufferError:
                    producer.poll(0.01)
        producer.flush(120)
        return topic

    def _bucket(self, name: str) -> str:
        from influxdb_client import InfluxDBClient

        with InfluxDBClient(url=self.settings.influx_url, token=self.settings.influx_token,
                            org=self.settings.influx_org) as c:
            c.buckets_api().create_bucket(bucket_name=name, org=self.settings.influx_org)
        self.buckets.append(name)
        return name

    def raw_ingest(self, topic: str, n: int) -> dict[str, Any]:
        """The raw limit: ``bench/ingest_raw.py`` in a process of its own, into a fresh bucket."""
        bucket = self._bucket(f"{self.tag}-raw{len(self.buckets)}")
        out = subprocess.run(
            [sys.executable, "-m", "gridsentinel.bench.ingest_raw", "--bootstrap", self.settings.kafka_bootstrap,
             "--topic", topic, "--count", str(n), "--url", self.settings.influx_url, "--org", self.settings.influx_org,
             "--bucket", bucket], capture_output=True, text=True, timeout=600,
            env={**os.environ, "GS_BENCH_INFLUX_TOKEN": self.settings.influx_token})
        if out.returncode:
            raise RuntimeError(f"the raw ingest loop failed: {out.stderr[-1000:]}")
        raw: dict[str, Any] = json.loads(out.stdout)
        raw["cpu_us_per_reading"] = round(raw["cpu_s"] / max(1, raw["records"]) * 1e6, 1)
        return raw

    def ingest_stage(self, n: int, workers: int) -> dict[str, Any]:
        """The ingest stage alone (``gridsentinel worker --stages ingest``, ``workers`` processes of one consumer
        group) on the preloaded readings, into a fresh bucket: first record taken -> last batch stored."""
        run = len([b for b in self.buckets if b.startswith(f"{self.tag}-w")])
        bucket = self._bucket(f"{self.tag}-w{run}")
        names = [f"ingest{run}-{i}" for i in range(workers)]
        files = [self.tmp / f"{name}-stats.json" for name in names]
        env = {"GS_TOPIC_PREFIX": f"{self.tag}.ingest.", "GS_INFLUX_BUCKET": bucket}
        for name, stats_file in zip(names, files, strict=True):
            self.children.start(name, "worker", "--app-id", f"{self.tag}-i{run}", "--bucket", bucket,
                                "--stages", "ingest", "--stats-file", str(stats_file), env=env)
        pids: dict[str, int] = {}
        deadline = time.monotonic() + 120
        while len(pids) < workers:  # the app runs in the supervised child: meter that one
            for name in names:
                child = first_child(self.children.procs[name].pid)
                if child:
                    pids[name] = child
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ingest workers did not start; see {self.children.log_dir}")
            time.sleep(0.05)
        meter = CpuMeter(pids)
        meter.start()
        deadline = time.monotonic() + 600
        while True:
            stats = [_read_json(f) for f in files]
            written = sum(int(s.get("points_written", 0)) for s in stats)
            if written >= n:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"the ingest stage wrote only {written} of {n}; see {self.children.log_dir}")
            self.children.check()
            time.sleep(0.05)
        time.sleep(1.1)  # the stats files are rewritten every second: the last batch's times
        stats = [_read_json(f) for f in files]
        usage = meter.stop()
        procs = [self.children.procs.pop(name) for name in names]
        for proc in procs:
            proc.terminate()
        deadline = time.monotonic() + 60
        for name, proc in zip(names, procs, strict=True):
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:  # measured already: do not let a slow shutdown sink the run
                print(f"warning: {name} did not stop within 60 s of SIGTERM; killed", file=sys.stderr, flush=True)
                proc.kill()
                proc.wait()
        first = min(s["ingest_first_taken_at"] for s in stats if s.get("ingest_first_taken_at"))
        last = max(s.get("ingest_last_stored_at", 0.0) for s in stats)
        seconds = max(1e-9, last - first)
        # the workers' own CPU from their first batch taken to their last stored (start-up not counted)
        cpu_s = sum(float(s.get("ingest_cpu_s_taken_to_stored", 0.0)) for s in stats)
        return {"workers": workers, "per_s": round(n / seconds), "seconds": round(seconds, 3),
                "cpu_us_per_reading": round(cpu_s / n * 1e6, 1), "usage": usage}

    def cleanup(self) -> None:
        self.children.stop_all()
        drop_session(self.settings, self.gateway_id)
        drop_topics(self.settings.kafka_bootstrap, self.settings.topic_prefix, self.tag)
        from influxdb_client import InfluxDBClient

        with InfluxDBClient(url=self.settings.influx_url, token=self.settings.influx_token,
                            org=self.settings.influx_org) as c:
            for name in [self.tag, *self.buckets]:
                bucket = c.buckets_api().find_bucket_by_name(name)
                if bucket:
                    c.buckets_api().delete_bucket(bucket)
        shutil.rmtree(self.tmp, ignore_errors=True)


class BrokerProbe:
    """Times a QoS 1 publish to the broker every ``period_s`` to its PUBACK, and keeps the pauses.

    A pause is a stretch in which some probe message waited longer than ``threshold_s``; Mosquitto
    serves one connection at a time in one thread, so a pause stalls every publisher and subscriber.
    """

    def __init__(self, settings: Settings, client_id: str, topic: str, *, period_s: float = 0.01,
                 threshold_s: float = 0.25) -> None:
        self.period_s = period_s
        self.threshold_s = threshold_s
        self._topic = topic
        self._client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        self._client.username_pw_set("gateway", settings.gateway_password)
        self._client.max_inflight_messages_set(0)  # no client-side queue: a pause shows as waiting acks
        self._address = (settings.mqtt_host, settings.mqtt_port)
        self._pauses: list[tuple[float, float]] = []
        self._pending: list[tuple[float, Any]] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="broker-probe", daemon=True)

    def start(self) -> None:
        self._client.connect(*self._address)
        self._client.loop_start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self._client.disconnect()
        self._client.loop_stop()

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            info = self._client.publish(self._topic, b"p", qos=1)
            now = time.monotonic()
            with self._lock:
                self._pending.append((now, info))
                still = []
                for sent, pending in self._pending:
                    if pending.is_published():
                        if now - sent > self.threshold_s:
                            self._pauses.append((sent, now))
                    else:
                        still.append((sent, pending))
                self._pending = still

    def stalls(self, t0: float, t1: float) -> list[tuple[float, float]]:
        """The broker's pauses within [t0, t1] (clipped and merged), a pause still going included."""
        with self._lock:
            spans = list(self._pauses)
            if self._pending and t1 - self._pending[0][0] > self.threshold_s:
                spans.append((self._pending[0][0], t1))
        return merge_spans([(max(a, t0), min(b, t1)) for a, b in spans if b > t0 and a < t1])


def merge_spans(spans: list[tuple[float, float]]) -> list[tuple[float, float]]:
    """Overlapping time spans merged into disjoint ones.

    >>> merge_spans([(5.0, 6.0), (1.0, 3.0), (2.0, 4.0)])
    [(1.0, 4.0), (5.0, 6.0)]
    """
    merged: list[tuple[float, float]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text()))
    except (FileNotFoundError, ValueError):
        return {}


def _hist_samples(before: list[int], after: list[int]) -> list[float]:
    """The samples a 1 ms histogram gained between two snapshots."""
    samples: list[float] = []
    for ms, (a, b) in enumerate(zip(after, before, strict=True)):
        samples.extend([float(ms)] * (a - b))
    return samples


def run(args: argparse.Namespace, settings: Settings) -> int:
    say = stack.progress_printer()
    stack.up(settings, say)
    bench = Bench(settings, args)
    Mosquitto(settings).ensure_devices(bench.devices)
    from influxdb_client import InfluxDBClient

    with InfluxDBClient(url=settings.influx_url, token=settings.influx_token, org=settings.influx_org) as c:
        c.buckets_api().create_bucket(bucket_name=bench.tag, org=settings.influx_org)
    n = args.messages
    result: dict[str, Any] = {"messages": n, "devices": args.devices, "workers": len(bench.worker_names),
                              "worker_counts": args.workers, "cores": os.cpu_count()}
    total = 2 if args.ingest_only else 10 if args.peer else 8
    peer = None
    if args.peer and not args.ingest_only:
        from .telegraf_peer import TelegrafPeer

        peer = TelegrafPeer(bench)  # before any phase: a missing binary stops the run at once
        result["peer"] = {"name": "telegraf", "version": peer.version()}
    bench.probe.start()
    try:
        say(f"1/{total} raw ingest limit: {n} readings preloaded in Kafka, consumed in batches and written as "
            "line protocol by a tight loop")
        topic = bench.preload_readings(n)
        raws = [bench.raw_ingest(topic, n)]
        say(f"    {raws[0]['per_s']}/s ({raws[0]['cpu_us_per_reading']} us CPU per reading, "
            f"{raws[0]['peak_rss_mb']} MB)")
        stages = []
        for workers in args.workers:
            say(f"2/{total} ingest stage, {workers} worker(s): the same {n} readings into a fresh bucket")
            stages.append(bench.ingest_stage(n, workers))
            say(f"    {stages[-1]['per_s']}/s ({stages[-1]['cpu_us_per_reading']} us CPU per reading)")
        # InfluxDB is still digesting the last write when the next phase starts (the stage's first run came
        # right after the raw loop): the raw loop runs again after the stage, and the better run is the limit
        say(f"2/{total} raw ingest limit again, after the stage")
        raws.append(bench.raw_ingest(topic, n))
        say(f"    {raws[1]['per_s']}/s")
        raw = max(raws, key=lambda r: r["per_s"])
        result["ingest_raw"] = {**raw, "runs_per_s": [r["per_s"] for r in raws]}
        for stage in stages:
            stage["vs_raw"] = round(stage["per_s"] / max(1, raw["per_s"]), 2)
            say(f"    stage, {stage['workers']} worker(s): {stage['vs_raw']:.0%} of the raw limit")
        result["ingest_stage"] = stages
        result["ingest_vs_raw"] = stages[0]["vs_raw"]
        if not args.ingest_only:
            say(f"3/{total} broker limit: {n} messages through an offline mosquitto_sub session")
            result.update(bench.broker_limit(n))
            say(f"    publishers {result['publish_per_s']}/s, mosquitto_sub {result['mosquitto_sub_per_s']}/s")
            say(f"4/{total} Kafka limit: {n} raw records")
            result.update(bench.kafka_limit(n))
            say(f"    {result['kafka_produce_per_s']}/s")
            say(f"5/{total} gateway alone: {n} queued messages drained into Kafka")
            gw = bench.gateway_alone(n)
            result["gateway_per_s"] = gw["gateway_per_s"]
            result["gateway_vs_mosquitto_sub"] = round(gw["gateway_per_s"] / result["mosquitto_sub_per_s"], 2)
            result["usage_gateway_phase"] = gw["usage"]
            say(f"    {gw['gateway_per_s']}/s ({result['gateway_vs_mosquitto_sub']:.0%} of mosquitto_sub)")
            say(f"6/{total} end to end: {n} messages published live, until all are in InfluxDB")
            e2e = bench.end_to_end(n, gw["gateway_delivered"])
            result.update({k: v for k, v in e2e.items() if k != "usage"})
            result["usage_end_to_end_phase"] = e2e["usage"]
            say(f"    {e2e['end_to_end_per_s']}/s (broker paused {e2e['end_to_end_broker_stall_s']} s; "
                f"{e2e['end_to_end_per_s_outside_stalls']}/s outside the pauses)")
            say(f"7/{total} end to end, drained: {2 * n} messages queued for the gateway, then drained by the "
                "gateway and the worker into InfluxDB (twice the other phases': a few seconds more to time it by)")
            drain = bench.end_to_end_drain(2 * n)
            result.update({k: v for k, v in drain.items() if k != "usage"})
            result["usage_end_to_end_drain_phase"] = drain["usage"]
            result.update(end_to_end_vs_limit(result))
            say(f"    {drain['end_to_end_drain_per_s']}/s = {result['end_to_end_vs_limit']:.2f} x the slower of "
                f"gateway alone and raw ingest ({result['end_to_end_limit_per_s']}/s; goal >= {E2E_GOAL})")
            say(f"8/{total} latency at {args.latency_rate:.0f} readings/s for {args.latency_seconds:.0f}s")
            result.update(bench.latency(args.latency_rate, args.latency_seconds))
            if peer is not None:
                # our processes stop first: Telegraf gets the machine to itself, as the gateway did
                bench.children.stop_all()
                drop_session(bench.settings, bench.gateway_id)
                say(f"9/{total} peer: Telegraf, {n} queued messages drained into Kafka")
                tk = peer.to_kafka(n)
                say(f"    {tk['per_s']}/s; our gateway {result['gateway_per_s']}/s")
                say(f"10/{total} peer: Telegraf, {n} queued messages drained into InfluxDB")
                ti = peer.to_influxdb(n)
                say(f"    {ti['per_s']}/s; our end to end {result['end_to_end_drain_per_s']}/s drained, "
                    f"{result['end_to_end_per_s']}/s live")
                result["peer"].update({
                    "kafka": tk, "influxdb": ti,
                    "gateway_vs_telegraf_kafka": round(result["gateway_per_s"] / max(1, tk["per_s"]), 2),
                    # like with like: both drain the same queued backlog into InfluxDB
                    "end_to_end_vs_telegraf_influxdb": round(result["end_to_end_drain_per_s"] / max(1, ti["per_s"]),
                                                             2),
                    "end_to_end_live_vs_telegraf_influxdb": round(result["end_to_end_per_s"] / max(1, ti["per_s"]),
                                                                  2)})
    finally:
        bench.probe.stop()
        bench.cleanup()
    emit(result, args.json, "\n".join(render(result)))
    return 0


E2E_GOAL = 0.5  # issue 15: end to end >= half the slower of the gateway alone and the raw ingest limit


def end_to_end_vs_limit(result: dict[str, Any]) -> dict[str, Any]:
    """Issue 15's end-to-end goal: end to end, drained as the gateway alone is, / min(gateway alone, raw ingest
    limit), all from the same run.

    >>> end_to_end_vs_limit({"end_to_end_drain_per_s": 30000, "gateway_per_s": 60000,
    ...                      "ingest_raw": {"per_s": 150000}})
    {'end_to_end_limit_per_s': 60000, 'end_to_end_vs_limit': 0.5, 'end_to_end_vs_limit_goal': '>= 0.5'}
    """
    limit = min(result["gateway_per_s"], result["ingest_raw"]["per_s"])
    return {"end_to_end_limit_per_s": limit,
            "end_to_end_vs_limit": round(result["end_to_end_drain_per_s"] / max(1, limit), 2),
            "end_to_end_vs_limit_goal": f">= {E2E_GOAL}"}


def render(result: dict[str, Any]) -> list[str]:
    """The text report: the ingest table, then (unless ``--ingest-only``) the MQTT phases' figures."""
    raw = result["ingest_raw"]
    lines = [f"{'ingest (Kafka -> InfluxDB)':<28} {'readings/s':>10} {'vs raw':>7} {'CPU us/reading':>15} "
             f"{'cores':>6} {'peak RSS MB per process':>24}",
             f"{'raw limit (1 process, best)':<28} {raw['per_s']:>10} {'100%':>7} {raw['cpu_us_per_reading']:>15} "
             f"{'':>6} {raw['peak_rss_mb']:>24}"]
    for stage in result["ingest_stage"]:
        cores = sum(u["cpu_cores"] for u in stage["usage"].values())
        rss = " ".join(f"{u['peak_rss_mb']:.0f}" for u in stage["usage"].values())
        lines.append(f"{'stage, ' + str(stage['workers']) + ' worker(s)':<28} {stage['per_s']:>10} "
                     f"{stage['vs_raw']:>7.0%} {stage['cpu_us_per_reading']:>15} {cores:>6.2f} {rss:>24}")
    if "gateway_per_s" not in result:
        return lines
    lines += ["", f"{'figure':<36} value", f"{'publishers (mosquitto_pub) /s':<36} {result['publish_per_s']}",
              f"{'limit: mosquitto_sub receive /s':<36} {result['mosquitto_sub_per_s']}",
              f"{'limit: raw Kafka produce /s':<36} {result['kafka_produce_per_s']}",
              f"{'gateway MQTT->Kafka /s':<36} {result['gateway_per_s']} "
              f"({result['gateway_vs_mosquitto_sub']:.0%} of mosquitto_sub)",
              f"{'end to end MQTT->InfluxDB, drained /s':<36} {result['end_to_end_drain_per_s']}",
              f"{'  vs min(gateway, raw ingest limit)':<36} {result['end_to_end_vs_limit']:.2f} x of "
              f"{result['end_to_end_limit_per_s']}/s (goal >= {E2E_GOAL})",
              f"{'  CPU us per reading':<36} "
              + ", ".join(f"{k} {v}" for k, v in result["end_to_end_drain_cpu_us_per_reading"].items()),
              f"{'end to end, published live /s':<36} {result['end_to_end_per_s']} "
              f"(publishers {result['end_to_end_publish_per_s']}/s on the same cores)",
              f"{'  CPU us per reading':<36} "
              + ", ".join(f"{k} {v}" for k, v in result["end_to_end_cpu_us_per_reading"].items()),
              f"{'  broker paused (s) / rate outside':<36} {result['end_to_end_broker_stall_s']} / "
              f"{result['end_to_end_per_s_outside_stalls']}",
              f"{'latency p50 / p99 (ms)':<36} {result['latency_p50_ms']:.0f} / {result['latency_p99_ms']:.0f} "
              f"at {result['latency_rate_per_s']}/s",
              f"{'  of which gateway->InfluxDB p50/p99':<36} {result.get('gateway_to_influx_p50_ms', float('nan')):.0f}"
              f" / {result.get('gateway_to_influx_p99_ms', float('nan')):.0f}",
              f"{'  longest broker pause in it (ms)':<36} {result['latency_broker_stall_max_ms']}",
              "", "CPU (cores busy) and peak RSS per process:"]
    for phase in ("usage_gateway_phase", "usage_end_to_end_phase", "usage_end_to_end_drain_phase"):
        for name, u in result[phase].items():
            lines.append(f"  {phase.removeprefix('usage_'):<22} {name:<10} {u['cpu_cores']:>5} cores "
                         f"{u['peak_rss_mb']:>8} MB")
    peer = result.get("peer")
    if peer and "kafka" in peer:
        lines += ["", f"peer: {peer['version']} (same broker, data and machine, same run)",
                  f"{'Telegraf MQTT->Kafka /s':<36} {peer['kafka']['per_s']} "
                  f"({peer['kafka']['cpu_us_per_reading']} us CPU per reading); our gateway "
                  f"{peer['gateway_vs_telegraf_kafka']:.2f} x (goal >= 2)",
                  f"{'Telegraf MQTT->InfluxDB /s':<36} {peer['influxdb']['per_s']} "
                  f"({peer['influxdb']['cpu_us_per_reading']} us CPU per reading); our end to end "
                  f"{peer['end_to_end_vs_telegraf_influxdb']:.2f} x drained (goal >= 0.5), "
                  f"{peer['end_to_end_live_vs_telegraf_influxdb']:.2f} x live"]
        for phase in ("kafka", "influxdb"):
            for name, u in peer[phase]["usage"].items():
                lines.append(f"  telegraf_{phase:<13} {name:<10} {u['cpu_cores']:>5} cores {u['peak_rss_mb']:>8} MB")
    return lines
