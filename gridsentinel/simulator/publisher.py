"""Devices on MQTT: one MQTT v5 connection per device, with its own credentials, as real devices do.

Telemetry goes to ``gs/v1/<id>/telemetry`` (drains and covers send the JSON contract, rain gauges,
air-quality and noise monitors SenML packs), frames to ``gs/v1/<id>/frame`` (JPEG, user properties
``ts`` and ``seq``), status to ``gs/v1/<id>/status`` (``online`` retained on connect; the last will is
``offline`` retained, and a device that drops off disconnects with reason 0x04 so the broker sends it).
QoS 1 throughout. Errors from paho's network threads are stored and raised in the main loop.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from gridsentinel.core.devices import Device
from gridsentinel.errors import ServiceError
from gridsentinel.settings import Settings
from gridsentinel.simulator import footage
from gridsentinel.simulator.clock import SimClock
from gridsentinel.simulator.scenario import Message

SENML_KINDS = ("rain_gauge", "air_quality", "noise")
JSON_KEYS = {"water_level": "water_level_m", "tilt": "tilt_deg"}
SENML_UNITS = {"rain_rate": "mm/h", "pm2_5": "ug/m3", "pm10": "ug/m3", "laeq": "dB"}


def telemetry_payload(device: Device, ts: float, seq: int,
                      metrics: tuple[tuple[str, float], ...]) -> tuple[bytes, str | None]:
    """The body a device of this kind sends, and its content type (SenML) or None (the JSON contract).

    >>> from gridsentinel.core.devices import Device, Location
    >>> rain = Device(id="rain-9", kind="rain_gauge", location=Location(lat=31.87, lon=120.55))
    >>> body, ctype = telemetry_payload(rain, 1767225600.0, 5, (("rain_rate", 12.5),))
    >>> body, ctype
    (b'[{"bn":"urn:dev:gs:rain-9:","bt":1767225600.0,"n":"rain_rate","u":"mm/h","v":12.5}]', \
'application/senml+json')
    """
    if device.kind in SENML_KINDS:
        pack: list[dict[str, object]] = []
        for i, (name, value) in enumerate(metrics):
            rec: dict[str, object] = {"bn": f"urn:dev:gs:{device.id}:", "bt": round(ts, 3)} if i == 0 else {}
            rec.update({"n": name, "u": SENML_UNITS[name], "v": value})
            pack.append(rec)
        return json.dumps(pack, separators=(",", ":")).encode(), "application/senml+json"
    body = {"ts": round(ts, 3), "seq": seq, "metrics": {JSON_KEYS.get(k, k): v for k, v in metrics}}
    return json.dumps(body, separators=(",", ":")).encode(), None


class DeviceLink:
    """One device's MQTT connection."""

    def __init__(self, device: Device, settings: Settings, errors: list[str]) -> None:
        self.device = device
        self.topic = f"gs/v1/{device.id}"
        self.errors = errors
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"sim-{device.id}",
                                  protocol=mqtt.MQTTv5)
        self.client.username_pw_set(device.id, settings.device_password(device.id))
        self.client.will_set(f"{self.topic}/status", b"offline", qos=1, retain=True)
        self.client.max_queued_messages_set(0)
        self.client.on_connect = self._on_connect
        self.pending: list[mqtt.MQTTMessageInfo] = []
        self.sent = 0

    def _on_connect(self, client: mqtt.Client, _u: object, _f: object, rc: ReasonCode, _p: object) -> None:
        if rc.is_failure:
            self.errors.append(f"{self.device.id}: MQTT CONNECT refused: {rc}")

    def connect(self, host: str, port: int) -> None:
        self.client.connect(host, port, keepalive=30)
        self.client.loop_start()

    def publish(self, suffix: str, body: bytes, *, retain: bool = False,
                props: Properties | None = None) -> None:
        info = self.client.publish(f"{self.topic}/{suffix}", body, qos=1, retain=retain, properties=props)
        self.pending.append(info)
        self.pending = [p for p in self.pending if not p.is_published()]
        self.sent += 1

    def drain(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        for info in self.pending:
            info.wait_for_publish(max(0.01, deadline - time.monotonic()))

    def drop(self) -> None:
        """The device fails: disconnect with "disconnect with will message" so the broker says offline."""
        self.drain(5.0)
        self.client.disconnect(reasoncode=ReasonCode(PacketTypes.DISCONNECT, identifier=4))
        self.client.loop_stop()

    def close(self) -> None:
        self.drain(10.0)
        if self.client.is_connected():
            self.client.disconnect()
        self.client.loop_stop()


def progress_note(clock: SimClock, offset: float, wall: float) -> str:
    """Where the run is, its pace against the plan's, and an honest time to go.

    The plan itself slows down: camera scenes play nearer real time than the quiet hours between them,
    so the pace so far falls while a scene plays. The note shows the plan's pace beside it, so a pace
    that falls with the plan reads as such. On plan, the time to go is what is left of the wall-clock
    schedule (it falls exactly as the clock does, also while the publisher catches up a few seconds); a
    machine that cannot publish as fast as planned falls behind the plan, and the rest is then expected to
    take longer in the same ratio.

    >>> c = SimClock(duration_s=7200, speed=60, real_start=1000.0)          # planned: 2 min
    >>> progress_note(c, 3600, wall=1060.0)
    'simulated 1.00 h of 2.00 h in 1.0 min (x60, plan x60: on plan): about 1.0 min to go'
    >>> progress_note(c, 3600, wall=1062.0)                                 # 2 s late: still on plan
    'simulated 1.00 h of 2.00 h in 1.0 min (x58, plan x60: on plan): about 1.0 min to go'
    >>> progress_note(c, 3600, wall=1120.0)
    'simulated 1.00 h of 2.00 h in 2.0 min (x30, plan x60: 1.0 min behind the plan): about 2.0 min to go'

    A scene of 10 min at x1 in the middle of an hour at x120: the pace so far falls, as planned.

    >>> s = SimClock(duration_s=3600, speed=120, scenes=[(1500, 2100)], scene_speed=1, real_start=0.0)
    >>> progress_note(s, 1500, wall=12.5)
    'simulated 0.42 h of 1.00 h in 0.2 min (x120, plan x120: on plan): about 10.2 min to go'
    >>> progress_note(s, 1800, wall=312.5)
    'simulated 0.50 h of 1.00 h in 5.2 min (x6, plan x6: on plan): about 5.2 min to go'
    """
    elapsed = max(1e-9, wall - clock.real_start)
    planned = clock.real_at(offset) - clock.real_start
    behind = wall - clock.real_at(offset)
    plan = f"plan x{offset / planned:.0f}" if planned > 0 else "plan"
    if planned > 0 and behind > max(5.0, 0.05 * planned):
        left = (clock.real_length_s - planned) * elapsed / planned
        pace = f"{behind / 60:.1f} min behind the plan"
    else:
        left = clock.real_end - wall  # the schedule's own time to go: it falls as the clock does
        pace = "on plan"
    return (f"simulated {offset / 3600:.2f} h of {clock.duration_s / 3600:.2f} h in {elapsed / 60:.1f} min "
            f"(x{offset / elapsed:.0f}, {plan}: {pace}): about {max(0.0, left) / 60:.1f} min to go")


def play(messages: list[Message], devices: dict[str, Device], clock: SimClock, settings: Settings,
         say: Callable[[str], None] = print, sleep: Callable[[float], None] = time.sleep,
         progress_every_s: float = 10.0) -> dict[str, int]:
    """Publish every message when the clock reaches it; returns message counts by type."""
    errors: list[str] = []
    links = {d: DeviceLink(devices[d], settings, errors) for d in sorted({m.device_id for m in messages})}
    counts = {"telemetry": 0, "frame": 0, "status": 0}
    seq = {d: int(clock.window_start) for d in links}  # a counter that never repeats across runs
    try:
        for link in links.values():
            link.connect(settings.mqtt_host, settings.mqtt_port)
        next_note = time.time() + progress_every_s
        for m in messages:
            wait = clock.real_at(m.at) - time.time()
            if wait > 0:
                sleep(wait)
            if errors:
                raise ServiceError("; ".join(errors))
            link = links[m.device_id]
            ts = clock.event_time(m.at)
            seq[m.device_id] += 1
            if m.type == "telemetry":
                body, ctype = telemetry_payload(link.device, ts, seq[m.device_id], m.metrics)
                props = None
                if ctype:
                    props = Properties(PacketTypes.PUBLISH)
                    props.ContentType = ctype
                link.publish("telemetry", body, props=props)
            elif m.type == "frame":
                props = Properties(PacketTypes.PUBLISH)
                props.UserProperty = [("ts", f"{ts:.3f}"), ("seq", str(seq[m.device_id]))]
                link.publish("frame", footage.render(*m.frame), props=props)
            elif m.type == "online":
                link.publish("status", b"online", retain=True)
            elif m.type == "offline":
                link.drop()
            counts["status" if m.type in ("online", "offline") else m.type] += 1
            if time.time() >= next_note:
                next_note = time.time() + progress_every_s
                say(f"{progress_note(clock, m.at, time.time())}: {counts['telemetry']} readings, "
                    f"{counts['frame']} frames")
    finally:
        for link in links.values():
            try:
                link.close()
            except (OSError, ValueError, RuntimeError):
                pass  # the dropped device's connection is already gone
    if errors:
        raise ServiceError("; ".join(errors))
    return counts
