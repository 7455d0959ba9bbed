"""Waterlogging on a road region: the surface turns smooth and changes brightness, for long enough.

Per region, cells of the road are compared with a learnt dry reference (edge energy and brightness,
compensated for global lighting using the rest of the frame). When ``min_fraction`` of the region looks
flooded for ``duration_s`` seconds, one advisory finding is emitted. Wet-but-drained roads and night
scenes can look similar; that is why it is advisory and gated on duration.
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
    CameraDetector,
    DetectorConfig,
    Polygon,
    ema_alpha,
    resize_to_width,
    to_gray,
)


class WaterRegion(StrictModel):
    """A road surface watched for standing water."""

    name: str = Field(..., min_length=1, max_length=64, description="Region name, unique per camera.")
    polygon: Polygon = Field(..., description="The road surface, [x, y] in 0..1.")
    min_fraction: float = Field(
        0.3, gt=0.0, le=1.0, description="Fraction of the region that must look flooded."
    )


class WaterloggingConfig(DetectorConfig):
    """Standing water on a road region: smooth, changed surface, gated on duration. Advisory."""

    detector: Literal["waterlogging"] = Field(
        "waterlogging", exclude=True, description="The detector this configures (the key of its section says it)."
    )

    enabled: bool = Field(False, description="Run this detector (needs at least one road region).")
    regions: list[WaterRegion] = Field(default_factory=list, description="Road regions to watch.")
    work_width: int = Field(160, ge=64, le=1920, description="Analysis width (pixels).")
    analysis_fps: float = Field(1.0, gt=0.0, le=30.0, description="Highest analysis rate (frames/s).")
    warmup_s: float = Field(10.0, ge=0.0, le=86400.0, description="Seconds used to learn the dry road.")
    cell_px: int = Field(8, ge=4, le=64, description="Side of the analysis cells (work-resolution pixels).")
    reference_tau_s: float = Field(
        1800.0,
        gt=0.0,
        le=864000.0,
        description="Time constant of the dry-road reference (adapts only while dry).",
    )
    texture_ratio: float = Field(
        0.6, ge=0.0, le=1.0, description="Water smooths the surface: edge energy below this fraction of dry."
    )
    brightness_delta: float = Field(
        12.0, ge=0.0, le=255.0, description="Water changes the surface brightness by at least this much."
    )
    duration_s: float = Field(
        300.0, ge=0.0, le=86400.0, description="The region must look flooded this long before a finding."
    )
    clear_s: float = Field(300.0, ge=0.0, le=86400.0, description="Dry for this long clears the alarm.")
    severity: Literal["advisory", "warning", "alarm", "critical"] = Field(
        "advisory", description="Severity of waterlogging findings."
    )


class WaterloggingDetector(CameraDetector[WaterloggingConfig]):
    """Road waterlogging detector.

    >>> import numpy as np
    >>> from gridsentinel.detectors.camera.waterlogging import WaterRegion
    >>> from gridsentinel.detectors.camera import synthetic
    >>> road = [(0.1, 0.5), (0.9, 0.5), (0.9, 0.95), (0.1, 0.95)]
    >>> cfg = WaterloggingConfig(enabled=True, regions=[WaterRegion(name="road", polygon=road)],
    ...                          warmup_s=5, duration_s=20)
    >>> scene = np.random.default_rng(2).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    >>> flooded = synthetic.puddle(scene, road)
    >>> det = WaterloggingDetector(cfg)
    >>> found = [d for t in range(60) for d in det.update(scene if t < 10 else flooded, float(t))]
    >>> found[0].kind, found[0].severity, found[0].observed_at
    ('waterlogging', 'advisory', 30.0)
    """

    name: ClassVar[str] = "camera.waterlogging"
    kind: ClassVar[str] = "waterlogging"
    config_type: ClassVar[type[WaterloggingConfig]] = WaterloggingConfig

    def _reset(self) -> None:
        self._ref_tex: np.ndarray | None = None
        self._ref_gray: np.ndarray | None = None
        self._ref_outside = 0.0
        self._masks: list[np.ndarray] = []
        self._outside: np.ndarray | None = None
        self._since: dict[str, float | None] = {r.name: None for r in self.config.regions}
        self._dry_since: dict[str, float | None] = {r.name: None for r in self.config.regions}
        self._alarm: dict[str, bool] = {r.name: False for r in self.config.regions}
        self.last_fraction: dict[str, float] = {}

    def _cells(self, img: np.ndarray) -> np.ndarray:
        c = self.config.cell_px
        h, w = img.shape[:2]
        return cv2.resize(img, (max(1, w // c), max(1, h // c)), interpolation=cv2.INTER_AREA)

    def _analyse(self, frame: np.ndarray, ts: float, dt: float, warming: bool) -> list[Detection]:
        cfg = self.config
        if not cfg.regions:
            return []
        gray = to_gray(resize_to_width(frame, cfg.work_width)).astype(np.float32)
        tex = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        c_gray, c_tex = self._cells(gray), self._cells(tex)
        if not self._masks or self._masks[0].shape != c_gray.shape:
            full = [
                self._cells(self._mask(gray.shape, [r.polygon]).astype(np.float32)) > 127 for r in cfg.regions
            ]
            self._masks = full
            self._outside = ~np.logical_or.reduce(full)
        assert self._outside is not None
        outside = float(c_gray[self._outside].mean()) if self._outside.any() else float(c_gray.mean())
        if self._ref_gray is None or self._ref_tex is None or self._ref_gray.shape != c_gray.shape:
            self._ref_gray, self._ref_tex, self._ref_outside = c_gray, c_tex, outside
            return []
        gain = outside / max(self._ref_outside, 1.0)  # global lighting change seen outside the road
        wet = (
            (c_tex < cfg.texture_ratio * self._ref_tex)
            & (np.abs(c_gray - gain * self._ref_gray) > cfg.brightness_delta)
            & (self._ref_tex > 4.0)
        )
        alpha = ema_alpha(dt, cfg.warmup_s / 4 if warming else cfg.reference_tau_s)
        learn = np.full(c_gray.shape, alpha, np.float32)
        if not warming:
            learn[wet] = 0.0
        self._ref_gray += learn * (c_gray - self._ref_gray)
        self._ref_tex += learn * (c_tex - self._ref_tex)
        self._ref_outside += alpha * (outside - self._ref_outside)
        if warming:
            return []
        out: list[Detection] = []
        for region, mask in zip(cfg.regions, self._masks, strict=True):
            frac = float(wet[mask].mean()) if mask.any() else 0.0
            self.last_fraction[region.name] = frac
            if frac >= region.min_fraction:
                self._dry_since[region.name] = None
                since = self._since[region.name]
                if since is None:
                    since = self._since[region.name] = ts
                if not self._alarm[region.name] and ts - since >= cfg.duration_s:
                    self._alarm[region.name] = True
                    out.append(
                        self._detection(
                            ts,
                            kind=self.kind,
                            severity=cfg.severity,
                            key=region.name,
                            score=frac,
                            value=frac,
                            evidence={
                                "region": region.name,
                                "flooded_fraction": round(frac, 3),
                                "held_s": round(ts - since, 1),
                            },
                            message=Words(f"camera {self.camera.camera_id}: standing water on {region.name} "
                                          f"({frac:.0%} of it) for {ts - since:.0f} s",
                                          f"摄像头 {self.camera.camera_id}：{region.name} 积水（占 {frac:.0%}），"
                                          f"已持续 {ts - since:.0f} 秒"),
                        )
                    )
            else:
                self._since[region.name] = None
                if self._alarm[region.name]:
                    dry = self._dry_since[region.name]
                    if dry is None:
                        dry = self._dry_since[region.name] = ts
                    if ts - dry >= cfg.clear_s:
                        self._alarm[region.name] = False
                        self._dry_since[region.name] = None
        return out

    def _state(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "ref_outside": self._ref_outside,
            "since": self._since,
            "dry_since": self._dry_since,
            "alarm": self._alarm,
        }
        if self._ref_gray is not None and self._ref_tex is not None:
            st.update(ref_gray=self._ref_gray, ref_tex=self._ref_tex)
        return st

    def _restore(self, state: dict[str, Any]) -> None:
        self._reset()
        self._ref_outside = float(state["ref_outside"])
        self._since.update(state["since"])
        self._dry_since.update(state["dry_since"])
        self._alarm.update(state["alarm"])
        self._ref_gray, self._ref_tex = state.get("ref_gray"), state.get("ref_tex")
