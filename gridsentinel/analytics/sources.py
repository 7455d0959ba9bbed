"""Where reports get their cases: the case store (audit log included) or the Boston 311 extract.

Both become one :class:`Dataset`: :class:`~gridsentinel.analytics.performance.CaseRecord` histories
(performance, trends, stuck cases), located problems (hotspot map and forecast) and selective-reporting
observations per unit level, plus what the source can and cannot record (a figure a source cannot record
is shown as "not recorded", never as zero).

- **Case store**: the cases' sources say which channels saw each problem (sensor, camera = machines;
  citizen, inspector, hotline = people); units are communities (12-digit prefix) and streets (9); the
  category family is the category type with its major class (``event:01``); the history is the audit log.
- **Boston 311**: no machines report there, so the index compares what residents report (calls, the
  Citizens Connect app, self service, Twitter) with what city staff find (employee-generated requests and
  the City Worker App) per neighborhood: a proxy, named so in the report. Performance uses open, due
  (``TARGET_DT``) and closed times per ``Department`` and per neighborhood; Boston records no dispatch,
  rework, escalation or refusal.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from gridsentinel.analytics.civic import Families, _located
from gridsentinel.analytics.grid import Grid
from gridsentinel.analytics.performance import REFUSAL_ACTIONS, CaseRecord, Event
from gridsentinel.analytics.reporting_index import MACHINE_SOURCES, PEOPLE_SOURCES, Observation
from gridsentinel.cases.case import TRANSITIONS, Case, LogEntry
from gridsentinel.cases.store_protocol import CaseQuery, CaseStore
from gridsentinel.errors import GridSentinelError

BOSTON_TZ = "America/New_York"
BOSTON_REF = (42.3601, -71.0589)  # the grid's reference point (downtown), as in `bench forecast`
BOSTON_STAFF = frozenset({"Employee Generated", "City Worker App"})
BOSTON_RESIDENTS = frozenset({"Constituent Call", "Citizens Connect App", "Self Service", "Twitter"})
CIVIC_FILE = "boston311-2015-jan-sep.csv.gz"
# Case-store category families: the major class of the code (domain notes; names where the classes are known).
MAJOR_CLASSES = {
    "component:01": "public utilities", "component:02": "roads and traffic",
    "component:03": "city appearance", "component:04": "parks and greenery", "component:05": "buildings and land",
    "component:06": "other facilities", "event:01": "city appearance / environment", "event:02": "advertising",
    "event:03": "construction", "event:04": "emergencies", "event:05": "street order",
}


@dataclass(frozen=True, slots=True)
class Located:
    """A problem with a place, for maps and the forecast."""

    opened_at: float
    lat: float
    lon: float
    family: str


@dataclass
class Dataset:
    name: str  # where the data came from, for the report's header
    tz: str
    records: list[CaseRecord]
    located: list[Located]
    # unit level ("community", "street", "neighborhood") -> observations, for the selective-reporting index
    observations: dict[str, list[tuple[float, Observation]]]
    people_word: str = "people"
    machine_word: str = "machines"
    refusals_recorded: bool = False
    rework_recorded: bool = True
    escalations_recorded: bool = True
    families: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    grid_ref: tuple[float, float] | None = None  # the map grid's reference point (default: the first problem)
    holidays: tuple[str, str | None] = ("CN", None)  # country and subdivision, a forecast feature


def store_family(case: Case) -> str:
    key = f"{case.category_type}:{case.category_code[:2]}"
    name = MAJOR_CLASSES.get(key)
    return f"{key} {name}" if name else key


def _record_from_case(case: Case, log: list[LogEntry]) -> CaseRecord:
    events = tuple(Event(e.at, e.action, dict(e.data)) for e in log)
    first_escalation = next((e for e in events if e.action == "escalate"), None)
    center = str(first_escalation.data.get("from_center") or case.center) if first_escalation else case.center
    return CaseRecord(case.case_id, case.opened_at, case.department, center, case.closed_at,
                      case.closing_reason == "resolved", None, events, case.grid_code, case.category_key,
                      case.title)


async def from_store(store: CaseStore, *, grid_prefix: str | None, opened_from: float, opened_to: float,
                     tz: str, page: int = 1000) -> Dataset:
    """Cases opened in ``[opened_from, opened_to)`` under ``grid_prefix``, with their audit logs."""
    cases: list[Case] = []
    offset = 0
    while True:
        batch = await store.list_cases(CaseQuery(grid_prefix=grid_prefix or None, opened_from=opened_from,
                                                 opened_to=opened_to, limit=page, offset=offset))
        cases.extend(batch)
        if len(batch) < page:
            break
        offset += page
    records: list[CaseRecord] = []
    located: list[Located] = []
    observations: dict[str, list[tuple[float, Observation]]] = {"community": [], "street": []}
    for case in cases:
        records.append(_record_from_case(case, await store.case_log(case.case_id)))
        family = store_family(case)
        if case.lat is not None and case.lon is not None:
            located.append(Located(case.opened_at, case.lat, case.lon, family))
        by_machine = any(n > 0 and s in MACHINE_SOURCES for s, n in case.sources.items())
        by_people = any(n > 0 and s in PEOPLE_SOURCES for s, n in case.sources.items())
        if by_machine or by_people:
            for level, length in (("community", 12), ("street", 9)):
                observations[level].append((case.opened_at, Observation(
                    case.grid_code[:length], family, case.grid_code, by_machine, by_people)))
    return Dataset(
        name="case store" + (f" (cells under {grid_prefix})" if grid_prefix else ""), tz=tz, records=records,
        located=located, observations=observations,
        # Ready for issue 16: once the workflow knows a refusal action, refusals are counted (0 included).
        refusals_recorded=any(a in TRANSITIONS for a in REFUSAL_ACTIONS),
        families=sorted({store_family(c) for c in cases}))


def _boston_time(text: str, tz: ZoneInfo) -> float | None:
    if not text:
        return None
    return datetime.strptime(text, "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=tz).timestamp()


def civic_file(path: Path) -> Path:
    return path / CIVIC_FILE if path.is_dir() else path


def from_civic(path: Path, families: Families, *, opened_from: float, opened_to: float,
               cell_m: float = 500.0) -> Dataset:
    """Boston 311 requests opened in ``[opened_from, opened_to)`` (located or not; only located ones are mapped)."""
    path = civic_file(path)
    if not path.is_file():
        raise GridSentinelError(f"{path}: not found (expected the civic dataset folder holding {CIVIC_FILE})")
    tz = ZoneInfo(BOSTON_TZ)
    grid = Grid(*BOSTON_REF, cell_m)
    records: list[CaseRecord] = []
    located: list[Located] = []
    obs: list[tuple[float, Observation]] = []
    seen_families: set[str] = set()
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        needed = {"CASE_ENQUIRY_ID", "OPEN_DT", "TARGET_DT", "CLOSED_DT", "CASE_STATUS", "CLOSURE_REASON",
                  "REASON", "TYPE", "Department", "neighborhood", "LATITUDE", "LONGITUDE", "Source"}
        missing = needed - set(reader.fieldnames or [])
        if missing:
            raise GridSentinelError(f"{path}: missing columns {sorted(missing)}")
        for row in reader:
            opened = _boston_time(row["OPEN_DT"], tz)
            if opened is None or not opened_from <= opened < opened_to:
                continue
            family = families.family_of(row["REASON"])
            if family is None:  # comments, notifications: not field problems
                continue
            seen_families.add(family)
            closed = _boston_time(row["CLOSED_DT"], tz)
            reason = row["CLOSURE_REASON"]
            resolved = closed is not None and not any(w in reason for w in ("Duplicate", "Invalid"))
            hood = row["neighborhood"].strip() or "(no neighborhood)"
            records.append(CaseRecord(row["CASE_ENQUIRY_ID"], opened, row["Department"] or "(none)", hood, closed,
                                      resolved, _boston_time(row["TARGET_DT"], tz), (), "", family, row["TYPE"]))
            loc = _located(row["LATITUDE"], row["LONGITUDE"])
            if loc is None:
                continue
            located.append(Located(opened, loc[0], loc[1], family))
            staff, resident = row["Source"] in BOSTON_STAFF, row["Source"] in BOSTON_RESIDENTS
            if staff or resident:
                cx, cy = grid.cell(*loc)
                cell = f"{cx},{cy}"
                obs.append((opened, Observation(hood, family, cell, staff, resident)))
    return Dataset(
        name=f"Boston 311 ({path.name})", tz=BOSTON_TZ, records=records, located=located,
        observations={"neighborhood": obs}, people_word="residents", machine_word="city staff",
        refusals_recorded=False, rework_recorded=False, escalations_recorded=False,
        families=[f for f in families.names if f in seen_families], grid_ref=BOSTON_REF, holidays=("US", "MA"),
        notes=["Boston 311 has no sensors or cameras: the selective-reporting index compares what residents "
               "report with what city staff find (employee-generated requests, the City Worker App) in the "
               "same 500 m cells; Boston records no dispatch time, rework, escalation or refusal."])
