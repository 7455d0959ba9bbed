"""Photos sent with inspectors' reports and checks: decoded from base64, checked to be an image (JPEG, PNG
or WebP, decoded by Pillow), stored once by content under ``<run dir>/photos/<sha256>.<ext>`` and served
by ``GET /api/v1/photos/{name}``. The name is the content's SHA-256, so a re-sent photo is stored once and
no request can name another file.

Roles without identity rights (:func:`gridsentinel.api.privacy.sees_identity`: inspectors, viewers) get any
photo, an inspector's or a citizen's, as a copy with faces and plates blurred (:func:`deidentified`): an
inspector photographs a street, and so the strangers on it.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import hashlib
import io
import re
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from starlette.concurrency import run_in_threadpool

from gridsentinel.api.errors import ApiError
from gridsentinel.api.state import ApiState

FORMATS = {"JPEG": "jpg", "PNG": "png", "WEBP": "webp"}
MEDIA_TYPES = {"jpg": "image/jpeg", "png": "image/png", "webp": "image/webp"}
NAME = re.compile(r"^[0-9a-f]{64}\.(jpg|png|webp)$")
URL_PREFIX = "/api/v1/photos/"


def decode(data: str, *, max_bytes: int, index: int) -> tuple[bytes, str]:
    """The photo's bytes and file extension; 400/413 with the photo's index when it is not an image."""
    b64 = data.split(",", 1)[1] if data.startswith("data:") else data
    try:
        raw = base64.b64decode(b64, validate=True)
    except (binascii.Error, ValueError):
        raise ApiError(400, f"photos[{index}]: not valid base64", code="bad_photo") from None
    if len(raw) > max_bytes:
        raise ApiError(413, f"photos[{index}]: {len(raw)} bytes; at most {max_bytes} (shrink it first)",
                       code="payload_too_large")
    try:
        with Image.open(io.BytesIO(raw)) as img:
            fmt = img.format or ""
            img.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise ApiError(400, f"photos[{index}]: not a readable image (send JPEG, PNG or WebP)",
                       code="bad_photo") from None
    if fmt not in FORMATS:
        raise ApiError(400, f"photos[{index}]: {fmt or 'unknown'} images are not accepted; send JPEG, PNG or WebP",
                       code="bad_photo")
    return raw, FORMATS[fmt]


def store(run_dir: Path, raw: bytes, ext: str) -> str:
    """Write the photo (once) and return its URL."""
    name = f"{hashlib.sha256(raw).hexdigest()}.{ext}"
    folder = run_dir / "photos"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    if not path.exists():
        tmp = path.with_suffix(".part")
        tmp.write_bytes(raw)
        tmp.replace(path)
    return URL_PREFIX + name


async def deidentified(state: ApiState, path: Path) -> Path:
    """The blurred copy of the photo at ``path`` (made on first request, kept beside it). One
    de-identification runs at a time: each takes a CPU core for a second or so. Raises FileNotFoundError
    when the photo is gone, :class:`~gridsentinel.cases.citizen_photos.UnreadablePhoto` when it cannot be
    decoded (then it is not shown at all)."""
    from gridsentinel.cases.citizen_photos import blurred_copy, deidentifier

    if state.photo_blur_lock is None:
        state.photo_blur_lock = asyncio.Lock()
    async with state.photo_blur_lock:
        if state.photo_deidentifier is None:
            state.photo_deidentifier = await run_in_threadpool(deidentifier)
        return await run_in_threadpool(blurred_copy, path, state.photo_deidentifier)
