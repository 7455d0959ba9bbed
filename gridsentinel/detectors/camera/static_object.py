"""Static objects (illegal dumping, road obstruction): long/short background models plus dwell time.

A pixel is *static foreground* when it differs from the long background (the empty scene) but matches
the short background (it is not moving). Each pixel keeps how long it has been static; a connected blob
of pixels static for ``dwell_s`` inside a region, large enough, and *rigid* is reported once.

Rigid: a left bag does not move at all, a person standing still does (sway, head, hands). Each pixel
keeps how often it moved lately (``restless_tau_s``); a blob whose pixels and rim moved in more than
``max_restless`` of that time is held back until it is still. With the camera's ground geometry, the
smallest object is given in metres (``min_size_m``) and scaled to the row where the object stands, and a
blob of a standing person's height and shape is never reported.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

from gridsentinel.core.config import StrictModel
from gridsentinel.core.records import Detection
from gridsentinel.core.words import Words
from gridsentinel.detectors.camera.base import (
    FULL_FRAME,
    CameraDetector,
    DetectorConfig,
    GroundGeometry,
    Polygon,
    ema_alpha,
    resize_to_width,
    to_bgr,
)

WARMUP_SAMPLES = 9


def _diff(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Largest absolute difference over the colour channels."""
    return np.asarray(np.abs(a - b).max(axis=2))


