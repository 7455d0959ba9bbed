"""Synthetic camera events built from real frames, for tests and ``gridsentinel bench vision``.

Each function takes a real BGR frame and returns a new frame showing the event; none touches its input.
"""

from __future__ import annotations

import cv2
import numpy as np


def blackout(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """Lens cap / dead sensor: black with sensor noise."""
    rng = np.random.default_rng(seed)
    return rng.integers(0, 6, frame.shape, dtype=np.uint8)


def cover(frame: np.ndarray, seed: int = 0) -> np.ndarray:
    """A hand or cloth over the lens: dark, out of focus, a faint glow of the scene bleeding through."""
    rng = np.random.default_rng(seed)
    k = (frame.shape[1] // 4) | 1
    glow = cv2.GaussianBlur(frame, (k, k), 0).astype(np.float32) * 0.25
    tint = np.array([38.0, 45.0, 60.0], np.float32)  # skin/fabric in shadow
    out = glow + tint + rng.normal(0.0, 2.0, frame.shape).astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)


def defocus(frame: np.ndarray, sigma_frac: float = 1 / 150) -> np.ndarray:
    """Knocked focus ring: Gaussian blur with sigma = sigma_frac * width (about 5 px at 768 px)."""
    sigma = max(0.5, frame.shape[1] * sigma_frac)
    return cv2.GaussianBlur(frame, (0, 0), sigma)


def shift(frame: np.ndarray, dx_frac: float = 0.2, dy_frac: float = 0.08, angle_deg: float = 4.0) -> np.ndarray:
    """Camera pushed to a new view: translation plus a small rotation (borders mirrored)."""
    h, w = frame.shape[:2]
    m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
    m[0, 2] += dx_frac * w
    m[1, 2] += dy_frac * h
    return cv2.warpAffine(frame, m, (w, h), borderMode=cv2.BORDER_REFLECT)


def paste(frame: np.ndarray, patch: np.ndarray, x: int, y: int) -> np.ndarray:
    """An object left in the scene: ``patch`` pasted with its top-left corner at (x, y), soft edges."""
    out = frame.copy()
    ph, pw = patch.shape[:2]
    h, w = frame.shape[:2]
    pw, ph = min(pw, w - x), min(ph, h - y)
    mask = np.zeros((ph, pw), np.float32)
    cv2.ellipse(mask, (pw // 2, ph // 2), (max(1, pw // 2 - 1), max(1, ph // 2 - 1)), 0, 0, 360, 1.0, -1)
    alpha = cv2.GaussianBlur(mask, (5, 5), 0)[:, :, None]
    roi = out[y : y + ph, x : x + pw].astype(np.float32)
    out[y : y + ph, x : x + pw] = (alpha * patch[:ph, :pw] + (1 - alpha) * roi).astype(np.uint8)
    return out


def smoke(
    frame: np.ndarray,
    t: float,
    *,
    origin: tuple[float, float] = (0.5, 0.8),
    grow_s: float = 8.0,
    max_alpha: float = 0.75,
    seed: int = 0,
) -> np.ndarray:
    """A smoke plume rising from ``origin`` (normalised), ``t`` seconds after ignition.

    The plume grows for ``grow_s`` seconds, drifts upward and veils the scene in grey.
    """
    h, w = frame.shape[:2]
    if t <= 0:
        return frame.copy()
    rng = np.random.default_rng(seed)
    grow = min(1.0, t / grow_s)
    ox, oy = origin[0] * w, origin[1] * h
    height = grow * 0.6 * h
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rel = np.clip((oy - yy) / max(height, 1.0), 0, 1)  # 0 at the source, 1 at the top of the plume
    half = (0.04 + 0.18 * rel) * w
    sway = 0.03 * w * np.sin(rel * 4.0 + t * 0.8)
    inside = np.exp(-(((xx - ox - sway) / np.maximum(half, 1.0)) ** 2)) * ((yy <= oy) & (oy - yy <= height))
    # Turbulence: low-frequency noise advected upward with time.
    coarse = rng.random((h // 16 + 2, w // 16 + 2)).astype(np.float32)
    noise = cv2.resize(coarse, (w, h + 32), interpolation=cv2.INTER_CUBIC)
    off = int(t * 6) % 32
    turb = 0.6 + 0.4 * noise[off : off + h]
    alpha = np.clip(inside * turb * max_alpha * grow, 0, 1)[:, :, None]
    grey = np.array([190.0, 192.0, 195.0], np.float32)
    veiled = cv2.GaussianBlur(frame, (0, 0), 2.0).astype(np.float32)
    out = alpha * grey + (1 - alpha) * veiled * (1 - 0.3 * alpha) + (1 - alpha) * frame * 0.3 * alpha
    return np.clip(out, 0, 255).astype(np.uint8)


def flames(
    frame: np.ndarray,
    t: float,
    *,
    center: tuple[float, float] = (0.5, 0.8),
    size: float = 0.08,
    seed: int = 0,
) -> np.ndarray:
    """Flickering flames: an orange-yellow blob whose shape and brightness change every frame."""
    h, w = frame.shape[:2]
    rng = np.random.default_rng(seed + int(t * 100))
    out = frame.copy()
    cx, cy = int(center[0] * w), int(center[1] * h)
    r = max(3, int(size * w))
    for _ in range(6):
        dx, dy = rng.integers(-r // 2, r // 2 + 1, 2)
        rad = int(r * rng.uniform(0.4, 0.9))
        colour = (int(rng.integers(0, 60)), int(rng.integers(120, 230)), 255)
        cv2.ellipse(out, (cx + int(dx), cy + int(dy) - rad // 2), (max(2, rad // 2), rad), 0, 0, 360, colour, -1)
    return out


def fire(
    frame: np.ndarray,
    t: float,
    *,
    base: tuple[float, float] = (0.5, 0.85),
    size: float = 0.1,
    seed: int = 0,
) -> np.ndarray:
    """Flames rendered at time ``t`` (s): a tongue of turbulent, upward-moving noise mapped through a
    flame palette (dark red, orange, yellow, a warm white core), with its height flickering at a few
    hertz. ``base`` is where the fire sits (normalised), ``size`` its width as a fraction of the frame's.

    Continuous in ``t`` (the same ``t`` and ``seed`` give the same picture), so it can be sampled at any
    frame rate. Not a physical simulation: a stand-in for footage we do not have (docs/cameras.md).
    """
    h, w = frame.shape[:2]
    rng = np.random.default_rng(seed)
    fw = max(6, int(size * w))
    fh = max(8, int(fw * 1.7))
    v, u = np.mgrid[0:fh, 0:fw].astype(np.float32)
    v = 1.0 - v / (fh - 1)  # 0 at the base, 1 at the top
    u = 2.0 * u / (fw - 1) - 1.0  # -1..1 across
    # Turbulence: a few sine waves travelling upward, each with its own speed, slant and phase.
    noise = np.zeros_like(u)
    for k in range(5):
        fu, fv = rng.uniform(1.5, 5.0) * (k + 1) ** 0.5, rng.uniform(2.0, 6.0) * (k + 1) ** 0.5
        speed, phase = rng.uniform(1.5, 4.0), rng.uniform(0, 2 * np.pi)
        noise += np.sin(fu * u * np.pi + fv * (v - speed * t) * np.pi + phase) / (k + 1)
    noise = noise / 2.3
    f1, f2, p1, p2 = rng.uniform(1.5, 4.0), rng.uniform(5.0, 9.0), rng.uniform(0, 6.3), rng.uniform(0, 6.3)
    height = 0.75 + 0.15 * np.sin(2 * np.pi * f1 * t + p1) + 0.1 * np.sin(2 * np.pi * f2 * t + p2)
    sway = 0.15 * np.sin(2 * np.pi * 0.7 * t + p2) * v
    vv = v / max(height, 0.3)
    half = 0.9 * np.clip(1.0 - vv, 0.0, 1.0) ** 0.6 + 0.05
    shape = np.exp(-(((u - sway) / half) ** 2) * 2.5) * np.clip(1.0 - vv, 0.0, 1.0)
    heat = np.clip(shape * (1.15 + 0.55 * noise) - 0.1, 0.0, 1.0)
    # Palette: heat 0..1 -> BGR from dark red through orange and yellow to a warm white core.
    stops = np.array([0.0, 0.3, 0.55, 0.8, 1.0], np.float32)
    colours = np.array([[0, 0, 90], [0, 40, 200], [0, 130, 255], [40, 215, 255], [190, 245, 255]], np.float32)
    col = np.stack([np.interp(heat, stops, colours[:, c]) for c in range(3)], axis=-1)
    alpha = np.clip(heat * 3.0, 0.0, 1.0)[:, :, None]
    x0 = int(base[0] * w) - fw // 2
    y0 = int(base[1] * h) - fh
    xs, ys = max(0, x0), max(0, y0)
    xe, ye = min(w, x0 + fw), min(h, y0 + fh)
    out = frame.astype(np.float32)
    if xe <= xs or ye <= ys:
        return frame.copy()
    cut = (slice(ys - y0, ye - y0), slice(xs - x0, xe - x0))
    roi = out[ys:ye, xs:xe]
    out[ys:ye, xs:xe] = alpha[cut] * col[cut] + (1.0 - alpha[cut]) * roi
    return np.clip(out, 0, 255).astype(np.uint8)


def puddle(frame: np.ndarray, polygon: list[tuple[float, float]], *, seed: int = 0) -> np.ndarray:
    """Standing water on a road: the region turns smooth and mirrors a brighter, blurred sky."""
    h, w = frame.shape[:2]
    mask = np.zeros((h, w), np.uint8)
    pts = np.array([[round(x * (w - 1)), round(y * (h - 1))] for x, y in polygon], np.int32)
    cv2.fillPoly(mask, [pts], 255)
    mirror = cv2.GaussianBlur(cv2.flip(frame, 0), (0, 0), 6.0).astype(np.float32)
    sheen = 0.55 * mirror + 0.45 * np.array([200.0, 195.0, 185.0], np.float32)
    a = (cv2.GaussianBlur(mask, (9, 9), 0).astype(np.float32) / 255.0)[:, :, None]
    out = a * sheen + (1 - a) * frame.astype(np.float32)
    return np.clip(out, 0, 255).astype(np.uint8)
