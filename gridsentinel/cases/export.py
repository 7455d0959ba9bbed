"""The desensitised case export for other departments (CSV and GeoJSON; docs/channels.md, "Desensitised
export"): what a case is, where and when, and how it went, without personal data.

- **No identities**: nothing from a detection's evidence (accounts, devices, phone numbers, callers,
  inspectors' user names) and no user names from the case (a pending four-eyes request names its user: left
  out); ``sources`` are counts per channel only.
- **Points snapped to the cell**: ``lat``/``lon`` are the centroid of the case's unit grid cell (a citizen's
  report places a person at a spot and a time); a case whose cell is not in the grid has no point.
- **Free text scrubbed**: ``title`` and ``headline`` are what people wrote, passed through
  :func:`gridsentinel.cases.scrub.scrub` (phones, ID numbers, e-mail addresses) with the grid's codes kept.

Rows are built one case at a time (:func:`export_row`), so an export of any size streams.

>>> from gridsentinel.core.grid import GridMap
>>> from shapely.geometry import box
>>> grid = GridMap({"320582004001001": box(120.0, 31.0, 120.002, 31.002)})
>>> row = export_row(Case(case_id="c1", grid_code="320582004001001", category_type="event", category_code="0102",
...     category_standard="CJ/T 214-2007", status="open", severity="warning", opened_at=0.0, updated_at=0.0,
...     first_seen_at=0.0, last_seen_at=0.0, title="垃圾堆放 回电13912345678", lat=31.00042, lon=120.00017,
...     sources={"citizen": 2}), grid, names={})
>>> row["title"], row["lat"], row["lon"], row["sources"]
('垃圾堆放 回电[phone]', 31.001, 120.001, 'citizen:2')
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from datetime import UTC, datetime
from typing import Any

from gridsentinel.cases.case import Case
from gridsentinel.cases.scrub import scrub
from gridsentinel.cases.store_protocol import CaseQuery, CaseStore
from gridsentinel.core.grid import GridMap

COLUMNS = (
    "case_id", "grid_code", "category_key", "category_standard", "category_name", "category_name_zh",
    "status", "severity", "closing_reason", "opened_at", "first_seen_at", "last_seen_at", "dispatched_at",
    "due_at", "closed_at", "department", "center", "escalation_level", "detection_count", "sources",
    "reopen_count", "rework_count", "duplicate_of", "lat", "lon", "title", "headline",
)
FORMATS = ("csv", "geojson")
MEDIA_TYPES = {"csv": "text/csv; charset=utf-8", "geojson": "application/geo+json"}
COORD_DIGITS = 6  # about 0.1 m: the centroid's own precision, not the report's


def iso(ts: float | None) -> str | None:
    """An RFC 3339 UTC time, or None."""
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def export_row(case: Case, grid: GridMap, names: Mapping[str, tuple[str, str]]) -> dict[str, Any]:
    """One case as an export row (:data:`COLUMNS`). ``names``: category key -> (English, Chinese) name."""
    point = grid.centroid(case.grid_code) if case.grid_code in grid.cells else None
    en, zh = names.get(case.category_key, ("", ""))
    keep = grid.cells.keys()
    return {
        "case_id": case.case_id,
        "grid_code": case.grid_code,
        "category_key": case.category_key,
        "category_standard": case.category_standard,
        "category_name": en,
        "category_name_zh": zh,
        "status": case.status,
        "severity": case.severity,
        "closing_reason": case.closing_reason,
        "opened_at": iso(case.opened_at),
        "first_seen_at": iso(case.first_seen_at),
        "last_seen_at": iso(case.last_seen_at),
        "dispatched_at": iso(case.dispatched_at),
        "due_at": iso(case.due_at),
        "closed_at": iso(case.closed_at),
        "department": case.department,
        "center": case.center,
        "escalation_level": case.escalation_level,
        "detection_count": case.detection_count,
        "sources": ";".join(f"{k}:{v}" for k, v in sorted(case.sources.items())),
        "reopen_count": case.reopen_count,
        "rework_count": case.rework_count,
        "duplicate_of": case.duplicate_of,
        "lat": round(point[0], COORD_DIGITS) if point else None,
        "lon": round(point[1], COORD_DIGITS) if point else None,
        "title": scrub(case.title, keep),
        "headline": scrub(case.headline, keep),
    }


def csv_header() -> str:
    """The CSV's first line (with a UTF-8 byte-order mark, so spreadsheet programs read the Chinese right)."""
    return "\ufeff" + csv_line({c: c for c in COLUMNS})


def csv_line(row: Mapping[str, Any]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\r\n").writerow(["" if row[c] is None else row[c] for c in COLUMNS])
    return buf.getvalue()


def geojson_head() -> str:
    return '{"type": "FeatureCollection", "features": [\n'


def geojson_feature(row: Mapping[str, Any], first: bool) -> str:
    """One Feature (a Point at the cell's centroid; null geometry without one), comma-led after the first."""
    geometry = None if row["lat"] is None else {"type": "Point", "coordinates": [row["lon"], row["lat"]]}
    props = {k: v for k, v in row.items() if k not in ("lat", "lon")}
    props["sources"] = dict(s.split(":", 1) for s in row["sources"].split(";") if s) if row["sources"] else {}
    props["sources"] = {k: int(v) for k, v in props["sources"].items()}
    feature = {"type": "Feature", "id": row["case_id"], "geometry": geometry, "properties": props}
    return ("" if first else ",\n") + json.dumps(feature, ensure_ascii=False)


def geojson_tail() -> str:
    return "\n]}\n"


async def iter_cases(store: CaseStore, query: CaseQuery, page: int = 500) -> AsyncIterator[Case]:
    """Every case ``query`` selects (its limit and offset are ignored), read ``page`` at a time, newest first.
    Offset paging: cases opened while an export runs may shift a page (export a period that has ended)."""
    offset = 0
    while True:
        found = await store.list_cases(replace(query, limit=page + 1, offset=offset))
        for case in found[:page]:
            yield case
        if len(found) <= page:
            return
        offset += page
