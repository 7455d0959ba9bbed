"""Frames stage: ``gs.frames`` -> JPEG decode -> ``CameraStack`` -> ``gs.detections`` with evidence.

- One agent consumes ``gs.frames`` (key: camera id, so a camera's frames stay on one partition, in
  order). A frame is dropped *before decoding* when it comes sooner than ``1 / analysis_fps`` after the
  last analysed frame of its camera, or is not newer than it (the detectors would skip it anyway).
- Decoding and analysis run in a thread (``asyncio.to_thread``): the event loop keeps serving Kafka
  heartbeats and the other stages while OpenCV works. Frames are acked after they are processed.
- A frame that does not decode (truncated, corrupt, not a JPEG) or lacks its ``gs-frame`` header goes
  to the dead letter (``corrupt_jpeg`` / ``bad_record``) with only its JPEG headers, never its image.
- Detector state (background models, references, alarm flags) is saved to the ``frames-state`` table
  (changelog-backed) after every frame that produced detections, and otherwise at most every
  ``state_every_s`` of event time. A restarted worker, or one that takes over a camera in a rebalance,
  continues from that state instead of warming up again.
- Each detection carries a de-identified snapshot of the frame that triggered it, written to
  ``<run dir>/evidence/<detection id>.jpg`` (path and sha256 in ``evidence["snapshot"]``) and deleted
  after ``privacy.retention_days``. Raw frames are never written anywhere.

Crash safety: detections are delivered before the state that records them is saved, and their ids are
deterministic. A crash replays at most the same detections (same ids), never a second incident.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import logging
import os
import struct
import time
import zlib
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import cv2
import faust
import numpy as np

from gridsentinel.core.devices import Registry
from gridsentinel.core.records import DeadLetter, Detection, Frame, RecordError
from gridsentinel.detectors.camera.config import CameraConfig, CamerasFile, load_cameras
from gridsentinel.detectors.camera.privacy import Deidentifier, snapshot_with_regions
from gridsentinel.detectors.camera.stack import CameraStack
from gridsentinel.detectors.detection import CategoryOf
from gridsentinel.detectors.stage import send_detections

if TYPE_CHECKING:
    from gridsentinel.streams.context import StageContext

log = logging.getLogger(__name__)

STATE_CHUNK_BYTES = 512 * 1024  # table values stay well under Kafka's default 1 MB record limit
SWEEP_EVERY_S = 3600.0
JPEG_SOI = b"\xff\xd8\xff"
JPEG_EOI = b"\xff\xd9"


# -- pure helpers (no Kafka) ----------------------------------------------------------------------

def decode_jpeg(payload: bytes) -> np.ndarray | str:
    """The decoded BGR image, or why it cannot be decoded.

    libjpeg fills a truncated scan with grey and only warns, so the end-of-image marker is checked
    before OpenCV sees the bytes.

    >>> ok, buf = cv2.imencode(".jpg", np.full((16, 16, 3), 90, np.uint8))
    >>> decode_jpeg(buf.tobytes()).shape
    (16, 16, 3)
    >>> decode_jpeg(buf.tobytes()[:-40])
    'truncated: no end-of-image marker FF D9'
    >>> decode_jpeg(b"GIF89a")
    'not a JPEG: no start-of-image signature FF D8 FF'
    """
    if not payload.startswith(JPEG_SOI):
        return "not a JPEG: no start-of-image signature FF D8 FF"
    if not payload.rstrip(b"\x00").endswith(JPEG_EOI):
        return "truncated: no end-of-image marker FF D9"
    image = cv2.imdecode(np.frombuffer(payload, np.uint8), cv2.IMREAD_COLOR)
    if image is None or image.size == 0 or min(image.shape[:2]) < 8:
        return "corrupt: OpenCV could not decode it"
    return image


def jpeg_headers(payload: bytes, limit: int = 64 * 1024) -> bytes:
    """The bytes before the first start-of-scan marker (FF DA): enough to diagnose, no picture.

    >>> jpeg_headers(b"\\xff\\xd8\\xff\\xe0hdr\\xff\\xdaSCANDATA")
    b'\\xff\\xd8\\xff\\xe0hdr'
    """
    sos = payload.find(b"\xff\xda")
    return payload[: min(limit, sos if sos >= 0 else 0)]


def pack_state(state: dict[str, bytes]) -> bytes:
    """A camera stack's per-detector state as one compressed blob.

    >>> unpack_state(pack_state({"tamper": b"abc", "crowd": b""}))
    {'tamper': b'abc', 'crowd': b''}
    """
    head = json.dumps([[name, len(raw)] for name, raw in state.items()]).encode()
    return zlib.compress(struct.pack(">I", len(head)) + head + b"".join(state.values()), 1)


def unpack_state(blob: bytes) -> dict[str, bytes]:
    raw = zlib.decompress(blob)
    (n,) = struct.unpack(">I", raw[:4])
    pos, out = 4 + n, {}
    for name, size in json.loads(raw[4 : 4 + n]):
        out[name] = raw[pos : pos + size]
        pos += size
    return out


def gate_fps(camera: CameraConfig, stack: CameraStack) -> float:
    """The camera's analysis rate: its own ``analysis_fps``, else the fastest of its detectors'."""
    if camera.analysis_fps is not None:
        return camera.analysis_fps
    return max((d.config.analysis_fps for d in stack.detectors.values()), default=1.0)


def fingerprint(camera: CameraConfig, version: str) -> str:
    """Saved state is only restored into a stack built from the same config."""
    return hashlib.sha256(f"{version}|{camera.model_dump_json()}".encode()).hexdigest()[:16]


class EvidenceStore:
    """De-identified snapshots as ``<root>/<detection id>.jpg``, kept ``retention_days``.

    >>> import tempfile
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     store = EvidenceStore(Path(tmp) / "evidence", retention_days=30)
    ...     ref = store.write("abc123", b"\\xff\\xd8\\xff jpeg")
    ...     kept, swept = store.sweep(now=time.time()), store.sweep(now=time.time() + 31 * 86400)
    >>> ref["path"], ref["bytes"], ref["sha256"] == hashlib.sha256(b"\\xff\\xd8\\xff jpeg").hexdigest()
    ('evidence/abc123.jpg', 8, True)
    >>> kept, swept
    (0, 1)
    """

    def __init__(self, root: Path, retention_days: int) -> None:
        self.root = root
        self.retention_days = retention_days

    @property
    def enabled(self) -> bool:
        return self.retention_days > 0

    def write(self, detection_id: str, jpeg: bytes) -> dict[str, Any]:
        self.root.mkdir(parents=True, exist_ok=True)
        path = self.root / f"{detection_id}.jpg"
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(jpeg)
        os.replace(tmp, path)  # a replay rewrites the same bytes under the same (deterministic) id
        return {"path": f"{self.root.name}/{path.name}", "sha256": hashlib.sha256(jpeg).hexdigest(),
                "bytes": len(jpeg), "content_type": "image/jpeg",
                "expires_at": round(time.time() + self.retention_days * 86400.0, 3)}

    def sweep(self, now: float) -> int:
        """Delete snapshots older than the retention period; returns how many."""
        if not self.root.is_dir():
            return 0
        cutoff, removed = now - self.retention_days * 86400.0, 0
        for path in self.root.glob("*.jpg"):
            try:
                if path.stat().st_mtime < cutoff:
                    path.unlink()
                    removed += 1
            except FileNotFoundError:
                pass  # another worker swept it first
        return removed


@dataclass
class Camera:
    """One camera's live runtime on this worker."""

    stack: CameraStack
    fps: float
    fingerprint: str
    partition: int
    last_ts: float | None = None  # last analysed frame (event time)
    saved_ts: float | None = None  # event time of the last saved state
    generation: int = 0  # of the saved state; chunks alternate between two slots


