"""From a finding to the shared ``Detection`` record, with a deterministic id."""

from __future__ import annotations

import hashlib
from collections.abc import Callable

from gridsentinel.core.records import Detection
from gridsentinel.detectors.base import Finding

CategoryOf = Callable[[str, str, str | None], tuple[str, str]]
"""``(device kind, detection kind, component class) -> (category_code, category_standard)``.

config/categories.yaml alone decides a detection's category: the composition root passes the case
catalogue's ``Catalog.category_of`` in (detectors sit below cases and do not import them).
"""


def component_class(component_id: str | None) -> str | None:
    """The component class (4 digits) of a 16-digit component code: what picks a cover's category.

    >>> component_class("3205820102000001"), component_class(None)
    ('0102', None)
    """
    if component_id and len(component_id) == 16 and component_id.isdigit():
        return component_id[6:10]  # 6 district + 2 major + 2 minor + 6 sequence
    return None


def detection_id(device_id: str, detector: str, kind: str, started_at: float, severity: str,
                 metric: str | None = None) -> str:
    """sha256 of device, detector, kind, incident start (event time, ms) and severity, as 32 hex digits.

    The same incident replayed gives the same id; an escalation is a new detection of the same incident.
    A per-metric detector's incidents also hash their metric (pm2_5 and pm10 stuck since the same
    minute are two incidents); without a metric the id is what it always was.

    >>> detection_id("drain-1", "drainage_level", "drain_overflow", 1700000000.0, "warning")
    '21006c279229d955bce97436f7895ca4'
    >>> a, b = (detection_id("aq-1", "flatline", "sensor_stuck", 0.0, "advisory", m) for m in ("pm2_5", "pm10"))
    >>> a != b
    True
    """
    key = f"{device_id}\x1f{detector}\x1f{kind}\x1f{round(started_at * 1000)}\x1f{severity}"
    if metric is not None:
        key += f"\x1f{metric}"
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def to_detection(finding: Finding, *, device_id: str, detector: str, detector_version: str,
                 grid_code: str, category_code: str, category_standard: str, source: str = "sensor",
                 lat: float | None = None, lon: float | None = None) -> Detection:
    """Build the ``Detection`` for an ``open`` or ``escalate`` finding (a ``clear`` is not a detection).

    >>> f = Finding("cover_tilt", "open", "alarm", 100.0, 102.0, 30.0, 3.0, "cover tilted 30°")
    >>> d = to_detection(f, device_id="cover-7", detector="cover_tilt", detector_version="v1",
    ...                  grid_code="320582110152102", category_code="0103",
    ...                  category_standard="GB/T 30428.2-2013")
    >>> same = detection_id("cover-7", "cover_tilt", "cover_tilt", 100.0, "alarm")
    >>> d.severity, d.observed_at, d.detection_id == same
    ('alarm', 102.0, True)
    """
    if finding.phase == "clear":
        raise ValueError("a clear finding ends an incident; it is not a detection")
    evidence = dict(finding.evidence)
    evidence.update(incident_started_at=finding.started_at, phase=finding.phase)
    if finding.metric is not None:
        evidence["metric"] = finding.metric
    return Detection(
        detection_id=detection_id(device_id, detector, finding.kind, finding.started_at, finding.severity,
                                  finding.metric),
        source=source, detector=detector, detector_version=detector_version, kind=finding.kind,
        category_code=category_code, category_standard=category_standard, severity=finding.severity,
        grid_code=grid_code, observed_at=finding.observed_at, device_id=device_id, lat=lat, lon=lon,
        value=finding.value, score=finding.score, evidence=evidence, message=finding.message,
        messages=dict(finding.messages))
