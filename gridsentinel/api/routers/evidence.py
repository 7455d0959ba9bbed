"""``/api/v1/evidence/{detection_id}.jpg``: a camera detection's de-identified snapshot (case evidence).

The frames stage writes each snapshot to ``<run dir>/evidence/<detection id>.jpg`` (docs/cameras.md,
"Live frames stage") and deletes it after ``privacy.retention_days`` of ``cameras.yaml``. Only
de-identified snapshots live there; the id is checked against the detection-id shape (32 lowercase hex
digits) before any path is built, so no request can reach another file.
"""

from __future__ import annotations

import re
import time
from functools import lru_cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from gridsentinel.api.deps import StateDep, Viewer
from gridsentinel.api.errors import ApiError, responses

router = APIRouter(prefix="/api/v1/evidence", tags=["cases"])
DETECTION_ID = re.compile(r"[0-9a-f]{32}")


@lru_cache(maxsize=8)
def _retention_s(cameras_yaml: Path, mtime: float) -> float | None:
    """``privacy.retention_days`` in seconds (None when cameras.yaml is missing: the sweep decides)."""
    from gridsentinel.detectors.camera.config import load_cameras

    return load_cameras(cameras_yaml).privacy.retention_days * 86400.0


def retention_s(config_dir: Path) -> float | None:
    path = config_dir / "cameras.yaml"
    try:
        mtime = path.stat().st_mtime
    except FileNotFoundError:
        return None
    return _retention_s(path, mtime)


@router.get(
    "/{detection_id}.jpg",
    summary="A detection's de-identified evidence snapshot (JPEG)",
    description="The snapshot the frames stage stored for a camera detection (faces, heads and plates "
    "blurred). 404 when the detection has none, or when it has expired (`privacy.retention_days`).",
    response_class=FileResponse,
    responses={**responses(400, 401, 403, 404), 200: {"content": {"image/jpeg": {}}}},
)
async def snapshot(state: StateDep, _: Viewer, detection_id: str) -> FileResponse:
    if not DETECTION_ID.fullmatch(detection_id):
        raise ApiError(400, "a detection id is 32 lowercase hex digits")
    path = state.settings.run_dir / "evidence" / f"{detection_id}.jpg"
    try:
        age = time.time() - path.stat().st_mtime
    except (FileNotFoundError, NotADirectoryError):
        raise ApiError(404, f"no evidence snapshot for detection {detection_id}") from None
    keep = retention_s(state.settings.config_dir)
    if keep is not None and age > keep:
        raise ApiError(404, f"the evidence snapshot of detection {detection_id} has expired")
    headers = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
    return FileResponse(path, media_type="image/jpeg", headers=headers)
