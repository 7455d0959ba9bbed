"""Camera tamper: covered lens, blackout, defocus and scene shift, each held ``persist_s`` before alarming."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

from gridsentinel.core.records import Detection
from gridsentinel.core.words import Words
from gridsentinel.detectors.camera.base import CameraDetector, DetectorConfig, ema_alpha, resize_to_width, to_gray

# the dispatch centers' words for each reason (zh-CN)
TAMPER_ZH = {"blackout": "画面全黑", "covered": "镜头被遮挡", "defocus": "画面失焦", "shift": "视角被移动"}
_COARSE_W = 80  # scene-shift comparison width: coarse enough to ignore people and leaves


class TamperConfig(DetectorConfig):
    """Covered lens, blackout, defocus and scene shift."""

    detector: Literal["tamper"] = Field(
        "tamper", exclude=True, description="The detector this configures (the key of its section says it)."
    )

    work_width: int = Field(
        320, ge=64, le=1920, description="Analysis width (pixels); sharpness is measured here."
    )
    analysis_fps: float = Field(5.0, gt=0.0, le=60.0, description="Highest analysis rate (frames/s).")
    persist_s: float = Field(
        2.0, ge=0.0, le=600.0, description="A tamper condition must hold this long before it alarms."
    )
    clear_s: float = Field(3.0, ge=0.0, le=600.0, description="Normal for this long clears an alarm.")
    reference_tau_s: float = Field(
        20.0,
        gt=0.0,
        le=86400.0,
        description="Time constant of the reference scene (it adapts only while nothing is suspicious).",
    )
    relearn_s: float = Field(
        300.0,
        gt=0.0,
        le=86400.0,
        description="An alarm lasting this long is accepted as the new normal and the reference relearnt.",
    )
    blackout_mean: float = Field(
        30.0, ge=0.0, le=255.0, description="Mean grey level below which a low-contrast frame is a blackout."
    )
    uniform_std: float = Field(
        14.0,
        ge=0.0,
        le=128.0,
        description="Grey std-dev below which the frame is featureless (covered / blackout).",
    )
    covered_sharpness_ratio: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="Sharpness below this fraction of the reference, with low contrast: covered lens.",
    )
    covered_contrast_ratio: float = Field(
        0.55,
        ge=0.0,
        le=1.0,
        description="Contrast (std-dev) below this fraction of the reference supports 'covered'.",
    )
    defocus_ratio: float = Field(
        0.5, ge=0.0, le=1.0, description="Sharpness below this fraction of the reference means defocus."
    )
    shift_similarity: float = Field(
        0.6,
        ge=-1.0,
        le=1.0,
        description="Correlation with the reference scene (coarse edges) below this means a scene shift.",
    )
    severity: Literal["advisory", "warning", "alarm", "critical"] = Field(
        "warning", description="Severity of tamper findings."
    )


def _grad(gray: np.ndarray) -> np.ndarray:
    small = cv2.resize(
        gray, (_COARSE_W, max(1, gray.shape[0] * _COARSE_W // gray.shape[1])), interpolation=cv2.INTER_AREA
    ).astype(np.float32)
    gx = cv2.Sobel(small, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(small, cv2.CV_32F, 0, 1, ksize=3)
    return cv2.GaussianBlur(cv2.magnitude(gx, gy), (5, 5), 0)


def _similarity(a: np.ndarray, b: np.ndarray) -> float:
    """Normalised correlation of two gradient images (1: same scene)."""
    a0 = a - float(a.mean())
    b0 = b - float(b.mean())
    den = float(np.sqrt((a0 * a0).sum() * (b0 * b0).sum()))
    return float((a0 * b0).sum() / den) if den > 1e-6 else 0.0


class TamperDetector(CameraDetector[TamperConfig]):
    """Camera tamper detector.

    Measures brightness, contrast, sharpness (mean absolute Laplacian) and coarse-edge similarity
    against a reference that adapts slowly while the view is normal and freezes while it is not.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> scene = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    >>> det = TamperDetector(TamperConfig(warmup_s=1.0, persist_s=2.0))
    >>> [det.update(scene, t / 5) for t in range(10)][-1]
    []
    >>> black = np.zeros_like(scene)
    >>> found = [d for t in range(10, 30) for d in det.update(black, t / 5)]
    >>> found[0].kind, found[0].evidence["reason"], found[0].observed_at
    ('camera_tamper', 'blackout', 4.0)
    """

    name: ClassVar[str] = "camera.tamper"
    kind: ClassVar[str] = "camera_tamper"
    config_type: ClassVar[type[TamperConfig]] = TamperConfig

    def _reset(self) -> None:
        self._ref_grad: np.ndarray | None = None
        self._ref_sharp = 0.0
        self._ref_std = 0.0
        self._ref_n = 0
        self._suspect_since: float | None = None
        self._normal_since: float | None = None
        self._alarm_since: float | None = None
        self.last_measure: dict[str, float | str | None] = {}

    def measure(self, frame: np.ndarray) -> tuple[float, float, float, np.ndarray]:
        """Mean grey, contrast (std-dev), sharpness and the coarse gradient image of a frame."""
        gray = to_gray(resize_to_width(frame, self.config.work_width))
        mean, std = cv2.meanStdDev(gray)
        sharp = float(cv2.mean(cv2.convertScaleAbs(cv2.Laplacian(gray, cv2.CV_16S, ksize=3)))[0])
        return float(mean[0, 0]), float(std[0, 0]), sharp, _grad(gray)

    def _analyse(self, frame: np.ndarray, ts: float, dt: float, warming: bool) -> list[Detection]:
        cfg = self.config
        mean, std, sharp, grad = self.measure(frame)
        if self._ref_grad is None or self._ref_n == 0:
            self._ref_grad, self._ref_sharp, self._ref_std, self._ref_n = grad, sharp, std, 1
            return []
        sharp_ratio = sharp / max(self._ref_sharp, 1e-3)
        std_ratio = std / max(self._ref_std, 1e-3)
        similarity = _similarity(grad, self._ref_grad)
        reason: str | None = None
        if mean < cfg.blackout_mean and std < cfg.uniform_std:
            reason = "blackout"
        elif std < cfg.uniform_std or (
            sharp_ratio < cfg.covered_sharpness_ratio and std_ratio < cfg.covered_contrast_ratio
        ):
            reason = "covered"
        elif sharp_ratio < cfg.defocus_ratio:
            reason = "defocus"
        elif similarity < cfg.shift_similarity:
            reason = "shift"
        self.last_measure = {
            "mean": mean,
            "std": std,
            "sharpness_ratio": sharp_ratio,
            "contrast_ratio": std_ratio,
            "similarity": similarity,
            "reason": reason,
        }

        if warming or (reason is None and self._alarm_since is None):
            # Learn while the view is normal; during warm-up, a plain running mean of what was seen.
            alpha = 1.0 / (self._ref_n + 1) if warming else ema_alpha(dt, cfg.reference_tau_s)
            self._ref_n += 1
            self._ref_grad = self._ref_grad + alpha * (grad - self._ref_grad)
            self._ref_sharp += alpha * (sharp - self._ref_sharp)
            self._ref_std += alpha * (std - self._ref_std)
            if warming:
                return []

        out: list[Detection] = []
        if reason is not None:
            self._normal_since = None
            if self._suspect_since is None:
                self._suspect_since = ts
            held = ts - self._suspect_since
            if self._alarm_since is None and held >= cfg.persist_s:
                self._alarm_since = ts
                out.append(
                    self._detection(
                        ts,
                        kind=self.kind,
                        severity=cfg.severity,
                        key=reason,
                        score=1.0 - min(similarity, 1.0),
                        value=sharp_ratio,
                        evidence={
                            "reason": reason,
                            "mean": round(mean, 1),
                            "contrast_ratio": round(std_ratio, 3),
                            "sharpness_ratio": round(sharp_ratio, 3),
                            "similarity": round(similarity, 3),
                            "held_s": round(held, 2),
                        },
                        message=Words(f"camera {self.camera.camera_id}: {reason} for {held:.1f} s",
                                      f"摄像头 {self.camera.camera_id}："
                                      f"{TAMPER_ZH.get(reason, reason)}，已持续 {held:.1f} 秒"),
                    )
                )
            elif self._alarm_since is not None and ts - self._alarm_since >= cfg.relearn_s:
                # Still "tampered" after relearn_s: accept the view as the new normal.
                self._ref_grad, self._ref_sharp, self._ref_std, self._ref_n = grad, sharp, std, 1
                self._alarm_since = self._suspect_since = None
        else:
            self._suspect_since = None
            if self._alarm_since is not None:
                if self._normal_since is None:
                    self._normal_since = ts
                if ts - self._normal_since >= cfg.clear_s:
                    self._alarm_since = self._normal_since = None
        return out

    @property
    def alarming(self) -> bool:
        return self._alarm_since is not None

    def _state(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "ref_sharp": self._ref_sharp,
            "ref_std": self._ref_std,
            "ref_n": self._ref_n,
            "suspect_since": self._suspect_since,
            "normal_since": self._normal_since,
            "alarm_since": self._alarm_since,
        }
        if self._ref_grad is not None:
            st["ref_grad"] = self._ref_grad
        return st

    def _restore(self, state: dict[str, Any]) -> None:
        self._reset()
        self._ref_grad = state.get("ref_grad")
        self._ref_sharp = float(state["ref_sharp"])
        self._ref_std = float(state["ref_std"])
        self._ref_n = int(state["ref_n"])
        self._suspect_since = state["suspect_since"]
        self._normal_since = state["normal_since"]
        self._alarm_since = state["alarm_since"]
