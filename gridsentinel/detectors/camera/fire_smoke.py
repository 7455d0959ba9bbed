"""Fire and smoke: colour + motion + persistence. Advisory: a person confirms.

Per analysed frame, evidence of

* fire: flame-coloured pixels (red-orange-yellow body or warm white core) covering at least
  ``min_flame_area`` of the view, counted only in cells where the pixels flame-coloured in two frames
  running flicker in brightness beyond the change of the non-flame pixels around them (smoothed over
  ~1 s): flames flicker in front of a still background, while a person walking past a yellow sign moves
  the ground around it too. Flicker is measured only where the flames are in both frames (a frame
  without them, hidden by smoke or damaged, is no measurement), and a cell keeps its flicker unmeasured
  for ``flicker_hold_s`` before it fades. Needs no background, so it counts from the second frame: a
  scene that opens on fire is not held up by the warm-up;
* smoke (after ``warmup_s`` of frames; a gap counts as at most 1 s): ``min_cells`` cells that are
  greyish, lighter than the learnt background (first the median of ten frames spread over the warm-up,
  so people who walked through leave no ghost), veiling its texture and restless.

The alarm rises when there was evidence in ``min_share`` of the last ``persist_s`` seconds (frames
weighted by their interval): frames without evidence, or missing, lower the share; they do not restart
a timer. Once raised, the decision holds while the share stays at or above ``hold_share``
(hysteresis). A gap of ``persist_s`` or more empties the window, which must fill again.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import cv2
import numpy as np
from pydantic import Field

from gridsentinel.core.records import Detection
from gridsentinel.core.words import Words
from gridsentinel.detectors.camera.base import CameraDetector, DetectorConfig, ema_alpha, resize_to_width, to_bgr

MAX_FRAME_WEIGHT_S = 1.0  # a frame stands for the time since the previous one, at most this: a gap is not seen
WARMUP_SAMPLES = 10  # frames spread over the warm-up whose median is the smoke test's first brightness background


def flame_mask(bgr: np.ndarray) -> np.ndarray:
    """Flame-coloured pixels: red..yellow, bright, red above green above blue.

    Two kinds: the saturated orange-red body of a flame (hue <= 35 in OpenCV's 0..180, S >= 70,
    V >= 160) and its hot core, nearly white but still warm (V >= 230, R - B >= 30). Real flames burn
    out to a yellow-white core that a saturation test alone misses.
    """
    hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
    b, g, r = (c.astype(np.int16) for c in cv2.split(bgr))
    warm = (r >= g) & (g > b)
    body = (hsv[:, :, 0] <= 35) & (hsv[:, :, 1] >= 70) & (hsv[:, :, 2] >= 160)
    core = (hsv[:, :, 2] >= 230) & (r - b >= 30)
    return warm & (body | core)


class FireSmokeConfig(DetectorConfig):
    """Fire colour and smoke appearance, gated on motion and persistence. Advisory."""

    detector: Literal["fire_smoke"] = Field(
        "fire_smoke", exclude=True, description="The detector this configures (the key of its section says it)."
    )

    work_width: int = Field(160, ge=64, le=1920, description="Analysis width of the smoke cells (pixels).")
    fire_width: int = Field(
        320, ge=64, le=1920, description="Analysis width of the flame-colour and flicker test (pixels)."
    )
    analysis_fps: float = Field(5.0, gt=0.0, le=60.0, description="Highest analysis rate (frames/s).")
    warmup_s: float = Field(
        10.0,
        ge=0.0,
        le=3600.0,
        description="Seconds used to learn the background. Gates the smoke evidence only (it compares "
        "with the background); flame evidence needs no background and counts from the second frame, "
        "so a scene that opens on fire alarms without waiting.",
    )
    cell_px: int = Field(10, ge=4, le=64, description="Side of the analysis cells (work-resolution pixels).")
    background_tau_s: float = Field(30.0, gt=0.0, le=86400.0, description="Time constant of the background texture.")
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
    min_flame_area: float = Field(
        0.0008,
        gt=0.0,
        le=1.0,
        description="Fire evidence needs flame-coloured pixels covering at least this fraction of the "
        "watched area (scale-free: the same share at any resolution; 0.0008 is a 12x7 px flame at 320 px).",
    )
    flicker_min: float = Field(
        8.0,
        ge=0.0,
        le=255.0,
        description="Flames flicker: mean absolute frame-to-frame brightness change of the pixels that are "
        "flame-coloured in both frames, per cell, beyond flicker_surround x that of the non-flame pixels of "
        "its 3x3 cells (so people passing a warm-coloured sign do not count), smoothed over 1 s (grey "
        "levels). Static orange things (brick, cones, coats) stay near JPEG noise, 1-3.",
    )
    flicker_surround: float = Field(
        0.5,
        ge=0.0,
        le=2.0,
        description="Flicker counts beyond this share of the mean change of the non-flame pixels around the "
        "cell (its 3x3 cells): a person walking past a small yellow sign half covers it, changing its still "
        "flame-coloured pixels as much as flames do, but moves the ground around it too. 0 turns it off; "
        "higher also discounts real flames with people moving near them.",
    )
    max_flicker_gap_s: float = Field(
        0.5,
        gt=0.0,
        le=10.0,
        description="Flicker is judged only between frames at most this far apart: flames flicker at 1-10 Hz, "
        "so between frames a second apart a brightness change is motion (people, traffic), not flicker, "
        "and a camera sending fewer than 2 frames/s gets no flame evidence (smoke still counts).",
    )
    flame_overlap_min: float = Field(
        0.5,
        ge=0.0,
        le=1.0,
        description="A cell's flicker is measured between two frames only where at least this share of its "
        "flame-coloured pixels (in either frame) is flame-coloured in both: where the flames vanished or "
        "appeared (hidden by smoke, a dropped frame), the change is not flicker. 0 measures every pair.",
    )
    flicker_hold_s: float = Field(
        1.0,
        ge=0.0,
        le=10.0,
        description="A cell whose flicker cannot be measured (its flames hidden or gone in one of the two "
        "frames) keeps it unchanged this long, then it fades (time constant 3 s).",
    )
    core_min_v: int = Field(
        250,
        ge=0,
        le=255,
        description="Flames give off light: a flickering flame cell counts only if it or a neighbouring "
        "cell holds a flame-coloured pixel at least this bright (HSV value): the hot part of a fire "
        "saturates a camera (250, not 255: JPEG rounds a clipped patch). Faces and skin lit warm by candles "
        "or a fire reflect the light and stay darker. 0 turns it off.",
    )
    fire_cell_px: int = Field(
        16, ge=4, le=128, description="Side of the cells in which flicker is judged (fire_width pixels)."
    )
    min_cells: int = Field(8, ge=1, le=10000, description="Smoke evidence: at least this many smoke cells.")
    persist_s: float = Field(
        3.0,
        ge=0.0,
        le=3600.0,
        description="Sliding window (seconds) over which the evidence share is measured; a finding needs "
        "the window full (this many seconds of frames).",
    )
    min_share: float = Field(
        0.6,
        gt=0.0,
        le=1.0,
        description="Share of the window's time (frames weighted by their interval) with fire or smoke "
        "evidence that raises the alarm; single frames without it (dropped, blurred, occluded) only lower "
        "the share instead of restarting a timer.",
    )
    hold_share: float = Field(
        0.4,
        gt=0.0,
        le=1.0,
        description="Once raised, the decision holds while the share stays at or above this (hysteresis): "
        "flames hidden by smoke or lost in dropped frames a little more often than usual do not switch it "
        "off and on. At most min_share (a higher value is taken as min_share).",
    )
    clear_s: float = Field(
        10.0, ge=0.0, le=3600.0, description="The share below min_share for this long clears the alarm."
    )
    severity: Literal["advisory", "warning", "alarm", "critical"] = Field(
        "advisory", description="Severity of fire/smoke findings (advisory: a person confirms)."
    )


class FireSmokeDetector(CameraDetector[FireSmokeConfig]):
    """Fire/smoke detector.

    Per analysed frame it decides whether there is *evidence*: fire (flame-coloured area of at least
    ``min_flame_area`` that flickers) or, once warmed up, smoke (``min_cells`` smoke cells). The alarm
    rises when the evidence holds for ``min_share`` of the last ``persist_s`` seconds.

    >>> import numpy as np
    >>> from gridsentinel.detectors.camera import synthetic
    >>> rng = np.random.default_rng(1)
    >>> scene = rng.integers(40, 120, (120, 160, 3), dtype=np.uint8)
    >>> det = FireSmokeDetector(FireSmokeConfig())
    >>> found = [d for i in range(40) for d in det.update(synthetic.fire(scene, i / 5, size=0.15), i / 5)]
    >>> found[0].kind, found[0].evidence["what"], found[0].observed_at <= 5.0
    ('fire_smoke', 'fire', True)
    """

    name: ClassVar[str] = "camera.fire_smoke"
    kind: ClassVar[str] = "fire_smoke"
    config_type: ClassVar[type[FireSmokeConfig]] = FireSmokeConfig

    def _reset(self) -> None:
        self._bg_gray: np.ndarray | None = None
        self._bg_tex: np.ndarray | None = None
        self._prev_gray: np.ndarray | None = None
        self._prev_fire_gray: np.ndarray | None = None
        self._prev_flame: np.ndarray | None = None
        self._flicker: np.ndarray | None = None
        self._unseen: np.ndarray | None = None  # per flicker cell, seconds since its flicker was last measured
        self._activity: np.ndarray | None = None
        self._cell_mask: np.ndarray | None = None
        self._fire_mask: np.ndarray | None = None
        self._window: list[tuple[float, float, int]] = []  # (ts, weight s, evidence 0/1/2: none/fire/smoke)
        self._window_start: float | None = None
        self._seen_s = 0.0  # seconds of frames seen (gaps count at most MAX_FRAME_WEIGHT_S): the smoke warm-up
        self._samples: list[np.ndarray] = []  # cell brightness of frames spread over the warm-up
        self._sample_at = 0.0  # seen seconds at which the next one is taken
        self._quiet_since: float | None = None
        self._alarm = False
        self.firing = False
        self.last_evidence: dict[str, float] = {}
        self.last_cells: np.ndarray | None = None  # flickering flame cells of the last frame (debugging)

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

    def _fire_evidence(self, frame: np.ndarray, dt: float) -> tuple[bool, dict[str, float], np.ndarray]:
        """Flame colour over enough area, flickering. Needs no background, only the previous frame."""
        cfg = self.config
        bgr = resize_to_width(to_bgr(frame), cfg.fire_width)
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.int16)
        if self._fire_mask is None or self._fire_mask.shape != gray.shape:
            self._fire_mask = self._mask(gray.shape) > 0
        if self._prev_flame is not None and self._prev_flame.shape != gray.shape:
            self._prev_flame, self._prev_fire_gray = None, None
        flame = flame_mask(bgr) & self._fire_mask
        prev_flame, prev_gray = self._prev_flame, self._prev_fire_gray
        self._prev_flame, self._prev_fire_gray = flame, gray
        watched = max(1, int(self._fire_mask.sum()))
        area = float(flame.sum()) / watched
        if prev_flame is None or prev_gray is None:
            return False, {"flame_area": 0.0, "flame_colour_area": round(area, 5)}, flame
        if dt > cfg.max_flicker_gap_s:  # too far apart to tell flicker from motion: the evidence fades
            if self._flicker is not None:
                self._flicker *= 1.0 - ema_alpha(dt, 3.0)
            self.last_cells = None
            return False, {"flame_area": 0.0, "flame_colour_area": round(area, 5), "flicker_gap_s": round(dt, 2)}, flame
        # Per cell: do the pixels flame-coloured in both frames change brightness? A flame's body
        # flickers; a brick wall, a cone or an orange coat does not (and a person walking in front of
        # them changes pixels that are flame-coloured in one frame only). Smoothed over about a second,
        # so JPEG noise and single odd frames do not count. Cells keep a static orange wall elsewhere in
        # the view from diluting a small fire's flicker.
        c = cfg.fire_cell_px
        cs = (max(1, gray.shape[1] // c), max(1, gray.shape[0] // c))
        both = (flame & prev_flame).astype(np.float32)
        change = np.abs(gray - prev_gray).astype(np.float32)
        c_both = cv2.resize(both, cs, interpolation=cv2.INTER_AREA)
        c_flame = cv2.resize(flame.astype(np.float32), cs, interpolation=cv2.INTER_AREA)
        c_change = cv2.resize(change * both, cs, interpolation=cv2.INTER_AREA) / np.maximum(c_both, 1e-6)
        # Flames flicker in place, in front of a still background; something moving past a warm-coloured
        # thing (a person walking by a yellow sign) changes the pixels around it as much as the flame-
        # coloured ones it half covers. So a cell's flicker is what its flame-coloured pixels change
        # beyond (a share, flicker_surround, of) the change of the watched, non-flame pixels of its 3x3
        # neighbourhood of cells.
        calm = ((~flame & ~prev_flame) & self._fire_mask).astype(np.float32)
        box = np.ones((3, 3), np.float32)
        c_calm = cv2.filter2D(cv2.resize(calm, cs, interpolation=cv2.INTER_AREA), -1, box,
                              borderType=cv2.BORDER_CONSTANT)
        c_calm_change = cv2.filter2D(cv2.resize(change * calm, cs, interpolation=cv2.INTER_AREA), -1, box,
                                     borderType=cv2.BORDER_CONSTANT)
        around = c_calm_change / np.maximum(c_calm, 1e-6)
        c_change = np.maximum(c_change - cfg.flicker_surround * around, 0.0)
        if self._flicker is None or self._flicker.shape != c_change.shape:
            self._flicker = np.zeros_like(c_change)
        # Cells with flame pixels in both frames update. A cell whose flames vanished or appeared between
        # the two frames (hidden by smoke, a dropped or damaged frame) did not flicker measurably: what
        # stayed flame-coloured there is mostly the background, so it keeps its flicker instead of
        # learning the background's calm; one frame without flames costs that frame only.
        c_prev = cv2.resize(prev_flame.astype(np.float32), cs, interpolation=cv2.INTER_AREA)
        seen = (c_both >= 0.05) & (c_both >= cfg.flame_overlap_min * np.maximum(c_flame, c_prev))
        self._flicker[seen] += ema_alpha(dt, 1.0) * (c_change[seen] - self._flicker[seen])
        if self._unseen is None or self._unseen.shape != c_change.shape:
            self._unseen = np.zeros_like(c_change)
        self._unseen[seen] = 0.0
        self._unseen[~seen] += dt
        # Not measured is not calm: a cell keeps its flicker for flicker_hold_s unmeasured, then fades.
        self._flicker[self._unseen > cfg.flicker_hold_s] *= 1.0 - ema_alpha(dt, 3.0)
        flicker = (self._flicker >= cfg.flicker_min) & (c_flame >= 0.05)
        if cfg.core_min_v > 0 and flicker.any():  # checked only when there is a candidate: cheap when calm
            # Flames give off light, lit skin or cloth only reflects it: a fire's hottest part saturates the
            # camera. A flickering cell counts only with such a hot pixel in it or in a neighbouring cell.
            b, g, r = cv2.split(bgr)
            v = cv2.max(cv2.max(b, g), r)
            hot = ((v >= cfg.core_min_v) & flame).astype(np.float32)
            c_hot = cv2.dilate((cv2.resize(hot, cs, interpolation=cv2.INTER_AREA) > 0).astype(np.uint8), box)
            flicker &= c_hot > 0
        fire_area = float((c_flame * flicker).sum()) * c * c / watched
        ok = fire_area >= cfg.min_flame_area
        peak = float(self._flicker[flicker].max()) if flicker.any() else 0.0
        self.last_cells = flicker
        return (
            ok,
            {
                "flame_area": round(fire_area, 5),
                "flame_colour_area": round(area, 5),
                "flicker": round(peak, 1),
            },
            flame,
        )

    def _smoke_evidence(self, frame: np.ndarray, dt: float, warming: bool) -> np.ndarray | None:
        """Smoke cells (greyish, lighter than the background, veiling its texture, restless); also
        learns the background. None while there is no background yet."""
        cfg = self.config
        bgr = resize_to_width(to_bgr(frame), cfg.work_width)
        gray = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY).astype(np.float32)
        hsv = cv2.cvtColor(bgr, cv2.COLOR_BGR2HSV)
        tex = np.abs(cv2.Sobel(gray, cv2.CV_32F, 1, 0)) + np.abs(cv2.Sobel(gray, cv2.CV_32F, 0, 1))
        c_gray, c_tex = self._cells(gray), self._cells(tex)
        c_sat = self._cells(hsv[:, :, 1].astype(np.float32))
        c_flame = self._cells(flame_mask(bgr).astype(np.float32))
        if self._cell_mask is None or self._cell_mask.shape != c_gray.shape:
            self._cell_mask = self._cells(self._mask(gray.shape).astype(np.float32)) > 127
        prev = self._prev_gray
        self._prev_gray = gray
        if self._bg_gray is None or prev is None or self._bg_gray.shape != c_gray.shape:
            self._bg_gray, self._bg_tex = c_gray, c_tex
            return None
        assert self._bg_tex is not None
        if warming:
            if self._seen_s >= self._sample_at:
                self._samples = [x for x in self._samples if x.shape == c_gray.shape] + [c_gray.copy()]
                self._sample_at = self._seen_s + cfg.warmup_s / WARMUP_SAMPLES
        elif self._samples:
            # The brightness background the warm-up leaves is the per-cell median of frames spread over it,
            # so people who walked through leave no ghost: a running estimate quick enough for a 10 s
            # warm-up follows them, and where they stood the empty ground then looks lighter than the
            # background (and, people moving nearby, restless): smoke.
            same = [x for x in self._samples if x.shape == c_gray.shape]
            if same:
                self._bg_gray = np.median(np.stack(same), axis=0).astype(np.float32)
            self._samples = []
        c_change = self._cells(np.abs(gray - prev))
        if self._activity is None or self._activity.shape != c_change.shape:
            self._activity = c_change
        else:
            self._activity += ema_alpha(dt, 2.0) * (c_change - self._activity)
        # Smoke keeps moving; a cell a person has just left is smoother and brighter too, but still.
        smoke = (self._activity >= cfg.smoke_activity_min) & (
            (c_sat < cfg.smoke_saturation_max)
            & (c_tex < cfg.smoke_texture_ratio * self._bg_tex)
            & (self._bg_tex > 4.0)
            & self._brighter_or_darker(c_gray - self._bg_gray)
        )
        smoke &= self._cell_mask
        # Learn everywhere while warming; afterwards suspicious cells (smoke, or flame-coloured) learn
        # ten times slower, so a wrong background cannot stay frozen forever. Texture follows drops fast
        # and rises slowly: people and branches only ever add edges, so the clean scene is the low envelope.
        base = ema_alpha(dt, cfg.warmup_s / 4 if warming else cfg.background_tau_s)
        up = ema_alpha(dt, cfg.warmup_s if warming else cfg.background_tau_s)
        fast = ema_alpha(dt, cfg.warmup_s / 8 if warming else cfg.background_tau_s / 10)
        suspect = (smoke | (c_flame > 0.1)) & (not warming)
        # Grey follows a running median (fixed step towards each sample): passing people do not drag it.
        step = (20.0 if warming else cfg.background_step) * dt
        step_map = np.where(suspect, step / 10, step).astype(np.float32)
        a_tex = np.where(c_tex < self._bg_tex, fast, up).astype(np.float32)
        a_tex[suspect] = base / 10
        self._bg_gray += np.clip(c_gray - self._bg_gray, -step_map, step_map)
        self._bg_tex += a_tex * (c_tex - self._bg_tex)
        return smoke

    def _share(self, ts: float, dt: float, evidence: int) -> float | None:
        """Time-weighted share of the last ``persist_s`` with evidence; None until the window is full."""
        cfg = self.config
        if self._window_start is None or dt >= cfg.persist_s:
            self._window_start = ts  # the gap emptied the window: it must fill again
        # A frame stands for the interval since the previous one (capped: a long gap is not evidence).
        weight = min(dt, MAX_FRAME_WEIGHT_S) if dt > 0 else 1.0 / cfg.analysis_fps
        self._window.append((ts, weight, evidence))
        horizon = ts - cfg.persist_s
        self._window = [w for w in self._window if w[0] > horizon]
        if ts - self._window_start < cfg.persist_s:
            return None
        total = sum(w for _, w, _ in self._window)
        return sum(w for _, w, e in self._window if e) / total if total > 0 else 0.0

    def _analyse(self, frame: np.ndarray, ts: float, dt: float, warming: bool) -> list[Detection]:
        cfg = self.config
        fire_ok, fire_ev, flame = self._fire_evidence(frame, dt)
        # The smoke background is learnt from warmup_s of frames, not of clock time: a lone frame before a
        # gap (shorter than max_gap_s, so no reset) must not count as the whole gap's worth of background.
        self._seen_s += min(dt, MAX_FRAME_WEIGHT_S)
        warming = warming or self._seen_s < cfg.warmup_s
        smoke = self._smoke_evidence(frame, dt, warming)
        n_smoke = 0 if smoke is None or warming else int(smoke.sum())
        smoke_ok = n_smoke >= cfg.min_cells
        evidence = 1 if fire_ok else (2 if smoke_ok else 0)
        share = self._share(ts, dt, evidence)
        # Hysteresis: the share raises the decision at min_share and holds it down to hold_share, so a
        # fire whose flames are hidden in a few frames more than usual stays reported.
        hold = min(cfg.hold_share, cfg.min_share)
        self.firing = share is not None and share >= (hold if self.firing else cfg.min_share)
        self.last_evidence = {**fire_ev, "smoke_cells": n_smoke, "share": -1.0 if share is None else share}
        out: list[Detection] = []
        if self.firing:
            self._quiet_since = None
            if not self._alarm:
                self._alarm = True
                fire_frames = sum(1 for _, _, e in self._window if e == 1)
                what = "fire" if fire_frames >= sum(1 for _, _, e in self._window if e == 2) else "smoke"
                where = flame if what == "fire" else smoke
                box: list[float] = []
                if where is not None and where.any():
                    ys, xs = np.nonzero(where)
                    ch, cw = where.shape
                    box = [
                        round(float(xs.min()) / cw, 3),
                        round(float(ys.min()) / ch, 3),
                        round(float(xs.max() + 1 - xs.min()) / cw, 3),
                        round(float(ys.max() + 1 - ys.min()) / ch, 3),
                    ]
                assert share is not None
                out.append(
                    self._detection(
                        ts,
                        kind=self.kind,
                        severity=cfg.severity,
                        key=what,
                        score=share,
                        value=fire_ev["flame_area"] if what == "fire" else float(n_smoke),
                        evidence={
                            "what": what,
                            "share": round(share, 3),
                            "window_s": cfg.persist_s,
                            "flame_area": fire_ev["flame_area"],
                            "flame_colour_area": fire_ev["flame_colour_area"],
                            "smoke_cells": n_smoke,
                            "bbox": box,
                        },
                        message=Words(f"camera {self.camera.camera_id}: possible {what} (advisory)",
                                      f"摄像头 {self.camera.camera_id}："
                                      f"疑似{'火情' if what == 'fire' else '烟雾'}（提示）"),
                    )
                )
        elif self._alarm:
            if self._quiet_since is None:
                self._quiet_since = ts
            if ts - self._quiet_since >= cfg.clear_s:
                self._alarm = False
                self._quiet_since = None
        return out

    def _state(self) -> dict[str, Any]:
        st: dict[str, Any] = {
            "quiet_since": self._quiet_since,
            "alarm": self._alarm,
            "firing": self.firing,  # the hysteresis' side
            "window": [list(w) for w in self._window],
            "window_start": self._window_start,
            "seen_s": self._seen_s,
            "sample_at": self._sample_at,
        }
        if self._samples:
            st["samples"] = np.stack(self._samples)
        if self._bg_gray is not None and self._bg_tex is not None and self._prev_gray is not None:
            st.update(bg_gray=self._bg_gray, bg_tex=self._bg_tex, prev_gray=self._prev_gray)
        if self._activity is not None:
            st["activity"] = self._activity
        if self._prev_flame is not None and self._prev_fire_gray is not None:
            st.update(prev_flame=self._prev_flame, prev_fire_gray=self._prev_fire_gray)
        if self._flicker is not None:
            st["flicker"] = self._flicker
        if self._unseen is not None:
            st["flicker_unseen"] = self._unseen
        return st

    def _restore(self, state: dict[str, Any]) -> None:
        self._reset()
        self._quiet_since, self._alarm = state["quiet_since"], state["alarm"]
        self.firing = bool(state.get("firing", False))
        self._window = [(float(t), float(w), int(e)) for t, w, e in state["window"]]
        self._window_start = state["window_start"]
        self._seen_s = float(state.get("seen_s", 0.0))  # a state saved before it was kept: warm up again
        self._sample_at = float(state.get("sample_at", 0.0))
        samples = state.get("samples")
        self._samples = [] if samples is None else [np.asarray(x, np.float32) for x in samples]
        self._bg_gray, self._bg_tex = state.get("bg_gray"), state.get("bg_tex")
        self._prev_gray = state.get("prev_gray")
        self._activity = state.get("activity")
        self._prev_flame = state.get("prev_flame")
        if self._prev_flame is not None:
            self._prev_flame = self._prev_flame.astype(bool)
        self._prev_fire_gray = state.get("prev_fire_gray")
        self._flicker = state.get("flicker")
        self._unseen = state.get("flicker_unseen")
