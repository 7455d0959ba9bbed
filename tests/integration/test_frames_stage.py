"""The frames stage on the real Kafka: camera frames in, camera detections with de-identified evidence out,
through corrupt frames and a kill -9 of the worker."""

from __future__ import annotations

import hashlib
import json
import signal
import subprocess
import time
import uuid
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
import yaml
from confluent_kafka import Consumer, TopicPartition
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from gridsentinel.cases.gridcode import dedup_region
from gridsentinel.core.records import Frame
from gridsentinel.detectors.camera import synthetic

from ..conftest import decode_image, read_image
from .conftest import Namespace, wait_for
from .test_reliability import device_client

pytestmark = pytest.mark.integration

VISION = Path(__file__).resolve().parents[1] / "fixtures" / "vision"
LOCATION = {"lat": 31.87225, "lon": 120.55053}  # grid cell 320582004001001
GRID = "320582004001001"
MESSI_FACE = (212, 95, 52, 48)  # x, y, w, h: the hand-labelled face in messi5.jpg (faces.json)


@pytest.fixture(autouse=True)
def _fast_rebalance(monkeypatch: pytest.MonkeyPatch) -> None:
    # a killed worker's partitions move after the session timeout (Faust's default is 60 s)
    monkeypatch.setenv("BROKER_SESSION_TIMEOUT", "10")


def _jpeg(image: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, 90])
    assert ok
    return buf.tobytes()


def _street() -> list[np.ndarray]:
    return [read_image(p) for p in sorted((VISION / "vtest_clip").glob("*.jpg"))]