# -- the stage --------------------------------------------------------------------------------------

DeadLetterSink = Callable[[DeadLetter, bytes | None], Awaitable[None]]


class FrameProcessor:
    """The frames stage without Faust: a frame in; detections sent, state saved, or a dead letter.

    ``table`` is the ``frames-state`` table (a dict in tests): written while the frame's event is current,
    so its changelog partition is the frame's. ``send`` returns once Kafka has the detections.
    """

    def __init__(self, cameras: CamerasFile, registry: Registry, deid: Deidentifier, evidence: EvidenceStore,
                 *, table: MutableMapping[str, bytes], send: Callable[[list[Detection]], Awaitable[None]],
                 dead_letter: DeadLetterSink, category_of: CategoryOf, origin: str = "gs.frames") -> None:
        self.cameras = cameras
        self.category_of = category_of  # config/categories.yaml's answer: labels each camera's detections
        self.registry = registry
        self.configured = {c.camera_id: c for c in cameras.cameras}
        self.deid = deid
        self.evidence = evidence
        self.table = table
        self._send = send
        self._dead_letter = dead_letter
        self.origin = origin
        self.live: dict[str, Camera] = {}
        self.counts = {"frames_in": 0, "rate_dropped": 0, "stale_dropped": 0, "analysed": 0, "dead_lettered": 0,
                       "detections_sent": 0, "snapshots": 0, "snapshot_failures": 0, "state_saves": 0,
                       "state_restores": 0, "evidence_swept": 0}

    def reconfigure(self, cameras: CamerasFile, deid: Deidentifier | None = None) -> set[str]:
        """Switch to a new cameras config (live config) and return the ids of the cameras whose settings
        changed (added, removed or edited). Their stacks are dropped and rebuilt from the new settings on
        their next frame (their saved state no longer fits: they warm up again); every other camera keeps
        its detectors and state and stamps the new version from now on. ``deid``: the de-identifier for
        a changed ``privacy`` section, built by the caller before anything is swapped."""
        old, new = self.configured, {c.camera_id: c for c in cameras.cameras}
        changed = {cid for cid in old.keys() | new.keys() if old.get(cid) != new.get(cid)}
        if deid is not None:
            self.deid = deid
        if cameras.privacy.retention_days != self.evidence.retention_days:
            self.evidence = EvidenceStore(self.evidence.root, cameras.privacy.retention_days)
        self.cameras, self.configured = cameras, new
        for camera_id, cam in list(self.live.items()):
            if camera_id in changed:
                del self.live[camera_id]
            else:
                cam.stack.relabel(cameras.version)
                cam.fingerprint = fingerprint(cam.stack.config, cameras.version)
        return changed

    def stats(self, partitions: list[int]) -> dict[str, Any]:
        return {**self.counts, "cameras": len(self.live), "partitions": partitions}

    def camera_config(self, frame: Frame) -> CameraConfig:
        cfg = self.configured.get(frame.camera_id) or CameraConfig(camera_id=frame.camera_id)
        device = self.registry.get(frame.camera_id)
        update: dict[str, Any] = {}
        if not cfg.grid_code:
            update["grid_code"] = frame.grid_code or (device.grid_code if device else None) or ""
        if cfg.lat is None and device is not None:
            update |= {"lat": device.location.lat, "lon": device.location.lon}
        return cfg.model_copy(update=update) if update else cfg

    def saved_blob(self, cam: Camera, camera_id: str) -> tuple[dict[str, Any], bytes] | None:
        """The camera's last complete saved state from the table, if it fits this stack's config."""
        head = self.table.get(camera_id)
        if head is None:
            return None
        meta = json.loads(head)
        if meta.get("fingerprint") != cam.fingerprint:
            log.info("camera %s: config changed since its state was saved; warming up again", camera_id)
            return None
        slot = meta["generation"] % 2
        chunks = [self.table.get(f"{camera_id}#{slot}#{i}") for i in range(meta["chunks"])]
        if any(c is None for c in chunks):
            log.warning("camera %s: saved state is incomplete; warming up again", camera_id)
            return None
        return meta, b"".join(c for c in chunks if c is not None)

    async def runtime(self, frame: Frame, partition: int) -> Camera:
        cam = self.live.get(frame.camera_id)
        if cam is not None:
            return cam
        version = self.cameras.version

        def build() -> Camera:
            stack = CameraStack(cfg, category_of=self.category_of, config_version=version)
            return Camera(stack=stack, fps=gate_fps(cfg, stack), partition=partition,
                          fingerprint=fingerprint(cfg, version))

        cfg = self.camera_config(frame)
        cam = build()
        saved = self.saved_blob(cam, frame.camera_id)
        if saved is not None:
            meta, blob = saved
            stack = cam.stack
            try:
                await asyncio.to_thread(lambda: stack.set_state(unpack_state(blob)))
                cam.last_ts = cam.saved_ts = meta["last_ts"]
                cam.generation = meta["generation"]
                self.counts["state_restores"] += 1
            except (ValueError, KeyError, zlib.error, struct.error):
                log.exception("camera %s: saved state does not load; warming up again", frame.camera_id)
                cam = build()
        self.live[frame.camera_id] = cam
        return cam

    async def save(self, camera_id: str, cam: Camera, ts: float) -> None:
        blob = await asyncio.to_thread(lambda: pack_state(cam.stack.get_state()))
        generation = cam.generation + 1
        slot = generation % 2  # the other slot still holds the last complete state until the head moves
        chunks = [blob[i : i + STATE_CHUNK_BYTES] for i in range(0, len(blob), STATE_CHUNK_BYTES)]
        for i, chunk in enumerate(chunks):
            self.table[f"{camera_id}#{slot}#{i}"] = chunk
        self.table[camera_id] = json.dumps({"generation": generation, "chunks": len(chunks), "last_ts": ts,
                                            "fingerprint": cam.fingerprint}).encode()
        cam.generation, cam.saved_ts = generation, ts
        self.counts["state_saves"] += 1

    async def dead_letter(self, reason: str, detail: str, payload: bytes, camera_id: str | None) -> None:
        self.counts["dead_lettered"] += 1
        await self._dead_letter(DeadLetter(
            reason=reason, detail=detail, origin=self.origin, received_at=time.time(),
            payload_b64=base64.b64encode(payload).decode(), device_id=camera_id,
        ), (camera_id or "").encode())

    def with_snapshots(self, image: np.ndarray, found: list[Detection]) -> list[Detection]:
        """Attach one de-identified snapshot of the triggering frame to each detection (in a thread)."""
        if not self.evidence.enabled:
            return found
        try:
            jpeg, regions = snapshot_with_regions(image, self.deid)
        except Exception:  # never fall back to the raw frame: send without a snapshot
            log.exception("snapshot failed; detections go out without one")
            self.counts["snapshot_failures"] += 1
            return found
        out = []
        for d in found:
            ref = self.evidence.write(d.detection_id, jpeg) | {"blurred_regions": len(regions)}
            out.append(replace(d, evidence={**d.evidence, "snapshot": ref}))
            self.counts["snapshots"] += 1
        return out

    def analyse(self, cam: Camera, payload: bytes, ts: float) -> tuple[str | None, list[Detection]]:
        image = decode_jpeg(payload)
        if isinstance(image, str):
            return image, []
        found = cam.stack.update(image, ts)
        return None, self.with_snapshots(image, found) if found else found

    async def on_frame(self, key: bytes | None, value: Any, headers: Any, partition: int) -> None:
        payload = value if isinstance(value, bytes) else b""
        self.counts["frames_in"] += 1
        try:
            frame = Frame.from_kafka(key or b"", payload,
                                     list(headers.items()) if isinstance(headers, Mapping) else headers)
        except (RecordError, ValueError, TypeError) as exc:
            await self.dead_letter("bad_record", f"{self.origin}: {exc}", jpeg_headers(payload), None)
            return
        cam = await self.runtime(frame, partition)
        ts = frame.observed_at
        if cam.last_ts is not None:
            if ts <= cam.last_ts:
                self.counts["stale_dropped"] += 1  # a replay, or older than what the detectors have seen
                return
            if ts - cam.last_ts < 1.0 / cam.fps - 1e-6:
                self.counts["rate_dropped"] += 1  # above the analysis rate: not even decoded
                return
        try:
            problem, found = await asyncio.to_thread(self.analyse, cam, payload, ts)
        except Exception as exc:  # one bad frame must not stop the camera's stream
            log.exception("camera %s: frame at %s failed", frame.camera_id, ts)
            self.live.pop(frame.camera_id, None)  # its stack may be half-updated: reload from the table
            await self.dead_letter("frame_failed", f"{type(exc).__name__}: {exc}", jpeg_headers(payload),
                                   frame.camera_id)
            return
        if problem is not None:
            digest = hashlib.sha256(payload).hexdigest()
            await self.dead_letter("corrupt_jpeg", f"{self.origin}: frame of {frame.camera_id} at {ts} is "
                                   f"{problem} ({len(payload)} bytes, sha256 {digest}); payload_b64 holds its "
                                   "JPEG headers only", jpeg_headers(payload), frame.camera_id)
            return
        cam.last_ts = ts
        self.counts["analysed"] += 1
        if found:
            await self._send(found)  # delivered before the state that records them is saved
            self.counts["detections_sent"] += len(found)
        if found or cam.saved_ts is None or ts - cam.saved_ts >= self.cameras.state_every_s:
            await self.save(frame.camera_id, cam, ts)

    async def sweep_evidence(self) -> None:
        if self.evidence.enabled:
            self.counts["evidence_swept"] += await asyncio.to_thread(self.evidence.sweep, time.time())

    def revoked(self, partitions: set[int]) -> None:
        """Another worker may take these cameras: reload their state from the table when they come back."""
        for camera_id in [c for c, cam in self.live.items() if cam.partition in partitions]:
            del self.live[camera_id]


