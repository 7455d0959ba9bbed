"""CAP 1.2 (OASIS Common Alerting Protocol) messages for emergency-class case events (pure).

One message per case event: ``identifier`` is ``gridsentinel-<event id>``; the event that opened the
case is an ``Alert``, later events are ``Update``s and a closed case a ``Cancel``, both referencing the
opening message (``sender,identifier,sent``). Elements follow the order of the CAP 1.2 schema.

>>> from gridsentinel.cases.events import CaseEvent
>>> ev = CaseEvent(event_id="c1:1", case_id="c1", type="open", at=1749434400.0, actor="system:dedup",
...                grid_code="320582004001001", category_key="event:L005", status="open",
...                severity="critical", notify=True, case={"opened_at": 1749434400.0, "lat": 31.87,
...                "lon": 120.55, "title": "smoke seen by camera-7", "sources": {"camera": 1}})
>>> xml = build_cap(ev, CapSettings(emergency_categories={"event:L005": "Fire"}), event_name="fire or smoke")
>>> b"<cap:msgType>Alert</cap:msgType>" in xml, b"<cap:severity>Extreme</cap:severity>" in xml
(True, True)
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime, tzinfo
from typing import Any

from gridsentinel.alerts.delivery.config import CapSettings
from gridsentinel.cases.events import CaseEvent

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CONTENT_TYPE = "application/cap+xml"
SEVERITY = {"critical": "Extreme", "alarm": "Severe", "warning": "Moderate", "advisory": "Minor"}
URGENCY = {"critical": "Immediate", "alarm": "Immediate", "warning": "Expected", "advisory": "Future"}
_MACHINE_SOURCES = {"sensor", "camera", "inspector"}

ET.register_namespace("cap", CAP_NS)


def cap_time(ts: float, tz: tzinfo = UTC) -> str:
    """CAP dateTime: seconds, numeric offset, UTC written ``-00:00`` (CAP forbids ``Z``).

    >>> cap_time(1749434400.0)
    '2025-06-09T02:00:00-00:00'
    """
    text = datetime.fromtimestamp(ts, tz).isoformat(timespec="seconds")
    return text[:-6] + "-00:00" if text.endswith("+00:00") else text


def is_emergency(event: CaseEvent, settings: CapSettings) -> bool:
    return event.category_key in settings.emergency_categories


def identifier(event_id: str) -> str:
    # CAP identifiers may not contain spaces, commas or the restricted characters < and &.
    return "gridsentinel-" + event_id.replace(",", "_").replace(" ", "_").replace("<", "_").replace("&", "_")


def _sub(parent: ET.Element, name: str, text: str | None = None) -> ET.Element:
    el = ET.SubElement(parent, f"{{{CAP_NS}}}{name}")
    if text is not None:
        el.text = text
    return el


def build_cap(
    event: CaseEvent, settings: CapSettings, *, event_name: str = "", tz: tzinfo = UTC, area_desc: str = ""
) -> bytes:
    """The CAP 1.2 XML document (UTF-8 bytes) for ``event``."""
    case: dict[str, Any] = event.case or {}
    opened_at = float(case.get("opened_at") or event.at)
    first_id = identifier(f"{event.case_id}:1")
    this_id = identifier(event.event_id)
    msg_type = "Cancel" if event.status == "closed" else ("Alert" if this_id == first_id else "Update")

    alert = ET.Element(f"{{{CAP_NS}}}alert")
    _sub(alert, "identifier", this_id)
    _sub(alert, "sender", settings.sender)
    _sub(alert, "sent", cap_time(event.at, tz))
    _sub(alert, "status", "Actual")
    _sub(alert, "msgType", msg_type)
    _sub(alert, "scope", settings.scope)
    if settings.scope == "Restricted":
        _sub(alert, "restriction", settings.restriction)
    if msg_type != "Alert":
        _sub(alert, "references", f"{settings.sender},{first_id},{cap_time(opened_at, tz)}")
    _sub(alert, "incidents", event.case_id)

    info = _sub(alert, "info")
    _sub(info, "language", settings.language)
    _sub(info, "category", settings.emergency_categories.get(event.category_key, "Other"))
    _sub(info, "event", event_name or event.category_key)
    _sub(info, "responseType", "AllClear" if msg_type == "Cancel" else "Monitor")
    _sub(info, "urgency", "Past" if msg_type == "Cancel" else URGENCY.get(event.severity, "Unknown"))
    _sub(info, "severity", SEVERITY.get(event.severity, "Unknown"))
    sources = set((case.get("sources") or {}).keys())
    _sub(info, "certainty", "Observed" if sources & _MACHINE_SOURCES or not sources else "Likely")
    code = _sub(info, "eventCode")
    _sub(code, "valueName", "GridSentinelCategory")
    _sub(code, "value", event.category_key)
    _sub(info, "senderName", settings.sender_name)
    headline = f"{event_name or event.category_key}: {event.type} in grid {event.grid_code}"
    _sub(info, "headline", headline[:160])
    description = str(case.get("title") or "") + (f"\n{event.note}" if event.note else "")
    if description.strip():
        _sub(info, "description", description.strip())
    for name, value in (
        ("caseId", event.case_id),
        ("eventType", event.type),
        ("caseStatus", event.status),
        ("department", case.get("department")),
        ("escalationLevel", case.get("escalation_level")),
    ):
        if value is not None:
            param = _sub(info, "parameter")
            _sub(param, "valueName", name)
            _sub(param, "value", str(value))
    area = _sub(info, "area")
    _sub(area, "areaDesc", area_desc or f"unit grid {event.grid_code}")
    lat, lon = case.get("lat"), case.get("lon")
    if isinstance(lat, (int, float)) and isinstance(lon, (int, float)):
        _sub(area, "circle", f"{lat:.6f},{lon:.6f} 0.1")  # "lat,lon radius_km"
    geocode = _sub(area, "geocode")
    _sub(geocode, "valueName", "GridCode")
    _sub(geocode, "value", event.grid_code)
    return ET.tostring(alert, encoding="utf-8", xml_declaration=True)