def _noisy(image: np.ndarray, seed: int) -> np.ndarray:
    """A static scene still changes a little from frame to frame (sensor noise)."""
    noise = np.random.default_rng(seed).integers(-3, 4, image.shape)
    return np.clip(image.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def covered_lens(t0: float, fps: float, normal_s: float, covered_s: float, start: int = 0,
                 covered_first: bool = False) -> list[tuple[float, bytes]]:
    """(ts, JPEG) of a street camera: real footage, then a hand over the lens (or the other way round)."""
    street = _street()
    out = []
    n_a, n_b = round(normal_s * fps), round(covered_s * fps)
    for i in range(n_a + n_b):
        k = start + i
        frame = street[k % len(street)]
        is_covered = (i < n_b) if covered_first else (i >= n_a)
        out.append((t0 + k / fps, _jpeg(synthetic.cover(frame, seed=k) if is_covered else frame)))
    return out


class Kafka:
    """The test's gs.detections and gs.deadletter, and a producer for its gs.frames."""

    def __init__(self, ns: Namespace, create: bool) -> None:
        self.ns = ns
        self.frames_topic = f"{ns.prefix}gs.frames"
        names = [self.frames_topic, f"{ns.prefix}gs.detections", f"{ns.prefix}gs.deadletter"]
        if create:  # otherwise the gateway creates them
            ns.create_topics(*names)
        self.producer = ns.producer()
        self.consumer = ns.consumer(names[1:])
        self.detections: list[tuple[bytes, dict[str, Any]]] = []
        self.dead: list[dict[str, Any]] = []

    def produce(self, camera: str, frames: list[tuple[float, bytes]]) -> None:
        for seq, (ts, jpeg) in enumerate(frames):
            frame = Frame(camera_id=camera, observed_at=ts, seq=seq, jpeg=jpeg, received_at=time.time(),
                          grid_code=GRID)
            headers: list[tuple[str, str | bytes | None]] = [*frame.headers()]
            self.producer.produce(self.frames_topic, key=camera.encode(), value=jpeg, headers=headers)
        assert self.producer.flush(30) == 0

    def poll(self) -> None:
        while (msg := self.consumer.poll(0.2)) is not None:
            if msg.error():
                continue
            topic, key, value = msg.topic(), msg.key(), msg.value()
            assert topic is not None and value is not None  # None only on error events
            if topic.endswith("gs.deadletter"):
                self.dead.append(json.loads(value))
            else:
                assert key is not None
                self.detections.append((key, json.loads(value)))

    def of(self, camera: str) -> list[dict[str, Any]]:
        self.poll()
        return [d for _, d in self.detections if d["device_id"] == camera]

    def dead_of(self, reason: str) -> list[dict[str, Any]]:
        self.poll()
        return [d for d in self.dead if d["reason"] == reason]

    def close(self) -> None:
        self.consumer.close()


def _cameras(ns: Namespace, cameras: dict[str, dict[str, Any]]) -> None:
    """Register the cameras and give them a tamper-only detector config (no grid code: it comes from
    the registry's location)."""
    ns.add_devices([{"id": c, "kind": "camera", "location": LOCATION, "expected_interval_s": 3600}
                    for c in cameras])
    off = {"enabled": False}
    data = {"version": "test-1", "cameras": [
        {"camera_id": c, **extra, "static_object": off, "crowd": off, "fire_smoke": off, "waterlogging": off}
        for c, extra in cameras.items()]}
    (ns.config_dir / "cameras.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


def _worker(ns: Namespace, name: str) -> subprocess.Popen[bytes]:
    return ns.spawn(name, "worker", "--app-id", ns.app_id, "--stages", "frames",
                    "--stats-file", str(ns.workdir / f"{name}.stats.json"))


def _stats(ns: Namespace, name: str) -> dict[str, Any]:
    try:
        return json.loads((ns.workdir / f"{name}.stats.json").read_text()).get("frames") or {}
    except (OSError, ValueError):
        return {}


def _snapshot(ns: Namespace, detection: dict[str, Any]) -> np.ndarray:
    """The evidence file a dispatcher would fetch, checked against the detection's sha256."""
    ref = detection["evidence"]["snapshot"]
    raw = (ns.settings.run_dir / ref["path"]).read_bytes()
    assert hashlib.sha256(raw).hexdigest() == ref["sha256"] and len(raw) == ref["bytes"]
    return decode_image(raw)


def _sharpness(image: np.ndarray, box: tuple[slice, slice], where: np.ndarray) -> float:
    """Variance of the Laplacian of ``image`` over the pixels ``where`` (bool) of ``box``."""
    laplacian = cv2.Laplacian(cv2.cvtColor(image, cv2.COLOR_BGR2GRAY), cv2.CV_64F)
    return float(laplacian[box][where].var())


def test_frames_over_mqtt_give_tamper_detections_with_deidentified_evidence(ns: Namespace) -> None:
    tag = ns.prefix.strip(".")
    lens, face = f"cam-{tag}-lens", f"cam-{tag}-face"
    _cameras(ns, {lens: {"analysis_fps": 5.0}, face: {}})
    ns.start_gateway()
    kafka = Kafka(ns, create=False)
    try:
        _worker(ns, "worker")
        t0 = float(int(time.time()) - 120)
        # a truncated frame produced straight to Kafka (the gateway rejects those itself)
        good = _jpeg(_street()[0])
        kafka.produce(lens, [(t0 - 1.0, good[: len(good) // 2])])
        logs = lambda: ns.log("worker")  # noqa: E731
        wait_for(lambda: kafka.dead_of("corrupt_jpeg"), 90, "the corrupt_jpeg dead letter", ns=ns,
                 on_timeout=logs)
        (letter,) = kafka.dead_of("corrupt_jpeg")
        assert letter["device_id"] == lens and "truncated" in letter["detail"]

        # then, over MQTT: the street camera at 10 frames/s (analysed at 5), covered after 4 s; and a camera
        # watching a static scene with a face that is pushed aside (scene shift) after 4 s
        messi = read_image(VISION / "messi5.jpg")
        moved = synthetic.shift(messi, angle_deg=0.0)
        face_frames = [(t0 + i / 5, _jpeg(_noisy(messi if i < 20 else moved, i))) for i in range(40)]
        for camera, frames in ((lens, covered_lens(t0, 10.0, 4.0, 4.0)), (face, face_frames)):
            client = device_client(ns, camera)
            infos = []
            for seq, (ts, jpeg) in enumerate(frames):
                props = Properties(PacketTypes.PUBLISH)
                props.UserProperty = [("ts", repr(ts)), ("seq", str(seq))]
                infos.append(client.publish(f"gs/v1/{camera}/frame", jpeg, qos=1, properties=props))
            for info in infos:
                info.wait_for_publish(30)
            client.disconnect()
            client.loop_stop()

        wait_for(lambda: kafka.of(lens) and kafka.of(face), 90, "a detection from each camera", ns=ns,
                 on_timeout=logs)
        wait_for(lambda: _stats(ns, "worker").get("analysed") == 80, 60, "every frame to be analysed", ns=ns,
                 on_timeout=lambda: f"{_stats(ns, 'worker')}\n{logs()}")
        stats = _stats(ns, "worker")
        # 80 street frames at 10 frames/s, analysis at 5 frames/s: every other one dropped before decoding
        assert stats["rate_dropped"] == 40 and stats["dead_lettered"] == 1

        (covered,) = kafka.of(lens)
        assert (covered["kind"], covered["evidence"]["reason"]) == ("camera_tamper", "covered")
        assert covered["source"] == "camera" and covered["detector_version"] == "test-1"
        assert covered["grid_code"] == GRID and t0 + 4.0 < covered["observed_at"] <= t0 + 8.0
        key = next(k for k, d in kafka.detections if d["detection_id"] == covered["detection_id"])
        assert key == dedup_region(GRID).encode()
        dark = _snapshot(ns, covered)
        assert dark.shape[1] <= 640 and dark.mean() < 80  # the covered view, as evidence

        (shifted,) = kafka.of(face)
        assert (shifted["kind"], shifted["evidence"]["reason"]) == ("camera_tamper", "shift")
        snap = _snapshot(ns, shifted)
        assert snap.shape == moved.shape  # 548 px wide: under max_width, not resized
        x, y, w, h = MESSI_FACE
        x, y = x + round(0.2 * messi.shape[1]), y + round(0.08 * messi.shape[0])  # where shift() moved it
        # the face is unrecognisable in the evidence, while the rest of the scene is the frame itself. The
        # default blurs an ellipse over each face (face_shape), so the check looks at the face itself: the
        # ellipse inscribed in the hand-drawn box, with the Laplacian taken over the whole image so that the
        # box's corners (the collar, the background: no face) and the crop's edges play no part.
        yy, xx = np.mgrid[y : y + h, x : x + w]
        face_px = ((xx + 0.5 - x - w / 2) / (w / 2)) ** 2 + ((yy + 0.5 - y - h / 2) / (h / 2)) ** 2 <= 1.0
        box = (slice(y, y + h), slice(x, x + w))
        assert _sharpness(snap, box, face_px) < 0.05 * _sharpness(moved, box, face_px)
        assert np.abs(snap.astype(int) - moved.astype(int)).mean() < 15
        assert shifted["evidence"]["snapshot"]["blurred_regions"] >= 1
    finally:
        kafka.close()


def _changelog_last_ts(ns: Namespace, camera: str) -> float | None:
    """Event time of the camera's last state saved to the frames-state table's changelog."""
    consumer = Consumer({"bootstrap.servers": ns.settings.kafka_bootstrap,
                         "group.id": f"cl-{uuid.uuid4().hex[:8]}", "enable.auto.commit": False})
    topic = f"{ns.app_id}-frames-state-changelog"
    try:
        meta = consumer.list_topics(topic, timeout=10).topics[topic]
        if meta.error is not None:
            return None
        ends = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1]
                for p in meta.partitions}
        consumer.assign([TopicPartition(topic, p, 0) for p in ends])
        want, last, seen = json.dumps(camera).encode(), None, dict.fromkeys(ends, 0)
        while any(seen[p] < ends[p] for p in ends):
            msg = consumer.poll(2.0)
            if msg is None:
                break
            if msg.error():
                continue
            offset = msg.offset()
            assert offset is not None
            seen[msg.partition()] = offset + 1
            if msg.key() == want and (value := msg.value()):
                last = json.loads(value)["last_ts"]
        return last
    finally:
        consumer.close()


def test_kill_9_of_the_worker_keeps_the_incident_and_the_learnt_scene(ns: Namespace) -> None:
    camera = f"cam-{ns.prefix.strip('.')}-kill"
    _cameras(ns, {camera: {}})
    kafka = Kafka(ns, create=True)
    try:
        worker = _worker(ns, "worker")
        t0 = float(int(time.time()) - 120)
        kafka.produce(camera, covered_lens(t0, 5.0, 4.0, 6.0))  # covered from t0 + 4 s
        logs = lambda: ns.log("worker")  # noqa: E731
        wait_for(lambda: kafka.of(camera), 90, "the tamper detection", ns=ns, on_timeout=logs)
        (first,) = kafka.of(camera)
        # the alarm is in the saved state before the kill (it is saved with every detection)
        wait_for(lambda: (_changelog_last_ts(ns, camera) or 0.0) >= first["observed_at"], 60,
                 "the camera state to reach the table", ns=ns, on_timeout=logs)
        worker.send_signal(signal.SIGKILL)
        worker.wait(10)
        ns.procs.remove(worker)

        _worker(ns, "worker2")
        # still covered for 4 s, uncovered for 6 s (the restored alarm clears quietly), covered again:
        # a second incident. A worker that had warmed up again on the covered view would instead take
        # the uncovered street for a moved camera.
        kafka.produce(camera, covered_lens(t0, 5.0, 6.0, 4.0, start=50, covered_first=True))
        kafka.produce(camera, covered_lens(t0, 5.0, 0.0, 6.0, start=100))
        wait_for(lambda: len({d["detection_id"] for d in kafka.of(camera)}) >= 2, 120,
                 "the second incident after the restart", ns=ns, on_timeout=lambda: ns.log("worker2"))
        wait_for(lambda: _stats(ns, "worker2").get("analysed", 0) >= 80, 60, "the frames after the restart",
                 ns=ns, on_timeout=lambda: ns.log("worker2"))
        found = kafka.of(camera)
        ids = {d["detection_id"]: d for d in found}
        assert len(ids) == 2, found  # a replay may repeat the first detection, never with a new id
        second = next(d for i, d in ids.items() if i != first["detection_id"])
        assert second["evidence"]["reason"] == "covered" and second["observed_at"] > t0 + 20.0
        assert _stats(ns, "worker2")["state_restores"] >= 1
    finally:
        kafka.close()
