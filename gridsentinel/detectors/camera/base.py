"""What every camera detector shares: config fields, identity, frame preparation, rate gating, warm-up,
state codec.

Geometry in config is in normalised image coordinates (0..1, origin top-left), so one config fits any
stream resolution.

A detector is fed decoded frames (``numpy`` BGR or grey, any size) with their event time and returns
:class:`~gridsentinel.core.records.Detection` records. It never reads a clock, a file or the network.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Annotated, Any, ClassVar, Generic, TypeVar

import cv2
import numpy as np
from pydantic import Field, model_validator

from gridsentinel.core.config import StrictModel
from gridsentinel.core.records import Detection
from gridsentinel.core.words import Words

Point = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]
Polygon = Annotated[list[Point], Field(min_length=3, description="Polygon vertices as [x, y] in 0..1.")]

FULL_FRAME: list[Point] = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


class DetectorConfig(StrictModel):
    """Fields every camera detector shares."""

    enabled: bool = Field(True, description="Run this detector on this camera.")
    analysis_fps: float = Field(
        5.0,
        gt=0.0,
        le=60.0,
        description="Highest analysis rate; frames arriving sooner than 1/analysis_fps after the last "
        "analysed one are skipped, so the detector behaves the same at any input rate.",
    )
    warmup_s: float = Field(
        3.0, ge=0.0, le=3600.0, description="Seconds of frames used to learn the scene before any finding."
    )
    max_gap_s: float = Field(
        60.0,
        gt=0.0,
        le=86400.0,
        description="A gap between frames longer than this resets the learnt state (warm-up again).",
    )
    work_width: int = Field(
        320, ge=64, le=1920, description="Frames are downscaled to this width (pixels) before analysis."
    )

    @model_validator(mode="before")
    @classmethod
    def _category_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"category_code", "category_standard"} & data.keys():
            raise ValueError(  # an older cameras.yaml: say where the category went
                "no `category_code` or `category_standard` (a detection's category is set in "
                "config/categories.yaml alone: `kinds`)"
            )
        return data


class GroundGeometry(StrictModel):
    """Where the ground is in the image, so sizes can be judged in metres (flat ground, a camera without
    roll): the scale at an image row is proportional to its distance below the horizon.

    >>> g = GroundGeometry(horizon_y=0.0, bottom_width_m=8.0)
    >>> g.px_per_m(1.0, 320), g.px_per_m(0.5, 320)
    (40.0, 20.0)
    """

    horizon_y: float = Field(
        ...,
        ge=-5.0,
        lt=1.0,
        description="Image row of the horizon (0 = top, 1 = bottom; negative: above the picture, as for a "
        "camera looking steeply down). Measure it where the ground's parallel lines meet.",
    )
    bottom_width_m: float = Field(
        ...,
        gt=0.1,
        le=1000.0,
        description="Width of ground, in metres, spanned by the bottom row of the picture (pace it out, or "
        "read it off a road marking of known length).",
    )

    def px_per_m(self, y: float, width_px: int) -> float:
        """Pixels per metre, at an image ``width_px`` pixels wide, on the ground at normalised row ``y``."""
        depth = (y - self.horizon_y) / (1.0 - self.horizon_y)
        return max(0.0, depth) * width_px / self.bottom_width_m


C = TypeVar("C", bound=DetectorConfig)


@dataclass(frozen=True, slots=True)
class CameraIdentity:
    """Who a finding is about: copied onto every Detection."""

    camera_id: str = "camera"
    grid_code: str = ""
    lat: float | None = None
    lon: float | None = None
    config_version: str = "1"


def check_frame(frame: np.ndarray) -> None:
    """Reject what is not a decoded image (a programming error upstream, not bad device data)."""
    if not isinstance(frame, np.ndarray) or frame.dtype != np.uint8:
        raise TypeError("frame must be a uint8 numpy array")
    if frame.ndim not in (2, 3) or (frame.ndim == 3 and frame.shape[2] not in (1, 3, 4)):
        raise ValueError(f"frame must be HxW or HxWx3 (BGR), got shape {frame.shape}")
    if frame.shape[0] < 8 or frame.shape[1] < 8:
        raise ValueError(f"frame too small: {frame.shape}")


def resize_to_width(frame: np.ndarray, width: int) -> np.ndarray:
    """Downscale (area) or upscale (linear) to ``width`` keeping the aspect ratio."""
    h, w = frame.shape[:2]
    if w == width:
        return frame
    height = max(1, round(h * width / w))
    interp = cv2.INTER_AREA if width < w else cv2.INTER_LINEAR
    return cv2.resize(frame, (width, height), interpolation=interp)


def to_bgr(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2 or frame.shape[2] == 1:
        return cv2.cvtColor(frame, cv2.COLOR_GRAY2BGR)
    if frame.shape[2] == 4:
        return cv2.cvtColor(frame, cv2.COLOR_BGRA2BGR)
    return frame


def to_gray(frame: np.ndarray) -> np.ndarray:
    if frame.ndim == 2:
        return frame
    if frame.shape[2] == 1:
        return frame[:, :, 0]
    code = cv2.COLOR_BGRA2GRAY if frame.shape[2] == 4 else cv2.COLOR_BGR2GRAY
    return cv2.cvtColor(frame, code)


def polygon_mask(polygons: Sequence[Sequence[tuple[float, float]]], shape: tuple[int, int]) -> np.ndarray:
    """Rasterise normalised polygons into a uint8 mask (255 inside) of ``shape`` (h, w)."""
    h, w = shape
    mask = np.zeros((h, w), np.uint8)
    for poly in polygons:
        pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in poly], np.int32)
        cv2.fillPoly(mask, [pts], 255)
    return mask


def ema_alpha(dt: float, tau: float) -> float:
    """Weight of a new sample in an exponential average with time constant ``tau`` after ``dt`` s,
    so learning speed depends on elapsed time, not on how many frames arrived."""
    if dt <= 0.0:
        return 0.0
    return 1.0 - math.exp(-dt / tau)


def encode_state(state: dict[str, Any]) -> bytes:
    """Arrays as .npy inside an .npz, everything else as JSON; no pickle."""
    arrays = {k: v for k, v in state.items() if isinstance(v, np.ndarray)}
    meta = {k: v for k, v in state.items() if not isinstance(v, np.ndarray)}
    buf = io.BytesIO()
    # numpy's stub checks **arrays against savez's allow_pickle: bool keyword
    np.savez(buf, __meta__=np.frombuffer(json.dumps(meta).encode(), np.uint8), **arrays)  # type: ignore[arg-type]
    return buf.getvalue()


def decode_state(raw: bytes) -> dict[str, Any]:
    with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
        state: dict[str, Any] = json.loads(npz["__meta__"].tobytes().decode())
        for k in npz.files:
            if k != "__meta__":
                state[k] = npz[k].copy()
    return state


class CameraDetector(ABC, Generic[C]):
    """Base of the camera detectors: ``update(frame, ts) -> list[Detection]``.

    The base skips frames that arrive faster than ``analysis_fps``, re-warms after a gap longer than
    ``max_gap_s``, ignores frames older than the last one, and suppresses findings during warm-up.
    Subclasses implement ``_reset`` (fresh state), ``_analyse`` and the ``_state``/``_restore`` pair.
    """

    name: ClassVar[str]
    kind: ClassVar[str]
    config_type: ClassVar[type[DetectorConfig]]

    def __init__(
        self,
        config: C | None = None,
        *,
        camera: CameraIdentity | None = None,
        ignore: Sequence[Sequence[tuple[float, float]]] = (),
    ) -> None:
        self.config: C = config if config is not None else self.config_type()  # type: ignore[assignment]
        self.camera = camera or CameraIdentity()
        self.ignore = [list(p) for p in ignore]
        self._last_ts: float | None = None
        self._start_ts: float | None = None
        self._reset()

    # -- the uniform interface ------------------------------------------------------------------
    def update(self, frame: np.ndarray, ts: float) -> list[Detection]:
        """Analyse one frame taken at event time ``ts`` (Unix seconds); return new findings."""
        check_frame(frame)
        ts = float(ts)
        if not math.isfinite(ts):
            raise ValueError("ts must be finite")
        last = self._last_ts
        if last is not None:
            if ts <= last:
                return []
            if ts - last < 1.0 / self.config.analysis_fps - 1e-6:
                return []
            if ts - last > self.config.max_gap_s:
                self.reset()
                last = None
        dt = 0.0 if last is None else ts - last
        self._last_ts = ts
        if self._start_ts is None:
            self._start_ts = ts
        warming = ts - self._start_ts < self.config.warmup_s
        return self._analyse(frame, ts, dt, warming)

    def reset(self) -> None:
        """Forget everything learnt (the next frame starts a new warm-up)."""
        self._last_ts = None
        self._start_ts = None
        self._reset()

    @property
    def last_analysed(self) -> float | None:
        """Event time of the last frame analysed (not skipped), or None before the first."""
        return self._last_ts

    @property
    def warmed_up(self) -> bool:
        return (
            self._start_ts is not None
            and self._last_ts is not None
            and self._last_ts - self._start_ts >= self.config.warmup_s
        )

    def get_state(self) -> bytes:
        """Everything learnt, as bytes (for a Faust table); ``set_state`` restores it."""
        state = self._state()
        state["__last_ts"] = self._last_ts
        state["__start_ts"] = self._start_ts
        state["__name"] = self.name
        return encode_state(state)

    def set_state(self, raw: bytes) -> None:
        state = decode_state(raw)
        if state.get("__name") != self.name:
            raise ValueError(f"state belongs to {state.get('__name')!r}, not {self.name!r}")
        self._last_ts = state.pop("__last_ts")
        self._start_ts = state.pop("__start_ts")
        state.pop("__name")
        self._restore(state)

    # -- for subclasses -------------------------------------------------------------------------
    @abstractmethod
    def _reset(self) -> None: ...

    @abstractmethod
    def _analyse(self, frame: np.ndarray, ts: float, dt: float, warming: bool) -> list[Detection]: ...

    @abstractmethod
    def _state(self) -> dict[str, Any]: ...

    @abstractmethod
    def _restore(self, state: dict[str, Any]) -> None: ...

    def _mask(
        self,
        shape: tuple[int, int],
        include: Sequence[Sequence[tuple[float, float]]] | None = None,
    ) -> np.ndarray:
        """Mask of the analysed area at ``shape``: ``include`` polygons (or the frame) minus ignore areas."""
        mask = polygon_mask(include, shape) if include is not None else np.full(shape, 255, np.uint8)
        if self.ignore:
            mask[polygon_mask(self.ignore, shape) > 0] = 0
        return mask

    def _detection(
        self,
        ts: float,
        *,
        kind: str,
        severity: str,
        key: str = "",
        score: float | None = None,
        value: float | None = None,
        evidence: dict[str, Any] | None = None,
        message: str | Words = "",
    ) -> Detection:
        cam = self.camera
        digest = hashlib.sha256(
            f"{cam.camera_id}|{self.name}|{cam.config_version}|{kind}|{key}|{ts:.3f}".encode()
        ).hexdigest()
        return Detection(
            detection_id=digest[:32],
            source="camera",
            detector=self.name,
            detector_version=cam.config_version,
            kind=kind,
            # config/categories.yaml labels it: CameraStack fills these from its ``category_of``
            category_code="",
            category_standard="",
            severity=severity,
            grid_code=cam.grid_code,
            observed_at=ts,
            device_id=cam.camera_id,
            lat=cam.lat,
            lon=cam.lon,
            value=None if value is None else float(value),
            score=None if score is None else float(score),
            evidence=evidence or {},
            message=Words.of(message).en,
            messages=Words.of(message).messages(),
        )
