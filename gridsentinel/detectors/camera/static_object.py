"""Static objects (illegal dumping, road obstruction): long/short background models plus dwell time.

A pixel is *static foreground* when it differs from the long background (the empty scene) but matches
the short background (it is not moving). Each pixel keeps how long it has been static; a connected blob
of pixels static for ``dwell_s`` inside a region, and large enough, is reported once.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

from gridsentinel.core.config import StrictModel
from gridsentinel.core.records import Detection
from gridsentinel.detectors.camera.base import (
    FULL_FRAME,
    CameraDetector,
    DetectorConfig,
    Polygon,
    ema_alpha,
    resize_to_width,
    to_gray,
)


class StaticRegion(StrictModel):
    """A region watched for objects that appear and stay (dumped waste, obstructions)."""

    name: str = Field(..., min_length=1, max_length=64, description="Region name, unique per camera.")
    kind: Literal["illegal_dumping", "road_obstruction"] = Field(
        "illegal_dumping", description="What a static object in this region means."
    )
    polygon: Polygon = Field(default_factory=lambda: list(FULL_FRAME))
    dwell_s: float = Field(
        60.0, ge=1.0, le=86400.0, description="An object must stay this long (seconds) before it is reported."
    )
    min_area: float = Field(
        0.002, gt=0.0, le=1.0, description="Smallest object, as a fraction of the frame area."
    )
    severity: Literal["advisory", "warning", "alarm", "critical"] = Field(
        "advisory", description="Severity of findings in this region."
    )


class StaticObjectConfig(DetectorConfig):
    """Long/short background models plus a per-pixel dwell timer."""

    detector: Literal["static_object"] = Field(
        "static_object", exclude=True, description="The detector this configures (the key of its section says it)."
    )

    regions: list[StaticRegion] = Field(
        default_factory=lambda: [StaticRegion(name="frame")],
        description="Watched regions; default: the whole frame as illegal_dumping.",
    )
    analysis_fps: float = Field(5.0, gt=0.0, le=60.0, description="Highest analysis rate (frames/s).")
    warmup_s: float = Field(5.0, ge=0.0, le=3600.0, description="Seconds used to learn the background.")
    short_tau_s: float = Field(
        1.0, gt=0.0, le=600.0, description="Time constant of the short background (what is not moving now)."
    )
    long_tau_s: float = Field(
        120.0,
        gt=0.0,
        le=86400.0,
        description="Time constant of the long background (the empty scene); frozen under static objects.",
    )
    diff_threshold: float = Field(
        22.0, ge=1.0, le=255.0, description="Grey-level difference that counts as 'changed'."
    )
    absorb_s: float = Field(
        600.0,
        gt=0.0,
        le=86400.0,
        description="After this long (seconds) a reported object is absorbed into the background.",
    )
    max_changed_fraction: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="More of a region than this changing at once is a global change (light, camera), "
        "not an object: the background is relearnt.",
    )


class StaticObjectDetector(CameraDetector[StaticObjectConfig]):
    """Left-object detector.

    >>> import numpy as np
    >>> from gridsentinel.detectors.camera.static_object import StaticRegion
    >>> cfg = StaticObjectConfig(warmup_s=2, regions=[StaticRegion(name="road", dwell_s=5)])
    >>> det = StaticObjectDetector(cfg)
    >>> scene = np.full((240, 320, 3), 90, np.uint8)
    >>> with_box = scene.copy(); with_box[100:140, 150:200] = 200
    >>> found = [d for i in range(60) for d in det.update(scene if i < 20 else with_box, i / 5)]
    >>> found[0].kind, found[0].evidence["region"], 9.0 <= found[0].observed_at <= 11.0
    ('illegal_dumping', 'road', True)
    """

    name: ClassVar[str] = "camera.static_object"
    kind: ClassVar[str] = "static_object"
    config_type: ClassVar[type[StaticObjectConfig]] = StaticObjectConfig

    def _reset(self) -> None:
        self._long: np.ndarray | None = None
        self._short: np.ndarray | None = None
        self._age: np.ndarray | None = None
        self._reported: np.ndarray | None = None
        self._masks: list[np.ndarray] = []
        self._shape: tuple[int, int] | None = None

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        gray = to_gray(resize_to_width(frame, self.config.work_width))
        return cv2.GaussianBlur(gray, (5, 5), 0).astype(np.float32)

    def _ensure_masks(self, shape: tuple[int, int]) -> None:
        if self._shape != shape:
            self._shape = shape
            self._masks = [self._mask(shape, [r.polygon]) > 0 for r in self.config.regions]

    def _analyse(self, frame: np.ndarray, ts: float, dt: float, warming: bool) -> list[Detection]:
        cfg = self.config
        g = self._prepare(frame)
        self._ensure_masks(g.shape)
        if self._long is None or self._long.shape != g.shape:
            self._long, self._short = g.copy(), g.copy()
            self._age = np.zeros_like(g)
            self._reported = np.zeros(g.shape, bool)
            return []
        assert self._short is not None and self._age is not None and self._reported is not None
        a_short = ema_alpha(dt, cfg.short_tau_s)
        if warming:
            # Learn the empty scene quickly: anything moving through is averaged away.
            cv2.accumulateWeighted(g, self._long, ema_alpha(dt, max(cfg.short_tau_s, cfg.warmup_s / 4)))
            cv2.accumulateWeighted(g, self._short, a_short)
            return []
        d_long = np.abs(g - self._long) > cfg.diff_threshold
        d_short = np.abs(g - self._short) > cfg.diff_threshold
        watched = np.logical_or.reduce(self._masks) if self._masks else np.zeros(g.shape, bool)
        changed = d_long & watched
        if watched.any() and changed.sum() > cfg.max_changed_fraction * watched.sum():
            # Lighting change or a moved camera, not an object: relearn.
            self._long[:] = g
            self._short[:] = g
            self._age[:] = 0
            self._reported[:] = False
            return []
        static = d_long & ~d_short
        # Static pixels age; a pixel with something moving over it loses age as fast as time passes
        # (a brief occlusion costs little, a swaying branch never accumulates); a pixel back to the
        # background starts again.
        self._age = np.where(
            static, self._age + dt, np.where(d_long, np.maximum(self._age - dt, 0.0), 0.0)
        ).astype(np.float32)
        self._reported &= d_long
        cv2.accumulateWeighted(g, self._short, a_short)
        # The long model learns the background; under foreground it learns 20 times slower, so a wrong
        # background (learnt while something was there) still heals, long after any dwell time.
        a_long = ema_alpha(dt, cfg.long_tau_s)
        self._long += np.where(d_long, a_long / 20, a_long).astype(np.float32) * (g - self._long)
        absorbed = self._age >= cfg.absorb_s
        if absorbed.any():
            self._long[absorbed] = g[absorbed]
            self._age[absorbed] = 0.0
            self._reported[absorbed] = False

        out: list[Detection] = []
        h, w = g.shape
        for region, mask in zip(cfg.regions, self._masks, strict=True):
            ripe = ((self._age >= region.dwell_s) & mask).astype(np.uint8)
            if not ripe.any():
                continue
            n, labels, stats, _ = cv2.connectedComponentsWithStats(ripe, connectivity=8)
            for i in range(1, n):
                x, y, bw, bh, area = (int(v) for v in stats[i])
                if area < region.min_area * h * w:
                    continue
                blob = labels == i
                seen = bool(self._reported[blob].any())
                self._reported |= blob  # a growing blob already reported stays one finding
                if seen:
                    continue
                box = [round(x / w, 4), round(y / h, 4), round(bw / w, 4), round(bh / h, 4)]
                dwell = float(self._age[blob].max())
                out.append(
                    self._detection(
                        ts,
                        kind=region.kind,
                        severity=region.severity,
                        key=f"{region.name}:{box}",
                        score=min(1.0, dwell / region.dwell_s),
                        value=dwell,
                        evidence={
                            "region": region.name,
                            "bbox": box,
                            "area": round(area / (h * w), 5),
                            "dwell_s": round(dwell, 1),
                        },
                        message=f"camera {self.camera.camera_id}: object in {region.name} for {dwell:.0f} s",
                    )
                )
        return out

    def static_mask(self) -> np.ndarray | None:
        """Seconds each pixel has been static (work resolution), for debugging and evidence."""
        return None if self._age is None else self._age.copy()

    def _state(self) -> dict[str, Any]:
        if self._long is None:
            return {"empty": True}
        assert self._short is not None and self._age is not None and self._reported is not None
        return {
            "empty": False,
            "long": self._long,
            "short": self._short,
            "age": self._age,
            "reported": self._reported,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self._reset()
        if not state["empty"]:
            self._long, self._short = state["long"], state["short"]
            self._age, self._reported = state["age"], state["reported"].astype(bool)