class FramesStage:
    """``--stages frames``: the camera detectors on ``gs.frames``; ``category_of`` (the case catalogue's
    ``Catalog.category_of``, given by the composition root) labels their detections."""

    def __init__(self, category_of: CategoryOf, registry: Registry | None = None) -> None:
        self.category_of = category_of
        self.processor: FrameProcessor | None = None  # set at register; live config reconfigures it
        self.registry = registry  # the worker's followed registry (else config/devices.yaml, loaded here)

    def register(self, app: faust.App, ctx: StageContext) -> None:
        settings, options = ctx.settings, ctx.options
        cameras: CamerasFile = load_cameras(settings.config_dir / "cameras.yaml")
        deid = Deidentifier(cameras.privacy)  # loads cascades / ONNX once per worker
        evidence = EvidenceStore(settings.run_dir / "evidence", cameras.privacy.retention_days)
        if cameras.privacy.store_raw_frames:
            log.warning("privacy.store_raw_frames is true, but the frames stage never stores raw frames")
        frames_name = ctx.names.frames
        state = app.Table("frames-state", default=None, partitions=options.partitions,
                          key_type=str, value_type=bytes)  # keys json, values raw bytes

        async def send(found: list[Detection]) -> None:
            await send_detections(ctx.topics["detections"], found)

        registry = self.registry if self.registry is not None else Registry.load(settings.config_dir)
        proc = FrameProcessor(cameras, registry, deid, evidence, table=state,
                              send=send, dead_letter=ctx.dead_letter, category_of=self.category_of,
                              origin=frames_name)
        self.processor = proc

        def owned() -> list[int]:
            return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == frames_name)

        ctx.stats["frames"] = lambda: proc.stats(owned())

        @app.agent(ctx.topics["frames"], name=f"{options.app_id}.frames")
        async def frames(stream: faust.StreamT[Any]) -> None:
            # Faust acks an event when the loop comes back for the next one: after it has been processed.
            async for event in stream.events():
                started = time.monotonic()
                ctx.metrics.took("frames", 1)
                await proc.on_frame(event.key, event.value, event.message.headers, event.message.partition)
                ctx.metrics.batch("frames", 1, time.monotonic() - started)

        @app.timer(SWEEP_EVERY_S, on_leader=False)
        async def sweep_evidence() -> None:
            await proc.sweep_evidence()

        @app.task
        async def first_sweep() -> None:
            await proc.sweep_evidence()

        @app.on_partitions_revoked.connect  # type: ignore[arg-type]  # mode types every receiver (sender, *args)
        async def _revoked(app: faust.App, revoked: set[Any], **kwargs: object) -> None:
            proc.revoked({tp.partition for tp in revoked if tp.topic == frames_name})
