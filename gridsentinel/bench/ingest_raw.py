"""The raw ingest limit of `gridsentinel bench ingest`: Kafka -> InfluxDB with no framework in between.

A tight loop, written here on purpose without the stage's code but for the wire schema it decodes
(``ingest.lines.WireReading``, so both decode the same struct the same way): consume up to 5,000 records at a
time (confluent-kafka), decode each value with msgspec, format its line protocol, POST the batch to InfluxDB's
``/api/v2/write`` with ``http.client``, until ``--count`` records are written. No retries, no dead letters, no
offsets committed, no latency bookkeeping: what the hardware and the libraries allow, for the stage's
share to be measured against, in the same run. Runs as a process of its own (``python -m
gridsentinel.bench.ingest_raw``) so its CPU and peak memory are its own. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import resource
import sys
import time
import urllib.parse
import uuid

import msgspec
from confluent_kafka import Consumer

from gridsentinel.ingest.lines import WireReading  # the wire schema (untracked by the GC, as in the stage)


def _line(r: WireReading) -> str:
    g = r.grid_code
    tags = (f"community={g[:12]},device={r.device_id},district={g[:6]},grid={g},kind={r.kind},"
            f"metric={r.metric},street={g[:9]},unit={r.unit}")
    seq = "" if r.seq is None else f",seq={r.seq}i"
    return f"reading,{tags} value={r.value!r}{seq} {round(r.observed_at * 1_000_000)}"


def run(bootstrap: str, topic: str, count: int, url: str, token: str, org: str, bucket: str) -> dict[str, float]:
    decode = msgspec.json.Decoder(WireReading).decode
    target = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port or 8086, timeout=60)
    path = f"/api/v2/write?{urllib.parse.urlencode({'org': org, 'bucket': bucket, 'precision': 'us'})}"
    headers = {"Authorization": f"Token {token}", "Content-Type": "text/plain; charset=utf-8"}
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"raw-{uuid.uuid4().hex[:8]}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False, "fetch.wait.max.ms": 50})
    consumer.subscribe([topic])
    done = 0
    t0 = cpu0 = 0.0
    try:
        while done < count:
            messages = consumer.consume(5000, 0.05)
            if not messages:
                continue
            if not done:
                t0, cpu0 = time.monotonic(), time.process_time()
            body = "\n".join([_line(decode(m.value() or b"")) for m in messages if m.error() is None]).encode()
            conn.request("POST", path, body, headers)
            answer = conn.getresponse()
            text = answer.read()
            if answer.status != 204:
                raise SystemExit(f"InfluxDB answered {answer.status}: {text[:300]!r}")
            done += len(messages)
        seconds = time.monotonic() - t0
        cpu = time.process_time() - cpu0
    finally:
        consumer.close()
        conn.close()
    return {"records": done, "seconds": round(seconds, 3), "per_s": round(done / max(1e-9, seconds)),
            "cpu_s": round(cpu, 3), "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m gridsentinel.bench.ingest_raw",
                                     description="Raw Kafka -> InfluxDB loop (the InfluxDB token is read from "
                                                 "GS_BENCH_INFLUX_TOKEN, not the command line)")
    parser.add_argument("--bootstrap", required=True)
    parser.add_argument("--topic", required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--url", required=True)
    parser.add_argument("--org", required=True)
    parser.add_argument("--bucket", required=True)
    args = parser.parse_args(argv)
    token = os.environ.get("GS_BENCH_INFLUX_TOKEN", "")
    print(json.dumps(run(args.bootstrap, args.topic, args.count, args.url, token, args.org, args.bucket)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
