"""Real photos for the citizen-intake tests: frames of real footage (tests/fixtures/vision, see its
ATTRIBUTION.md) encoded as JPEG with or without EXIF GPS and capture time (as a phone camera writes them)."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from pathlib import Path

import cv2
from PIL import ExifTags, Image

VISION = Path(__file__).resolve().parent / "fixtures" / "vision"


def _dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    return float(d), float(m), round((value - d - m / 60) * 3600, 4)


def photo(name: str, *, gps: tuple[float, float] | None = None, taken_at: float | None = None,
          quality: int = 85) -> bytes:
    """A JPEG of the real frame ``name`` (under tests/fixtures/vision); with EXIF GPS and a UTC
    DateTimeOriginal (+ OffsetTimeOriginal) when given, else without EXIF."""
    bgr = cv2.imread(str(VISION / name))
    assert bgr is not None, name
    img = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    if gps is not None:
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N" if gps[0] >= 0 else "S",
            ExifTags.GPS.GPSLatitude: _dms(gps[0]),
            ExifTags.GPS.GPSLongitudeRef: "E" if gps[1] >= 0 else "W",
            ExifTags.GPS.GPSLongitude: _dms(gps[1]),
        }
    if taken_at is not None:
        exif[ExifTags.IFD.Exif] = {
            ExifTags.Base.DateTimeOriginal: datetime.fromtimestamp(taken_at, UTC).strftime("%Y:%m:%d %H:%M:%S"),
            ExifTags.Base.OffsetTimeOriginal: "+00:00",
        }
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif)
    return buf.getvalue()
