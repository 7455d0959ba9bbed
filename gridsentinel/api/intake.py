"""Hand a channel's detection to the case stage (``gs.detections``) and wait briefly for its case: what the
inspector and hotline routes share with Open311's POST (same sink, same applied-detection lookup)."""

from __future__ import annotations

from gridsentinel.api.errors import ApiError
from gridsentinel.api.routers.open311 import applied_as, wait_applied
from gridsentinel.api.state import ApiState
from gridsentinel.core.records import Detection


async def submit(state: ApiState, detection: Detection) -> tuple[str | None, str]:
    """(case id or None, outcome): ``duplicate`` when the detection was applied before (a retry), else the
    case stage's outcome, or ``pending`` when it has not applied it within the wait."""
    found = await applied_as(state.case_store(), detection.detection_id)
    if found is not None:
        return found[0], "duplicate"
    if state.detection_sink is None:
        raise ApiError(503, "reports cannot reach the case stage (no detection route configured)", code="unavailable")
    try:
        await state.detection_sink(detection)
    except Exception as exc:  # Kafka away: the client retries with the same id
        raise ApiError(503, f"the report could not be queued ({type(exc).__name__}); retry",
                       code="unavailable") from None
    found = await wait_applied(state.case_store(), detection.detection_id, state.open311_wait_s)
    return (found[0], found[1]) if found is not None else (None, "pending")
