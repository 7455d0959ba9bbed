"""Fire and smoke: colour + motion + persistence, on a grid of cells. Advisory: a person confirms.

* smoke cell: greyish (low saturation), changed from the background, veiling it (less edge energy)
  and restless (its brightness keeps changing);
* fire cell: enough flame-coloured pixels (red-orange-yellow, bright, saturated) that flicker.

An alarm needs ``min_cells`` such cells (or ``min_fire_cells`` fire cells) for ``persist_s`` seconds.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

from gridsentinel.core.records import Detection
from gridsentinel.detectors.camera.base import CameraDetector, DetectorConfig, ema_alpha, resize_to_width, to_bgr


def flame_mask(bgr: np.ndarray) -> np.ndarray:
    """Flame-coloured pixels: hue red..yellow, saturated, bright, red above green above blue."""
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    b, g, r = cv2.split(bgr)
    hue_ok = hsv[:, :, 0] <= 35
    return hue_ok & (hsv[:, :, 1] >= 90) & (hsv[:, :, 2] >= 190) & (r >= g) & (g > b)


class FireSmokeConfig(DetectorConfig):
    """Fire colour and smoke appearance, gated on motion and persistence. Advisory."""

    detector: Literal["fire_smoke"] = Field(
        "fire_smoke", exclude=True, description="The detector this configures (the key of its section says it)."
    )

    work_width: int = Field(160, ge=64, le=1920, description="Analysis width (pixels).")
    analysis_fps: float = Field(5.0, gt=0.0, le=60.0, description="Highest analysis rate (frames/s).")
    warmup_s: float = Field(10.0, ge=0.0, le=3600.0, description="Seconds used to learn the background.")
    cell_px: int = Field(10, ge=4, le=64, description="Side of the analysis cells (work-resolution pixels).")
    background_tau_s: float = Field(
        30.0, gt=0.0, le=86400.0, description="Time constant of the background texture."
    )
    background_step: float = Field(
        1.0,
        gt=0.0,
        le=255.0,
        description="Background brightness follows a running median moving at most this many grey levels/s.",
    )
    smoke_saturation_max: float = Field(
        45.0, ge=0.0, le=255.0, description="Smoke cells are greyish: mean saturation below this."
    )
    smoke_texture_ratio: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="Smoke veils texture: edge energy below this fraction of the background.",
    )
    smoke_brightness_delta: float = Field(
        8.0, ge=0.0, le=255.0, description="Smoke changes the cell brightness by at least this much."
    )
    smoke_polarity: Literal["lighter", "darker", "both"] = Field(
        "lighter",
        description="Which smoke to look for: lighter (white/grey, the default: dark-clothed people are "
        "darker and smooth too), darker (black smoke), or both.",
    )
    smoke_activity_min: float = Field(
        0.5,
        ge=0.0,
        le=255.0,
        description="Smoke moves: mean absolute frame-to-frame change (grey levels, smoothed over 2 s).",
    )
    fire_pixel_fraction: float = Field(
        0.15, gt=0.0, le=1.0, description="A fire cell has at least this fraction of flame-coloured pixels."
    )
    flicker_min: float = Field(
        6.0, ge=0.0, le=255.0, description="Flames flicker: mean absolute frame-to-frame change in the cell."
    )
    min_cells: int = Field(8, ge=1, le=10000, description="At least this many smoke or fire cells at once...")
    min_fire_cells: int = Field(1, ge=1, le=10000, description="...or at least this many fire cells.")
    persist_s: float = Field(
        5.0, ge=0.0, le=3600.0, description="The condition must hold this long before a finding."
    )
    clear_s: float = Field(10.0, ge=0.0, le=3600.0, description="Quiet for this long clears the alarm.")
    severity: Literal["advisory", "warning", "alarm", "critical"] = Field(
        "advisory", description="Severity of fire/smoke findings (advisory: a person confirms)."
    )


class FireSmokeDetector(CameraDetector[FireSmokeConfig]):
    """Fire/smoke detector.

    >>> import numpy as np
    >>> from gridsentinel.detectors.camera import synthetic
    >>> rng = np.random.default_rng(1)
    >>> scene = rng.integers(40, 120, (120, 160, 3), dtype=np.uint8)
    >>> det = FireSmokeDetector(FireSmokeConfig(warmup_s=2, persist_s=3))
    >>> found = [d for i in range(60) for d in det.update(
    ...     scene if i < 20 else synthetic.flames(scene, i / 5, size=0.12, seed=i), i / 5)]
    >>> found[0].kind, found[0].severity, found[0].evidence["fire_cells"] > 0
    ('fire_smoke', 'advisory', True)
    """

    name: ClassVar[str] = "camera.fire_smoke"
    kind: ClassVar[str] = "fire_smoke"
    config_type: ClassVar[type[FireSmokeConfig]] = FireSmokeConfig

    def _reset(self) -> None:
        self._bg_gray: np.ndarray | None = None
        self._bg_tex: np.ndarray | None = None
        self._prev_gray: np.ndarray | None = None
        self._activity: np.ndarray | None = None
        self._cell_mask: np.ndarray | None = None
        self._since: float | None = None
        self._quiet_since: float | None = None
        self._alarm = False
        self.last_cells: tuple[int, int] = (0, 0)

    def _cells(self, img: np.ndarray) -> np.ndarray:
        c = self.config.cell_px
        h, w = img.shape[:2]
        return cv2.resize(img, (max(1, w // c), max(1, h // c)), interpolation=cv2.INTER_AREA)

    def _brighter_or_darker(self, delta: np.ndarray) -> np.ndarray:
        d = self.config.smoke_brightness_delta
        if self.config.smoke_polarity == "lighter":
            return delta > d
        if self.config.smoke_polarity == "darker":
            return delta < -d
        return np.abs(delta) > d

    def _analyse(self, frame: np.ndarray, ts: float, dt: float, warming: bool) -> list[Detection]:
        cfg = self.config
        bgr = resize_to_width(to_bgr(frame), cfg.work_width)
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        tex = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        c_gray, c_tex = self._cells(gray), self._cells(tex)
        c_sat = self._cells(hsv[:, :, 1].astype(np.float32))
        c_fire = self._cells(flame_mask(bgr).astype(np.float32))
        if self._cell_mask is None or self._cell_mask.shape != c_gray.shape:
            self._cell_mask = self._cells(self._mask(gray.shape).astype(np.float32)) > 127
        prev = self._prev_gray
        self._prev_gray = gray
        if self._bg_gray is None or prev is None or self._bg_gray.shape != c_gray.shape:
            self._bg_gray, self._bg_tex = c_gray, c_tex
            return []
        assert self._bg_tex is not None
        c_flicker = self._cells(np.abs(gray - prev))
        if self._activity is None or self._activity.shape != c_flicker.shape:
            self._activity = c_flicker
        else:
            self._activity += ema_alpha(dt, 2.0) * (c_flicker - self._activity)
        # Smoke keeps moving; a cell a person has just left is smoother and brighter too, but still.
        smoke = (self._activity >= cfg.smoke_activity_min) & (
            (c_sat < cfg.smoke_saturation_max)
            & (c_tex < cfg.smoke_texture_ratio * self._bg_tex)
            & (self._bg_tex > 4.0)
            & self._brighter_or_darker(c_gray - self._bg_gray)
        )
        fire = (c_fire >= cfg.fire_pixel_fraction) & (c_flicker >= cfg.flicker_min)
        smoke &= self._cell_mask
        fire &= self._cell_mask
        # Learn everywhere while warming; afterwards suspicious cells learn ten times slower, so a
        # wrong background cannot stay frozen forever. Texture follows drops fast and rises slowly:
        # people and branches only ever add edges, so the clean scene is the low envelope.
        base = ema_alpha(dt, cfg.warmup_s / 4 if warming else cfg.background_tau_s)
        up = ema_alpha(dt, cfg.warmup_s if warming else cfg.background_tau_s)
        fast = ema_alpha(dt, cfg.warmup_s / 8 if warming else cfg.background_tau_s / 10)
        suspect = (smoke | fire) & (not warming)
        # Grey follows a running median (fixed step towards each sample): passing people do not drag it.
        step = (20.0 if warming else cfg.background_step) * dt
        step_map = np.where(suspect, step / 10, step).astype(np.float32)
        a_tex = np.where(c_tex < self._bg_tex, fast, up).astype(np.float32)
        a_tex[suspect] = base / 10
        self._bg_gray += np.clip(c_gray - self._bg_gray, -step_map, step_map)
        self._bg_tex += a_tex * (c_tex - self._bg_tex)
        n_smoke, n_fire = int(smoke.sum()), int(fire.sum())
        self.last_cells = (n_smoke, n_fire)
        if warming:
            return []
        out: list[Detection] = []
        if n_smoke + n_fire >= cfg.min_cells or n_fire >= cfg.min_fire_cells:
            self._quiet_since = None
            if self._since is None:
                self._since = ts
            if not self._alarm and ts - self._since >= cfg.persist_s:
                self._alarm = True
                ys, xs = np.nonzero(smoke | fire)
                ch, cw = smoke.shape
                box = [
                    round(float(xs.min()) / cw, 3),
                    round(float(ys.min()) / ch, 3),
                    round(float(xs.max() + 1 - xs.min()) / cw, 3),
                    round(float(ys.max() + 1 - ys.min()) / ch, 3),
                ]
                what = "fire" if n_fire else "smoke"
                out.append(
                    self._detection(
                        ts,
                        kind=self.kind,
                        severity=cfg.severity,
                        key=what,
                        score=min(1.0, (n_smoke + n_fire) / (4.0 * cfg.min_cells)),
                        value=float(n_smoke + n_fire),
                        evidence={
                            "what": what,
                            "smoke_cells": n_smoke,
                            "fire_cells": n_fire,
                            "bbox": box,
                            "held_s": round(ts - self._since, 1),
                        },
                        message=f"camera {self.camera.camera_id}: possible {what} (advisory)",
                    )
                )
        else:
            self._since = None
            if self._alarm:
                if self._quiet_since is None:
                    self._quiet_since = ts
                if ts - self._quiet_since >= cfg.clear_s:
                    self._alarm = False
                    self._quiet_since = None
        return out

    def _state(self) -> dict[str, Any]:
        st: dict[str, Any] = {"since": self._since, "quiet_since": self._quiet_since, "alarm": self._alarm}
        if self._bg_gray is not None and self._bg_tex is not None and self._prev_gray is not None:
            st.update(bg_gray=self._bg_gray, bg_tex=self._bg_tex, prev_gray=self._prev_gray)
        if self._activity is not None:
            st["activity"] = self._activity
        return st

    def _restore(self, state: dict[str, Any]) -> None:
        self._reset()
        self._since, self._quiet_since, self._alarm = state["since"], state["quiet_since"], state["alarm"]
        self._bg_gray, self._bg_tex = state.get("bg_gray"), state.get("bg_tex")
        self._prev_gray = state.get("prev_gray")
        self._activity = state.get("activity")
