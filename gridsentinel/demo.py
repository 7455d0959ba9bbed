"""`gridsentinel demo`: the whole pipeline on this machine, from device MQTT to InfluxDB.

Brings up the stack, starts the gateway and the stream worker, lets the registry's sensors publish
(JSON and SenML, each with its own credentials), and shows what reached InfluxDB.
"""

from __future__ import annotations

import json
import math
import random
import time

import paho.mqtt.client as mqtt
from influxdb_client import InfluxDBClient

from . import stack
from .children import Children
from .ingest.registry import Device, Registry
from .settings import Settings
from .stack.services import Mosquitto

BASELINES = {
    "drain_level": [("water_level_m", 0.8, 0.02)],
    "rain_gauge": [("rain_rate_mm_h", 2.0, 0.5)],
    "cover_tilt": [("tilt_deg", 1.0, 0.2)],
    "air_quality": [("pm2_5_ugm3", 35.0, 4.0), ("pm10_ugm3", 60.0, 6.0)],
    "noise": [("laeq_db", 55.0, 2.0)],
}
SENML_NAMES = {"water_level_m": ("water_level", "m"), "rain_rate_mm_h": ("rain_rate", "mm/h"),
               "tilt_deg": ("tilt", "deg"), "pm2_5_ugm3": ("pm2_5", "ug/m3"), "pm10_ugm3": ("pm10", "ug/m3"),
               "laeq_db": ("laeq", "dB")}


def _payload(device: Device, seq: int, now: float, rng: random.Random) -> tuple[bytes, str | None]:
    values = {key: round(base + math.sin(now / 60.0) * spread + rng.gauss(0, spread / 3), 4)
              for key, base, spread in BASELINES[device.kind]}
    if seq % 2:  # every other message as SenML, as some vendors' devices send it
        pack = [{"bn": f"urn:dev:gs:{device.id}:", "bt": now}]
        pack += [{"n": SENML_NAMES[k][0], "u": SENML_NAMES[k][1], "v": v} for k, v in values.items()]
        return json.dumps(pack).encode(), "application/senml+json"
    return json.dumps({"ts": now, "seq": seq, "metrics": values}).encode(), None


def run_demo(settings: Settings, duration_s: float, rate_hz: float) -> int:
    say = stack.progress_printer()
    stack.up(settings, say)
    registry = Registry.load(settings.config_dir)
    sensors = [d for d in registry.devices.values() if d.kind in BASELINES]
    Mosquitto(settings).ensure_devices([d.id for d in sensors])
    children = Children(settings.run_dir / "demo")
    try:
        say("starting the gateway and the stream worker")
        children.start("gateway", "gateway")
        children.start("worker", "worker", "--app-id", "gridsentinel-demo")
        children.wait_log("gateway", " ready: ")
        clients = {}
        for d in sensors:
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=d.id, protocol=mqtt.MQTTv5)
            c.username_pw_set(d.id, settings.device_password(d.id))
            c.connect(settings.mqtt_host, settings.mqtt_port)
            c.loop_start()
            clients[d.id] = c
        say(f"{len(sensors)} devices publishing every {1 / rate_hz:.1f}s for {duration_s:.0f}s "
            f"(logs in {children.log_dir})")
        rng = random.Random(7)
        started = time.time()
        seq = 0
        sent = 0
        while time.time() - started < duration_s:
            seq += 1
            now = time.time()
            for d in sensors:
                body, ctype = _payload(d, seq, now, rng)
                props = None
                if ctype:
                    from paho.mqtt.packettypes import PacketTypes
                    from paho.mqtt.properties import Properties

                    props = Properties(PacketTypes.PUBLISH)
                    props.ContentType = ctype
                clients[d.id].publish(f"gs/v1/{d.id}/telemetry", body, qos=1, properties=props)
                sent += 1
            children.check()
            time.sleep(max(0.0, seq / rate_hz - (time.time() - started)))
        for c in clients.values():
            c.loop_stop()
            c.disconnect()
        say(f"published {sent} messages; waiting for them in InfluxDB")
        _report(settings, [d.id for d in sensors], started, say)
    except KeyboardInterrupt:
        say("interrupted")
    finally:
        say("stopping the gateway and the worker")
        children.stop_all()
    return 0


def _report(settings: Settings, device_ids: list[str], since: float, say: stack.Progress) -> None:
    query = (f'from(bucket: "{settings.influx_bucket}") |> range(start: {int(since) - 5}) '
             '|> filter(fn: (r) => r._measurement == "reading" and r._field == "value") '
             '|> group(columns: ["device", "metric", "grid"]) |> count()')
    deadline = time.time() + 30
    rows: list[tuple[str, str, str, int]] = []
    with InfluxDBClient(url=settings.influx_url, token=settings.influx_token, org=settings.influx_org) as c:
        while time.time() < deadline:
            tables = c.query_api().query(query)
            rows = sorted((r.values["device"], r.values["metric"], r.values.get("grid", ""), r.get_value())
                          for t in tables for r in t.records)
            if {r[0] for r in rows} >= set(device_ids):
                break
            time.sleep(1)
    print(f"\n{'device':<12} {'metric':<12} {'grid cell':<16} points in InfluxDB")
    for device, metric, grid, count in rows:
        print(f"{device:<12} {metric:<12} {grid:<16} {count}")