class StaticRegion(StrictModel):
    """A region watched for objects that appear and stay (dumped waste, obstructions)."""

    name: str = Field(..., min_length=1, max_length=64, description="Region name, unique per camera.")
    kind: Literal["illegal_dumping", "road_obstruction"] = Field(
        "illegal_dumping", description="What a static object in this region means."
    )
    polygon: Polygon = Field(default_factory=lambda: list(FULL_FRAME))
    dwell_s: float = Field(
        20.0,
        ge=1.0,
        le=86400.0,
        description="An object must stay this long (seconds) before it is reported; 10-30 s suits a "
        "street (a bag left behind), longer a place where things are set down for a while.",
    )
    min_size_m: float = Field(
        0.3,
        gt=0.0,
        le=50.0,
        description="Smallest object (side of a square, metres) when the camera has a `geometry`: its "
        "area in pixels is scaled to the row where the object stands.",
    )
    min_area: float = Field(
        0.002,
        gt=0.0,
        le=1.0,
        description="Smallest object, as a fraction of the frame area, when the camera has no `geometry` "
        "(one size for near and far: set the geometry instead where you can).",
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
    diff_threshold: float = Field(22.0, ge=1.0, le=255.0, description="Grey-level difference that counts as 'changed'.")
    absorb_s: float = Field(
        600.0,
        gt=0.0,
        le=86400.0,
        description="After this long (seconds) a reported object is absorbed into the background.",
    )
    geometry: GroundGeometry | None = Field(
        None,
        description="The ground as the camera sees it (horizon row, width of the bottom row in metres): "
        "sizes are then judged in metres. Without it, `min_area` applies everywhere.",
    )
    motion_threshold: float = Field(
        8.0, ge=1.0, le=255.0, description="Frame-to-frame grey-level change that counts as 'moved'."
    )
    restless_tau_s: float = Field(
        4.0, gt=0.0, le=600.0, description="Time constant (seconds) of each pixel's recent-motion share."
    )
    max_restless: float = Field(
        0.04,
        ge=0.0,
        le=1.0,
        description="A blob whose pixels and rim moved in more than this share of recent frames is not "
        "rigid (a person standing, a swaying branch) and is not reported while so.",
    )
    person_min_height_m: float = Field(
        1.0,
        gt=0.0,
        le=5.0,
        description="With `geometry`: a blob at least this tall (metres at its foot row)...",
    )
    person_min_aspect: float = Field(
        1.6, gt=0.0, le=20.0, description="...and at least this many times taller than wide is a person."
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
        self._prev: np.ndarray | None = None
        self._samples: list[np.ndarray] = []  # warm-up frames (uint8) whose median is the first background
        self._sampled_at = -np.inf
        self._restless: np.ndarray | None = None
        self.held_back: list[dict[str, Any]] = []  # blobs ripe but not reported in the last frame, and why
        self._masks: list[np.ndarray] = []
        self._shape: tuple[int, int] | None = None

    def _prepare(self, frame: np.ndarray) -> np.ndarray:
        # Colour, not grey: an orange sack on grey tarmac, or a grey ball on grass, can have the same
        # grey level as what it covers.
        bgr = to_bgr(resize_to_width(frame, self.config.work_width))
        return cv2.GaussianBlur(bgr, (5, 5), 0).astype(np.float32)

    def _ensure_masks(self, shape: tuple[int, int]) -> None:
        if self._shape != shape:
            self._shape = shape
            self._masks = [self._mask(shape, [r.polygon]) > 0 for r in self.config.regions]

    def _analyse(self, frame: np.ndarray, ts: float, dt: float, warming: bool) -> list[Detection]:
        cfg = self.config
        g = self._prepare(frame)
        shape = (g.shape[0], g.shape[1])
        self._ensure_masks(shape)
        if self._long is None or self._long.shape != g.shape:
            self._long, self._short, self._prev = g.copy(), g.copy(), g.copy()
            self._samples, self._sampled_at = [g.astype(np.uint8)], ts
            self._age = np.zeros(shape, np.float32)
            self._restless = np.zeros(shape, np.float32)
            self._reported = np.zeros(shape, bool)
            return []
        assert self._short is not None and self._age is not None and self._reported is not None
        assert self._prev is not None and self._restless is not None
        moved = (_diff(g, self._prev) > cfg.motion_threshold).astype(np.float32)
        self._prev = g
        self._restless += ema_alpha(dt, cfg.restless_tau_s) * (moved - self._restless)
        a_short = ema_alpha(dt, cfg.short_tau_s)
        if warming:
            # Learn the empty scene as the median of about ten frames spread over the warm-up: someone
            # walking through covers a pixel in one or two of them, and an average would keep their
            # trace (a "ghost" reported later as an object where they passed).
            if ts - self._sampled_at >= cfg.warmup_s / WARMUP_SAMPLES:
                self._samples.append(g.astype(np.uint8))
                self._sampled_at = ts
                self._long = np.median(np.stack(self._samples), axis=0).astype(np.float32)
            cv2.accumulateWeighted(g, self._short, a_short)
            return []
        self._samples = []
        d_long = _diff(g, self._long) > cfg.diff_threshold
        d_short = _diff(g, self._short) > cfg.diff_threshold
        watched = np.logical_or.reduce(self._masks) if self._masks else np.zeros(shape, bool)
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
        self._age = np.where(static, self._age + dt, np.where(d_long, np.maximum(self._age - dt, 0.0), 0.0)).astype(
            np.float32
        )
        self._reported &= d_long
        cv2.accumulateWeighted(g, self._short, a_short)
        # The long model learns the background; under foreground it learns 20 times slower, so a wrong
        # background (learnt while something was there) still heals, long after any dwell time.
        a_long = ema_alpha(dt, cfg.long_tau_s)
        self._long += np.where(d_long, a_long / 20, a_long).astype(np.float32)[:, :, None] * (g - self._long)
        absorbed = self._age >= cfg.absorb_s
        if absorbed.any():
            self._long[absorbed] = g[absorbed]
            self._age[absorbed] = 0.0
            self._reported[absorbed] = False

        out: list[Detection] = []
        self.held_back = []
        h, w = shape
        rim = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (13, 13))
        for region, mask in zip(cfg.regions, self._masks, strict=True):
            ripe = ((self._age >= region.dwell_s) & mask).astype(np.uint8)
            if not ripe.any():
                continue
            n, labels, stats, _ = cv2.connectedComponentsWithStats(ripe, connectivity=8)
            for i in range(1, n):
                x, y, bw, bh, area = (int(v) for v in stats[i])
                foot = (y + bh) / h  # normalised row where the object stands
                if area < self._min_pixels(region, foot, w, h):
                    continue
                blob = labels == i
                box = [round(x / w, 4), round(y / h, 4), round(bw / w, 4), round(bh / h, 4)]
                if self._reported[blob].any():
                    self._reported |= blob  # a growing blob already reported stays one finding
                    continue
                if self._ghost(g, blob):
                    # Something that stood there while the background was learnt has gone: what is
                    # "new" is the empty scene. Take it into the background instead of reporting it.
                    self._long[blob] = g[blob]
                    self._age[blob] = 0.0
                    self.held_back.append({"bbox": box, "why": "ghost (background uncovered)"})
                    continue
                near = cv2.dilate(blob.astype(np.uint8), rim) > 0
                restless = float(self._restless[near].mean())
                if restless > cfg.max_restless:
                    self.held_back.append({"bbox": box, "why": "not rigid", "restless": round(restless, 3)})
                    continue
                if self._person_shaped(bw, bh, foot, w):
                    self.held_back.append({"bbox": box, "why": "person-shaped"})
                    continue
                self._reported |= blob
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
                            "restless": round(restless, 3),
                        },
                        message=Words(f"camera {self.camera.camera_id}: object in {region.name} for {dwell:.0f} s",
                                      f"摄像头 {self.camera.camera_id}：{region.name} 有物品滞留 {dwell:.0f} 秒"),
                    )
                )
        return out

    def _ghost(self, g: np.ndarray, blob: np.ndarray) -> bool:
        """A left object brings its own outline; an uncovered background does not: the outline's edges
        are stronger in the learnt background than in the current frame."""
        assert self._long is not None
        k = np.ones((3, 3), np.uint8)
        b8 = blob.astype(np.uint8)
        outline = (cv2.dilate(b8, k) > 0) & ~(cv2.erode(b8, k) > 0)
        ys, xs = np.nonzero(outline)
        y0, y1, x0, x1 = max(0, ys.min() - 1), ys.max() + 2, max(0, xs.min() - 1), xs.max() + 2
        cur, bg = g[y0:y1, x0:x1].mean(axis=2), self._long[y0:y1, x0:x1].mean(axis=2)
        sel = outline[y0:y1, x0:x1]

        def edges(img: np.ndarray) -> float:
            mag = np.abs(cv2.Sobel(img, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(img, cv2.CV_32F, 0, 1))
            return float(mag[sel].mean())

        return edges(cur) < edges(bg)

    def _min_pixels(self, region: StaticRegion, foot: float, w: int, h: int) -> float:
        """Smallest blob (pixels at work resolution) for an object standing at normalised row ``foot``."""
        geo = self.config.geometry
        if geo is None:
            return region.min_area * h * w
        side = region.min_size_m * geo.px_per_m(foot, w)
        return max(9.0, 0.6 * side * side)  # 0.6: a bag or a sack fills more than half its box

    def _person_shaped(self, bw: int, bh: int, foot: float, w: int) -> bool:
        """Tall and narrow like someone standing (needs the geometry to know how tall is tall)."""
        geo = self.config.geometry
        if geo is None:
            return False
        ppm = geo.px_per_m(foot, w)
        return ppm > 0 and bh / ppm >= self.config.person_min_height_m and bh >= self.config.person_min_aspect * bw

    def static_mask(self) -> np.ndarray | None:
        """Seconds each pixel has been static (work resolution), for debugging and evidence."""
        return None if self._age is None else self._age.copy()

    def _state(self) -> dict[str, Any]:
        if self._long is None:
            return {"empty": True}
        assert self._short is not None and self._age is not None and self._reported is not None
        assert self._prev is not None and self._restless is not None
        return {
            "empty": False,
            "long": self._long,
            "short": self._short,
            "age": self._age,
            "reported": self._reported,
            "prev": self._prev.astype(np.uint8),  # a blurred uint8 frame: whole numbers, no loss
            "restless": self._restless,
            "samples": np.stack(self._samples) if self._samples else np.zeros((0, 1, 1), np.uint8),
            "sampled_at": self._sampled_at if np.isfinite(self._sampled_at) else None,
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self._reset()
        if not state["empty"]:
            self._long, self._short = state["long"], state["short"]
            self._age, self._reported = state["age"], state["reported"].astype(bool)
            self._prev, self._restless = state["prev"].astype(np.float32), state["restless"]
            self._samples = list(state["samples"])
            self._sampled_at = -np.inf if state["sampled_at"] is None else state["sampled_at"]
