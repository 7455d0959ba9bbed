"""The citizen intake behind Open311's POST: rate limits, report quality, then straight through, held for
verification, or attached to an earlier report as a duplicate photo (docs/cases.md, "Report quality").

The checks are :mod:`gridsentinel.cases.quality` (pure); the reports they compare with, and every
decision with its reasons, are rows of ``citizen_reports`` (:mod:`gridsentinel.cases.report_store`). A
report's id is the token its POST answers (32 hex digits; its detection id is ``citizen:<token>``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from starlette.concurrency import run_in_threadpool

from gridsentinel.api.errors import ApiError
from gridsentinel.api.state import ApiState
from gridsentinel.cases.photos_command import PHOTO_DIR  # <run dir>/citizen-photos/<report id>.photo
from gridsentinel.cases.quality import Assessment, NewReport, assess, rate_limit
from gridsentinel.cases.report_store import CitizenReport, ReportState, ReportStore
from gridsentinel.core.records import Detection

REPORT_ID = re.compile(r"[0-9a-f]{32}")

PHOTO_TYPES = ((b"\xff\xd8\xff", "image/jpeg"), (b"\x89PNG\r\n\x1a\n", "image/png"), (b"RIFF", "image/webp"))


@dataclass(frozen=True, slots=True)
class Intake:
    """What the intake made of one POST."""

    report: CitizenReport
    new: bool  # False: the same report was already received (a retry)


def reports(state: ApiState) -> ReportStore:
    if state.reports is None:
        raise RuntimeError("the citizen report store is not open (the app's lifespan has not run)")
    return state.reports


def photo_path(state: ApiState, report_id: str) -> Path:
    if not REPORT_ID.fullmatch(report_id):  # never build a path from anything else
        raise ApiError(404, f"no report {report_id}")
    return Path(state.settings.run_dir) / PHOTO_DIR / f"{report_id}.photo"


def photo_type(head: bytes) -> str:
    """The media type of a stored photo by its first bytes (what Pillow decoded it as)."""
    return next((t for magic, t in PHOTO_TYPES if head.startswith(magic)), "application/octet-stream")


def photo_link(report_id: str) -> str:
    return f"/api/v1/verification/{report_id}/photo"


def _state_of(assessment: Assessment) -> ReportState:
    if assessment.duplicate_of is not None:
        return "duplicate"
    return "held" if assessment.decision == "verify" else "accepted"


async def take(state: ApiState, detection: Detection, *, report_id: str, reporter: str, account_id: str | None,
               device_id: str | None, phone: str | None, category_key: str, description: str,
               photo: bytes | None) -> Intake:
    """Rate-limit, assess and record one report (the caller sends ``accepted`` ones to the case stage).

    Raises 429 (``rate_limited``, with the reason and ``Retry-After``) when the account or the device is
    over its limit; such a report is not kept.
    """
    store = reports(state)
    cfg = state.quality
    now = detection.observed_at
    assert detection.lat is not None and detection.lon is not None  # Open311 always locates the report
    new = NewReport(report_id, now, detection.lat, detection.lon, category_key, account_id, device_id)
    recent = await store.recent(now, cfg, account_id, device_id)
    limited = rate_limit(new, recent, cfg)
    if limited is not None:
        retry = str(int(limited.retry_after_s + 0.999))
        raise ApiError(429, limited.reason.detail, code="rate_limited",
                       details={"reason": limited.reason.code, "retry_after_s": round(limited.retry_after_s, 1)},
                       headers={"Retry-After": retry})
    # decoding and hashing a photo takes tens of milliseconds of CPU: off the event loop
    assessment = await run_in_threadpool(assess, new, photo, recent, cfg)
    kept = photo is not None and assessment.photo_hash is not None  # decodable: worth showing an inspector
    quality = assessment.evidence()
    evidence = {**detection.evidence, "quality": quality}
    if kept:
        evidence["photo_url"] = photo_link(report_id)
    detection = Detection.from_dict({**detection.to_dict(), "evidence": evidence})
    past = assessment.as_past(new)
    record = CitizenReport(
        report_id=report_id, detection_id=detection.detection_id, received_at=now, reporter=reporter,
        lat=new.lat, lon=new.lon, grid_code=detection.grid_code, category_key=category_key,
        decision=assessment.decision, state=_state_of(assessment), gaming_score=assessment.gaming_score,
        quality=quality, detection=detection.to_dict(), description=description, account_id=account_id,
        device_id=device_id, phone=phone, filed_lat=past.filed_lat, filed_lon=past.filed_lon,
        photo_hash=assessment.photo_hash, has_photo=kept, duplicate_of=assessment.duplicate_of,
    )
    if kept and photo is not None:
        path = photo_path(state, report_id)
        await run_in_threadpool(_write, path, photo)
    if not await store.add(record):  # the same report raced in from a retry: that one counts
        found = await store.get(report_id)
        if found is not None:
            return Intake(found, new=False)
    return Intake(record, new=True)


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(data)
    tmp.replace(path)


async def original(store: ReportStore, report: CitizenReport, hops: int = 5) -> CitizenReport:
    """The report a duplicate repeats (following a chain of duplicates), or the report itself."""
    while report.duplicate_of is not None and hops > 0:
        earlier = await store.get(report.duplicate_of)
        if earlier is None:
            break
        report, hops = earlier, hops - 1
    return report


def held_notice(report: CitizenReport) -> str:
    """What the citizen is told about a held report: that it waits, and the checks about the photo."""
    codes = [r["code"] for r in report.quality.get("reasons", []) if isinstance(r, dict)]
    about_photo = [c for c in codes if c.startswith("photo_")]
    return "held for verification: an inspector checks it before a case is opened" + (
        f" ({', '.join(about_photo)})" if about_photo else "")




def status_notes(report: CitizenReport, *, duplicate_of: str | None = None) -> str:
    """The Open311 ``status_notes`` of a report that has no case (yet)."""
    prefix = f"duplicate photo of request {duplicate_of}; " if duplicate_of else ""
    if report.state == "held":
        return prefix + held_notice(report)
    if report.state == "rejected":
        return prefix + f"rejected after verification: {report.decision_note or 'no reason given'}"
    if report.state == "confirmed":
        return prefix + "confirmed by an inspector; the case follows"
    return prefix + "accepted; the case follows"


def queue_item(report: CitizenReport) -> dict[str, Any]:
    """A report as the verification queue lists it (for dispatchers: identity included)."""
    reasons = [r for r in report.quality.get("reasons", []) if isinstance(r, dict)]
    gaming_codes = {"ad_cluster", "one_place", "burst", "photo_reused"}
    return {
        "id": report.report_id,
        "state": report.state,
        "received_at": report.received_at,
        "category_key": report.category_key,
        "grid_code": report.grid_code,
        "lat": report.lat,
        "lon": report.lon,
        "description": report.description,
        "account_id": report.account_id,
        "device_id": report.device_id,
        "phone": report.phone,
        "reasons": reasons,
        "location": report.quality.get("location"),
        "photo_distance_m": report.quality.get("photo_distance_m"),
        "gaming_score": round(report.gaming_score, 3),
        "gaming_signals": [r for r in reasons if r.get("code") in gaming_codes],
        "photo_url": photo_link(report.report_id) if report.has_photo else None,
        "media_url": report.detection.get("evidence", {}).get("media_url"),
        "duplicate_of": report.duplicate_of,
        "decided_at": report.decided_at,
        "decided_by": report.decided_by,
        "decision_note": report.decision_note,
    }
