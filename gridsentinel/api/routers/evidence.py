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

from gridsentinel.api.deps import CaseReader, StateDep
from gridsentinel.api.errors import ApiError, responses
from gridsentinel.api.scope import actor_of, sees_everything
from gridsentinel.api.stats import case_for_detection
from gridsentinel.cases.authority import visible

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
    "blurred). 404 when the detection has none, or when it has expired (`privacy.retention_days`); for a "
    "user of a center or department also when the detection's case is not one it may see.",
    response_class=FileResponse,
    responses={**responses(400, 401, 403, 404), 200: {"content": {"image/jpeg": {}}}},
)
async def snapshot(state: StateDep, token: CaseReader, detection_id: str) -> FileResponse:
    if not DETECTION_ID.fullmatch(detection_id):
        raise ApiError(400, "a detection id is 32 lowercase hex digits")
    actor = actor_of(token)
    if not sees_everything(actor):  # scope: the snapshot is evidence of a case the holder must see
        case_id = await case_for_detection(state.case_store(), detection_id)
        case = await state.case_store().get_case(case_id) if case_id is not None else None
        if case is None or not visible(actor, case):
            raise ApiError(404, f"no evidence snapshot for detection {detection_id}")
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
