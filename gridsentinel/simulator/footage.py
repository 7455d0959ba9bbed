"""Camera frames from real footage (``footage/walkway``, see its ATTRIBUTION.md), with the scripted
camera incidents drawn in: a covered lens and a left object."""

from __future__ import annotations

from functools import cache
from pathlib import Path

import cv2
import numpy as np

FOOTAGE_DIR = Path(__file__).resolve().parent / "footage" / "walkway"


@cache
def frames() -> tuple[np.ndarray, ...]:
    paths = sorted(FOOTAGE_DIR.glob("*.jpg"))
    if not paths:
        raise FileNotFoundError(f"no footage in {FOOTAGE_DIR}")
    out = []
    for p in paths:
        img = cv2.imread(str(p), cv2.IMREAD_COLOR)
        if img is None:  # unreadable: say which file now, not fail later on a None frame
            raise OSError(f"cannot decode {p}")
        out.append(img)
    return tuple(out)


def covered(frame: np.ndarray) -> np.ndarray:
    """A hand or a bag over the lens: little light, no focus, a warm cast."""
    dark = cv2.GaussianBlur(frame, (0, 0), sigmaX=frame.shape[1] / 20)
    dark = (dark.astype(np.float32) * 0.12 + np.array([4, 8, 14], np.float32)).clip(0, 255)
    return dark.astype(np.uint8)


def with_object(frame: np.ndarray) -> np.ndarray:
    """A cardboard box left on the walkway (about 1 % of the view), lit from the top left."""
    out = frame.copy()
    h, w = out.shape[:2]
    x0, y0, bw, bh = int(w * 0.47), int(h * 0.70), int(w * 0.11), int(h * 0.11)
    top = np.array([[x0, y0], [x0 + bw, y0], [x0 + bw + bw // 4, y0 - bh // 3], [x0 + bw // 4, y0 - bh // 3]])
    side = np.array([[x0 + bw, y0], [x0 + bw + bw // 4, y0 - bh // 3], [x0 + bw + bw // 4, y0 + bh - bh // 3],
                     [x0 + bw, y0 + bh]])
    cv2.fillPoly(out, [top], (120, 170, 205))
    cv2.rectangle(out, (x0, y0), (x0 + bw, y0 + bh), (62, 112, 158), -1)
    cv2.fillPoly(out, [side], (40, 80, 118))
    cv2.line(out, (x0 + bw // 2, y0), (x0 + bw // 2 + bw // 4, y0 - bh // 3), (200, 215, 225), 2)
    cv2.rectangle(out, (x0, y0), (x0 + bw, y0 + bh), (30, 55, 80), 1)
    return out


def render(index: int, effect: str, quality: int = 80) -> bytes:
    """The JPEG a camera sends: footage frame ``index`` with ``effect`` ("", "covered", "object")."""
    all_frames = frames()
    frame = all_frames[index % len(all_frames)]
    if effect == "covered":
        frame = covered(frame)
    elif effect == "object":
        frame = with_object(frame)
    ok, buf = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf)
