"""Citizens' photos after the intake (docs/channels.md, "Citizens' photos: blurring and retention"):

- **Blurred before anyone without identity rights sees them.** A citizen photographs a street, and so
  strangers' faces and car plates. Dispatchers and up (:func:`gridsentinel.api.privacy.sees_identity`) get
  the photo as sent; every other role (an inspector checking the queue, a viewer) gets a copy de-identified
  by the cameras' own :class:`~gridsentinel.detectors.camera.privacy.Deidentifier` (Haar faces, profiles and
  plates, HOG heads, CenterFace; recall first), made on first request and kept beside the photo as
  ``<report id>.blurred.jpg``. The original is never sent to such a role, and a photo that cannot be decoded
  is not sent at all.
- **Kept ``photo_retention_days``** (config/quality.yaml, default 30): :func:`sweep` deletes a report's photo
  and its blurred copy once the photo file is that old (its modification time: when the intake wrote it).
  The report, its reasons and its perceptual hash stay; the photo route then answers 404 "expired".
  Run it from cron or a timer: ``gridsentinel photos sweep`` (:mod:`gridsentinel.cases.photos_command`).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from gridsentinel.detectors.camera.privacy import Deidentifier, PrivacyConfig

PHOTO_SUFFIX = ".photo"  # as the citizen sent it (api/citizen_intake.py writes it)
BLURRED_SUFFIX = ".blurred.jpg"


class UnreadablePhoto(Exception):
    """The stored photo cannot be decoded, so it cannot be de-identified (and is not shown)."""


def blurred_path(photo: Path) -> Path:
    return photo.with_name(photo.name.removesuffix(PHOTO_SUFFIX) + BLURRED_SUFFIX)


def deidentifier() -> Deidentifier:
    """The cameras' de-identifier with their defaults, except no downscaling: an inspector needs the detail."""
    return Deidentifier(PrivacyConfig(max_width=3840))


def blur(data: bytes, deid: Deidentifier, jpeg_quality: int = 85) -> tuple[bytes, int]:
    """A de-identified JPEG of ``data`` and the number of regions blurred. Raises :class:`UnreadablePhoto`."""
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise UnreadablePhoto("the photo cannot be decoded")
    clean, regions = deid.deidentify(image)
    ok, jpeg = cv2.imencode(".jpg", clean, [cv2.IMWRITE_JPEG_QUALITY, jpeg_quality])
    if not ok:
        raise UnreadablePhoto("the blurred photo could not be encoded")
    return jpeg.tobytes(), len(regions)


def blurred_copy(photo: Path, deid: Deidentifier) -> Path:
    """The blurred copy of ``photo``, made (atomically) if it does not exist yet. FileNotFoundError when the
    photo is gone (expired); :class:`UnreadablePhoto` when it cannot be decoded."""
    target = blurred_path(photo)
    if target.exists() and target.stat().st_mtime >= photo.stat().st_mtime:
        return target
    jpeg, _ = blur(photo.read_bytes(), deid)
    tmp = target.with_name(f"{target.name}.{os.getpid()}.part")
    tmp.write_bytes(jpeg)
    tmp.replace(target)
    return target


@dataclass(frozen=True, slots=True)
class Swept:
    """What one sweep did."""

    removed: int  # photos deleted (their blurred copies with them)
    kept: int  # photos younger than the retention period
    freed_bytes: int
    orphans: int  # blurred copies or partial files whose photo was already gone, deleted too


def sweep(folder: Path, retention_days: float, now: float | None = None, *, dry_run: bool = False) -> Swept:
    """Delete the photos in ``folder`` older than ``retention_days`` (by modification time), with their blurred
    copies, and blurred copies or partial writes left without a photo. ``dry_run``: count only."""
    now = time.time() if now is None else now
    cutoff = now - retention_days * 86400.0
    removed = kept = freed = orphans = 0
    if not folder.is_dir():
        return Swept(0, 0, 0, 0)
    for path in sorted(folder.iterdir()):
        if not path.is_file():
            continue
        stat = path.stat()
        if path.name.endswith(PHOTO_SUFFIX):
            if stat.st_mtime >= cutoff:
                kept += 1
                continue
            removed += 1
            freed += stat.st_size
            copy = blurred_path(path)
            if copy.exists():
                freed += copy.stat().st_size
                if not dry_run:
                    copy.unlink(missing_ok=True)
            if not dry_run:
                path.unlink(missing_ok=True)
        elif path.name.endswith(BLURRED_SUFFIX) or path.name.endswith((".part", ".tmp")):
            original = folder / (path.name.split(".", 1)[0] + PHOTO_SUFFIX)
            stale = path.name.endswith((".part", ".tmp")) and stat.st_mtime < now - 3600
            if (not original.exists() and stat.st_mtime < now - 60) or stale:
                orphans += 1
                freed += stat.st_size
                if not dry_run:
                    path.unlink(missing_ok=True)
    return Swept(removed, kept, freed, orphans)
