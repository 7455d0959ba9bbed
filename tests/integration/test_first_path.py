"""The first path through the real stack: device -> MQTT -> gateway -> Kafka -> Faust -> InfluxDB."""

from __future__ import annotations

import json
import time
from typing import Any

import paho.mqtt.client as mqtt
import pytest

from .conftest import Namespace, wait_for

pytestmark = pytest.mark.integration


def _device_client(ns: Namespace, device_id: str) -> mqtt.Client:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device_id, protocol=mqtt.MQTTv5)
    client.username_pw_set(device_id, ns.settings.device_password(device_id))
    client.connect(ns.settings.mqtt_host, ns.settings.mqtt_port)
    client.loop_start()
    return client


def test_json_reading_lands_in_influxdb(ns: Namespace) -> None:
    device = f"drain-{ns.prefix.strip('.')}"
    ns.add_devices([{"id": device, "kind": "drain_level", "location": {"lat": 31.87225, "lon": 120.55053},
                     "expected_interval_s": 60, "install": {"depth_m": 3.0, "rim_m": 3.0}}])
    ns.start_gateway()
    ns.spawn("worker", "worker", "--app-id", ns.app_id, "--bucket", ns.bucket)

    ts = round(time.time() - 5, 3)
    client = _device_client(ns, device)
    payload = json.dumps({"ts": ts, "seq": 1, "metrics": {"water_level_m": 1.23}})
    info = client.publish(f"gs/v1/{device}/telemetry", payload, qos=1)
    info.wait_for_publish(10)
    client.loop_stop()
    client.disconnect()

    query = (f'from(bucket: "{ns.bucket}") |> range(start: -1h) '
             f'|> filter(fn: (r) => r._measurement == "reading" and r.device == "{device}")')

    def rows() -> list[dict[str, Any]]:
        with ns.influx() as influx:
            tables = influx.query_api().query(query)
        return [rec.values for table in tables for rec in table.records]

    found = wait_for(rows, 90, "the reading to reach InfluxDB",
                     on_timeout=lambda: ns.log("gateway") + "\n" + ns.log("worker"), ns=ns)
    by_field = {r["_field"]: r for r in found}
    assert by_field["value"]["_value"] == pytest.approx(1.23)
    assert by_field["seq"]["_value"] == 1
    value = by_field["value"]
    assert value["metric"] == "water_level" and value["unit"] == "m" and value["kind"] == "drain_level"
    assert value["grid"] == "320582004001001" and value["district"] == "320582"
    assert abs(value["_time"].timestamp() - ts) < 1e-3
