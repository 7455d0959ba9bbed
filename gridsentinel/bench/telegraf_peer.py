"""`gridsentinel bench ingest --peer telegraf`: the same MQTT load taken by Telegraf, InfluxData's agent (Go),
in the same run, as the peer an operator would run instead of our gateway and worker.

Two phases, each like the gateway-alone phase (``bench/ingest.py``): N messages queued by the broker for an
offline persistent session, then drained by Telegraf's ``mqtt_consumer`` (QoS 1, persistent session,
``max_undelivered_messages`` 10,000, JSON parsed with ``ts`` as the time, batches of 5,000 flushed every
second):

- **MQTT -> Kafka**: ``outputs.kafka`` with the gateway's producer guarantees (acks from all replicas,
  idempotent writes, lz4); the rate is records in the topic over time from the first to the N-th.
- **MQTT -> InfluxDB**: ``outputs.influxdb_v2`` into a bucket of its own; the rate is points counted in the
  bucket by a Flux query (every message has its own time, so no point overwrites another).

The rates, and Telegraf's CPU (cores busy) and peak RSS, go beside our gateway-alone and end-to-end figures of
the same run; the goals (issue 15): our gateway >= 2 x Telegraf into Kafka, our end to end (which also
detects) >= 0.5 x Telegraf into InfluxDB.

The binary is not part of the set-up (a ~400 MB build of about 16 min on 2 cores): ``scripts/telegraf.sh``
builds it from the Go module proxy into the cache (``<cache>/bin/telegraf-<version>``), or ``GS_TELEGRAF``
names one.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import GridSentinelError
from ..gateway.service import drop_session
from ..settings import Settings
from ..stack.services import mosquitto_tool
from .common import CpuMeter

if TYPE_CHECKING:
    from .ingest import Bench

TELEGRAF_VERSION = "1.37.2"
TOPIC_FILTER = "gs/v1/+/telemetry"


def telegraf_binary(settings: Settings) -> Path:
    """The Telegraf to run: ``GS_TELEGRAF``, else the one ``scripts/telegraf.sh`` built into the cache."""
    path = Path(settings.telegraf) if settings.telegraf else settings.cache_dir / "bin" / f"telegraf-{TELEGRAF_VERSION}"
    if not os.access(path, os.X_OK):
        raise GridSentinelError(f"no Telegraf at {path}: build it once with `bash scripts/telegraf.sh` (go install "
                                f"of telegraf v{TELEGRAF_VERSION} from the Go module proxy, about 16 min on 2 "
                                "cores, cached) or set GS_TELEGRAF to a telegraf binary")
    return path


def _toml(value: object) -> str:
    return json.dumps(value)  # strings, numbers, booleans and lists of strings: JSON's spelling is TOML's


def config(bench: Bench, client_id: str, output: dict[str, dict[str, object]]) -> str:
    """A Telegraf configuration: the MQTT input as described above and one output (``{plugin: options}``)."""
    s = bench.settings
    lines = ["[agent]", "  interval = \"10s\"", "  flush_interval = \"1s\"", "  flush_jitter = \"0s\"",
             "  metric_batch_size = 5000", "  metric_buffer_limit = 200000", "  omit_hostname = true", "",
             "[[inputs.mqtt_consumer]]"]
    mqtt_in: dict[str, object] = {
        "servers": [f"tcp://{s.mqtt_host}:{s.mqtt_port}"], "topics": [TOPIC_FILTER], "qos": 1,
        "persistent_session": True, "client_id": client_id, "username": "gateway",
        "password": s.gateway_password, "max_undelivered_messages": 10000, "connection_timeout": "30s",
        "data_format": "json", "json_time_key": "ts", "json_time_format": "unix", "name_override": "reading"}
    lines += [f"  {k} = {_toml(v)}" for k, v in mqtt_in.items()]
    for plugin, options in output.items():
        lines += ["", f"[[outputs.{plugin}]]", *(f"  {k} = {_toml(v)}" for k, v in options.items())]
    return "\n".join(lines) + "\n"


class TelegrafPeer:
    """Runs the two peer phases for a :class:`~gridsentinel.bench.ingest.Bench` (its stack, devices and
    publishers)."""

    def __init__(self, bench: Bench) -> None:
        self.bench = bench
        self.binary = telegraf_binary(bench.settings)
        self.client_id = f"{bench.tag}-telegraf"
        self.topic = f"{bench.settings.topic_prefix}telegraf"
        self.bucket = f"{bench.tag}-telegraf"

    def version(self) -> str:
        out = subprocess.run([str(self.binary), "--version"], capture_output=True, text=True, timeout=60)
        said = out.stdout.strip() or out.stderr.strip()
        # a `go install` build does not know its version ("Telegraf unknown"): the module version it was built from
        return f"Telegraf v{TELEGRAF_VERSION} (go install)" if not said or "unknown" in said else said

    def _session(self) -> None:
        """Make Telegraf's persistent session (and subscription) exist before the messages are published,
        as a Telegraf that ran before would have left it: the broker queues for it from then on."""
        s = self.bench.settings
        subprocess.run([mosquitto_tool(s, "mosquitto_sub"), "-h", s.mqtt_host, "-p", str(s.mqtt_port),
                        "-u", "gateway", "-P", s.gateway_password, "-V", "mqttv311", "-q", "1", "-c",
                        "-i", self.client_id, "-t", TOPIC_FILTER, "-E"],
                       check=True, capture_output=True, timeout=30)

    def _drain(self, name: str, n: int, output: dict[str, dict[str, object]], count: Any) -> dict[str, Any]:
        """Queue ``n`` messages, start Telegraf, time it from the first to the ``n``-th delivered."""
        bench = self.bench
        self._session()
        bench.publish_all(n, 3_000_000, distinct_ts=True)
        conf = bench.tmp / f"telegraf-{name}.conf"
        conf.write_text(config(bench, self.client_id, output))
        conf.chmod(0o600)
        log = (bench.tmp / "logs" / f"telegraf-{name}.log").open("wb")
        proc = subprocess.Popen([str(self.binary), "--config", str(conf)], stdout=log, stderr=subprocess.STDOUT)
        meter = CpuMeter({"telegraf": proc.pid, **{k: v for k, v in bench.pids().items() if k == "mosquitto"}})
        meter.start()
        first_t, first_n, got = None, 0, 0
        deadline = time.monotonic() + 600
        try:
            while True:
                got = count()
                now = time.monotonic()
                if got > 0 and first_t is None:
                    first_t, first_n = now, got
                if got >= n or now > deadline:
                    break
                if proc.poll() is not None:
                    raise GridSentinelError(f"telegraf exited with status {proc.returncode}: see {log.name}")
                time.sleep(0.2)
            usage = meter.stop()
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            log.close()
            drop_session(bench.settings, self.client_id)
        if got < n:
            raise GridSentinelError(f"telegraf delivered {got} of {n} messages in 600 s ({name}): see {log.name}")
        rate = (got - first_n) / max(1e-9, now - (first_t or now))
        return {"per_s": round(rate), "delivered": got, "usage": usage,
                "cpu_us_per_reading": round(usage.get("telegraf", {}).get("cpu_cores", 0.0)
                                            * (now - (first_t or now)) / max(1, got - first_n) * 1e6, 1)}

    def to_kafka(self, n: int) -> dict[str, Any]:
        s = self.bench.settings
        kafka: dict[str, object] = {"brokers": [s.kafka_bootstrap], "topic": self.topic, "required_acks": -1,
                                    "idempotent_writes": True, "compression_codec": 3, "data_format": "json"}
        output = {"kafka": kafka}
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": s.kafka_bootstrap})
        for fut in admin.create_topics([NewTopic(self.topic, num_partitions=4, replication_factor=1)]).values():
            fut.result()
        return self._drain("kafka", n, output, lambda: self.bench.kafka_count(self.topic))

    def to_influxdb(self, n: int) -> dict[str, Any]:
        from influxdb_client import InfluxDBClient

        s = self.bench.settings
        client = InfluxDBClient(url=s.influx_url, token=s.influx_token, org=s.influx_org, timeout=30_000)
        client.buckets_api().create_bucket(bucket_name=self.bucket, org=s.influx_org)
        self.bench.buckets.append(self.bucket)
        influx: dict[str, object] = {"urls": [s.influx_url], "token": s.influx_token, "organization": s.influx_org,
                                     "bucket": self.bucket}
        output = {"influxdb_v2": influx}
        flux = (f'from(bucket: "{self.bucket}") |> range(start: 0, stop: 2100-01-01T00:00:00Z) '
                '|> filter(fn: (r) => r._measurement == "reading" and r._field == "seq") |> group() |> count()')

        def count() -> int:
            tables = client.query_api().query(flux, org=s.influx_org)
            return sum(int(rec.get_value()) for t in tables for rec in t.records)

        try:
            return self._drain("influxdb", n, output, count)
        finally:
            client.close()
