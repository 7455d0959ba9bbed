"""Incidents: one event in the street seen as cases of several categories (issue 17, docs/cases.md "Incidents").

A drain sensor's overflow (``component:0103``), a camera's waterlogging and the citizens' "road flooded"
(``event:L001``) are different categories, so dedup keeps them apart as cases. An **incident family**
(``config/incident_families.yaml``) names the categories one event raises together, a radius in neighbour
rings and a time window. Cases of one family whose cells lie within the radius and whose detection times
(``first_seen_at`` .. ``last_seen_at``, event time) come within the window are linked under one incident;
each case keeps its own category, evidence and due time.

The rule (:func:`plan_links`, pure) runs whenever a case opens or takes evidence, inside the case stage's
transaction (:func:`link_cases`): the case change and its link commit together. Only active cases link;
an incident holds at least two cases; a case, once linked, stays in its incident. When a case is close to
cases of two incidents, the incidents **merge**: the older one (opened first; then the smaller id) keeps
its id, the other records ``merged_into``.

Concurrency: two batches in different partitions may open two close cases at the same moment. Linking
takes locks first (PostgreSQL: transaction-scoped advisory locks per family *and region*, see
:func:`lock_regions`; SQLite: the writer lock every case transaction holds), reads after them, and commits
with the case change, so of two batches that could link each other's cases the second always sees the
first one's case and incident, while batches in regions far apart do not wait for each other. Belt and
braces: an incident's id derives from its first case's id and ``incident_members`` has the case id as
primary key, so two linkers that somehow raced would collide (StoreConflict: the batch retries) instead of
making two incidents; and the incidents a plan joins or merges are locked and checked unmerged when it is
written (an incident can stretch across regions, so two batches in different regions may both reach it).

>>> from gridsentinel.cases.case import new_case_for_test as case
>>> family = FamiliesFile.model_validate({"version": "t", "families": {"flooding": {
...     "name": "flooding", "name_zh": "城市内涝", "categories": ["component:0103", "event:L001"],
...     "radius_rings": 1, "window_minutes": 60, "lead_department": "drainage"}}}).families["flooding"]
>>> adjacency = {"320582110152102": {"320582110152103"}, "320582110152103": {"320582110152102"}}
>>> drain = case(case_id="a", category_type="component", grid_code="320582110152102",
...              first_seen_at=0.0, last_seen_at=600.0)
>>> ponding = case(case_id="b", category_type="event", category_code="L001", grid_code="320582110152103",
...                first_seen_at=1200.0, last_seen_at=1200.0)
>>> plan = plan_links([ponding], [drain, ponding], {}, {}, family, adjacency, now=2000.0)
>>> [(i.incident_id == incident_id_for("a"), i.family) for i in plan.created]
[(True, 'flooding')]
>>> sorted(case_id for case_id, _ in plan.joined)
['a', 'b']
>>> later = case(case_id="c", category_type="event", category_code="L001", grid_code="320582110152103",
...              first_seen_at=9000.0, last_seen_at=9000.0)  # two hours after the drain's last reading
>>> plan_links([later], [drain, later], {}, {}, family, adjacency, now=9100.0).empty
True
"""

from __future__ import annotations

import hashlib
import uuid
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from pydantic import Field, PrivateAttr, model_validator

from gridsentinel.cases.case import Case
from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.gridcode import Adjacency, ring_distances
from gridsentinel.core.config import StrictModel, load_yaml
from gridsentinel.errors import ConfigError

INCIDENT_ACTOR = "system:incidents"
FILE_NAME = "incident_families.yaml"
_INCIDENT_NS = uuid.UUID("5f0c1d7e-2b8a-4d3e-8c61-7a9e4b2d1f05")
_KEY = r"^(component|event):[0-9A-Za-z]{2,8}$"
_NAME = r"^[a-z][a-z0-9_]{0,63}$"


class Family(StrictModel):
    """One incident family: the categories one event raises together, and how close their cases must be."""

    name: str = Field(min_length=1, max_length=80, description="Display name (English).")
    name_zh: str = Field(min_length=1, max_length=80, description="Display name (zh-CN).")
    categories: list[str] = Field(min_length=2, max_length=40,
                                  description="Member category keys (type:code, as in categories.yaml).")
    radius_rings: int = Field(ge=0, le=5, description="Cases at most this many neighbour rings apart link "
                                                      "(0 = the same cell only).")
    window_minutes: float = Field(gt=0, le=7 * 24 * 60,
                                  description="Cases whose detection times (first..last seen) come within this "
                                              "many minutes of each other link.")
    lead_department: str | None = Field(None, pattern=_NAME,
                                        description="The department an incident of this family is dispatched "
                                                    "to by default (a key of routing.yaml's departments).")
    _family_id: str = PrivateAttr("")  # the key in `families`, set by FamiliesFile

    @model_validator(mode="after")
    def _keys(self) -> Self:
        import re

        bad = [k for k in self.categories if not re.match(_KEY, k)]
        if bad:
            raise ValueError(f"category keys look like component:0103 or event:L001; got {bad}")
        if len(set(self.categories)) != len(self.categories):
            raise ValueError("a category is listed twice")
        return self

    @property
    def family_id(self) -> str:
        return self._family_id

    @property
    def window_s(self) -> float:
        return self.window_minutes * 60


class FamiliesFile(StrictModel):
    """``config/incident_families.yaml``."""

    version: str = Field(min_length=1, max_length=40, description="Version of this file.")
    families: dict[str, Family] = Field(default_factory=dict, description="Family id → family.")

    @model_validator(mode="after")
    def _one_family_per_category(self) -> Self:
        import re

        owner: dict[str, str] = {}
        for family_id, family in self.families.items():
            if not re.match(_NAME, family_id):
                raise ValueError(f"family id {family_id!r}: lower-case letters, digits and _")
            family._family_id = family_id
            for key in family.categories:
                if key in owner:
                    raise ValueError(f"{key} is in families {owner[key]} and {family_id}; "
                                     "a category belongs to at most one family")
                owner[key] = family_id
        return self


class IncidentFamilies:
    """The families, checked against the catalogue, answering "which family is this category in?"."""

    def __init__(self, file: FamiliesFile, catalog: Catalog | None = None, where: str = FILE_NAME) -> None:
        self.file = file
        if catalog is not None:
            for family_id, family in file.families.items():
                unknown = [k for k in family.categories if k not in catalog.policies]
                if unknown:
                    raise ConfigError(f"{where}: families.{family_id}.categories: unknown {unknown}; "
                                      f"known: {', '.join(catalog.policies)}")
                lead = family.lead_department
                if lead is not None and lead not in catalog.routing.departments:
                    raise ConfigError(f"{where}: families.{family_id}.lead_department: unknown {lead!r}; "
                                      f"known: {', '.join(catalog.routing.departments)}")
        self._by_category = {k: f for f in file.families.values() for k in f.categories}

    @classmethod
    def empty(cls) -> IncidentFamilies:
        return cls(FamiliesFile(version="none"))

    def family_of(self, category_key: str) -> Family | None:
        return self._by_category.get(category_key)

    def get(self, family_id: str) -> Family | None:
        return self.file.families.get(family_id)

    def __bool__(self) -> bool:
        return bool(self.file.families)


def load_families(config_dir: Path | str, catalog: Catalog | None = None) -> IncidentFamilies:
    """``config_dir/incident_families.yaml`` checked against ``catalog``; no file: no families (no
    incidents). Problems raise ConfigError naming the file, the key and the value."""
    path = Path(config_dir) / FILE_NAME
    if not path.exists():
        return IncidentFamilies.empty()
    return IncidentFamilies(load_yaml(path, FamiliesFile), catalog, str(path))


def incident_id_for(case_id: str) -> str:
    """The id of an incident founded by ``case_id`` (deterministic: a replay yields the same ids)."""
    return str(uuid.uuid5(_INCIDENT_NS, case_id))


LOCK_REGION_DIGITS = 9  # a linking lock covers a street (6 district + 3 street digits), as a Kafka key does


def lock_regions(cases: Sequence[Case], family: Family, adjacency: Adjacency) -> list[str]:
    """The regions whose linking locks a transaction takes before linking ``cases`` (of ``family``), sorted.

    A case only ever links with cases at most ``radius_rings`` rings from it (:func:`plan_links` looks no
    further), so the lock set is the regions (street prefixes) of every cell within the radius of each case,
    its own cell included. Why two transactions that could link each other's cases always share a lock:
    if case *a* (transaction A) and case *b* (transaction B) are within the radius of each other, *b*'s cell
    is among the cells A looks at, so A locks *b*'s region; and B locks the region of *b*'s own cell. The
    same holds for a case already stored that both would link to: both look at its cell. So the region's
    size does not matter for correctness, only for how many locks a batch takes (a street: usually one,
    since the stage's partitions are keyed by street) and how often unrelated batches share one. Locks
    are taken in (family, region) order, families in name order, so two transactions never wait on each
    other in a circle.

    >>> from gridsentinel.cases.case import new_case_for_test as case
    >>> family = FamiliesFile.model_validate({"version": "t", "families": {"flooding": {
    ...     "name": "f", "name_zh": "f", "categories": ["component:0103", "event:L001"], "radius_rings": 1,
    ...     "window_minutes": 60}}}).families["flooding"]
    >>> edge = {"320582110152102": {"320582111000001"}, "320582111000001": {"320582110152102"}}
    >>> lock_regions([case(grid_code="320582110152102")], family, edge)  # next to the next street's cell
    ['320582110', '320582111']
    >>> lock_regions([case(grid_code="320582110152102")], family, {})
    ['320582110']
    """
    return sorted({cell[:LOCK_REGION_DIGITS] for cell in _cells_near(cases, family, adjacency)})


def _cells_near(cases: Sequence[Case], family: Family, adjacency: Adjacency) -> set[str]:
    """Every cell at most ``family.radius_rings`` rings from one of ``cases``: where their links can be."""
    cells: set[str] = set()
    for case in cases:
        cells.update(ring_distances(case.grid_code, family.radius_rings, adjacency))
    return cells


def region_lock_key(family_id: str, region: str) -> int:
    """A signed 64-bit number for PostgreSQL's advisory lock on linking ``family_id``'s cases in ``region``.

    >>> region_lock_key("flooding", "320582110") == region_lock_key("flooding", "320582110")
    True
    >>> len({region_lock_key("flooding", "320582110"), region_lock_key("flooding", "320582111"),
    ...      region_lock_key("fire", "320582110")})
    3
    """
    digest = hashlib.sha256(f"gridsentinel incidents {family_id} {region}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def time_gap(a: Case, b: Case) -> float:
    """Seconds between two cases' detection spans (0 when they overlap).

    >>> from gridsentinel.cases.case import new_case_for_test as case
    >>> time_gap(case(first_seen_at=0.0, last_seen_at=100.0), case(first_seen_at=160.0, last_seen_at=200.0))
    60.0
    >>> time_gap(case(first_seen_at=0.0, last_seen_at=100.0), case(first_seen_at=50.0, last_seen_at=70.0))
    0.0
    """
    return max(0.0, max(a.first_seen_at, b.first_seen_at) - min(a.last_seen_at, b.last_seen_at))


@dataclass(frozen=True, slots=True)
class Incident:
    """An incident as stored; its members and status come from its cases."""

    incident_id: str
    family: str
    opened_at: float
    updated_at: float
    merged_into: str | None = None


@dataclass(frozen=True, slots=True)
class IncidentLogEntry:
    """One line of an incident's append-only audit log."""

    incident_id: str
    at: float
    actor: str
    action: str  # open, link, merge, merged_into, dispatch, close
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"incident_id": self.incident_id, "at": self.at, "actor": self.actor, "action": self.action,
                "note": self.note, "data": dict(self.data)}


@dataclass
class LinkPlan:
    """What linking changes: incidents created, cases joining one, incidents merged (loser → survivor)."""

    created: list[Incident] = field(default_factory=list)
    joined: list[tuple[str, str]] = field(default_factory=list)  # (case id, incident id)
    merged: list[tuple[str, str]] = field(default_factory=list)  # (merged incident id, surviving id)
    log: list[IncidentLogEntry] = field(default_factory=list)

    @property
    def empty(self) -> bool:
        return not (self.created or self.joined or self.merged)

    def touched(self) -> set[str]:
        """Incident ids whose ``updated_at`` changes."""
        return {i for _, i in self.joined} | {s for _, s in self.merged} | {m for m, _ in self.merged}


def plan_links(touched: Sequence[Case], pool: Sequence[Case], links: Mapping[str, str],
               incidents: Mapping[str, Incident], family: Family, adjacency: Adjacency, *,
               now: float) -> LinkPlan:
    """Link each case of ``touched`` (cases that just opened or took evidence) with the cases of ``pool``
    (the family's active cases near them, touched ones included) that are close in space and time.

    ``links``: case id → incident id for the pool's linked cases; ``incidents``: those incidents. Cases are
    taken in id order and each one's outcome is seen by the next, so a batch links like one case at a time.
    """
    links = dict(links)
    known = dict(incidents)
    plan = LinkPlan()
    near_of = _Neighbourhood(pool, family, adjacency)
    for case in sorted(touched, key=lambda c: c.case_id):
        near = near_of(case)
        if not near:
            continue
        group = sorted({other.case_id for other in near} | {case.case_id})
        ids = sorted({links[c] for c in group if c in links})
        if not ids:
            incident = Incident(incident_id_for(group[0]), family.family_id, now, now)
            known[incident.incident_id] = incident
            plan.created.append(incident)
            # system entries carry no note (the dashboard names the action in its language); data says what
            plan.log.append(IncidentLogEntry(incident.incident_id, now, INCIDENT_ACTOR, "open", "",
                                             {"family": family.family_id, "cases": group}))
            survivor = incident.incident_id
        else:
            survivor = min(ids, key=lambda i: (known[i].opened_at, i))
            for loser in ids:
                if loser == survivor:
                    continue
                moved = sorted(c for c, i in links.items() if i == loser)
                for c in moved:
                    links[c] = survivor
                plan.merged.append((loser, survivor))
                plan.joined = [(c, survivor if i == loser else i) for c, i in plan.joined]
                # case ids only in data: the API hides those a user may not see
                plan.log.append(IncidentLogEntry(survivor, now, INCIDENT_ACTOR, "merge", "",
                                                 {"merged": loser, "cases": moved, "by_case": case.case_id}))
                plan.log.append(IncidentLogEntry(loser, now, INCIDENT_ACTOR, "merged_into", "",
                                                 {"into": survivor, "cases": moved, "by_case": case.case_id}))
        for c in group:
            if c not in links:
                links[c] = survivor
                plan.joined.append((c, survivor))
                if ids:
                    plan.log.append(IncidentLogEntry(survivor, now, INCIDENT_ACTOR, "link", "",
                                                     {"case_id": c, "by_case": case.case_id}))
    return plan


class _Neighbourhood:
    """The active cases of a family's pool that a case links with: within the family's rings and window."""

    def __init__(self, pool: Sequence[Case], family: Family, adjacency: Adjacency) -> None:
        self.family, self.adjacency = family, adjacency
        self.members = set(family.categories)
        self.by_cell: dict[str, list[Case]] = {}  # the candidates by cell: a case looks only at its own rings
        for other in pool:
            if other.is_active and other.category_key in self.members:
                self.by_cell.setdefault(other.grid_code, []).append(other)

    def __call__(self, case: Case) -> list[Case]:
        if not case.is_active or case.category_key not in self.members:
            return []
        cells = ring_distances(case.grid_code, self.family.radius_rings, self.adjacency)
        return [other for cell in cells for other in self.by_cell.get(cell, ()) if other.case_id != case.case_id
                and time_gap(case, other) <= self.family.window_s]


def could_link(touched: Sequence[Case], pool: Sequence[Case], family: Family, adjacency: Adjacency) -> bool:
    """Whether any case of ``touched`` has a case of ``pool`` to link with. When none has, the plan is empty
    whatever the existing links are (:func:`plan_links` consults them only for cases with neighbours), so
    linking need not read them: one round trip less per batch in the usual case of nothing nearby.

    >>> from gridsentinel.cases.case import new_case_for_test as case
    >>> family = FamiliesFile.model_validate({"version": "t", "families": {"flooding": {
    ...     "name": "f", "name_zh": "f", "categories": ["component:0103", "event:L001"], "radius_rings": 1,
    ...     "window_minutes": 60}}}).families["flooding"]
    >>> a = case(case_id="a", category_type="component", grid_code="320582110152102")
    >>> b = case(case_id="b", category_type="component", grid_code="320582110152103")
    >>> could_link([a], [a, b], family, {}), could_link([a], [a, b], family, {a.grid_code: {b.grid_code}})
    (False, True)
    """
    near_of = _Neighbourhood(pool, family, adjacency)
    return any(near_of(case) for case in touched)


class IncidentTx(Protocol):
    """What linking needs from a case-store transaction (SQL and memory stores)."""

    async def lock_incident_regions(self, family_id: str, regions: Sequence[str]) -> None:
        """Hold linking for this family in these regions (taken in the order given) until the transaction
        ends (PostgreSQL: advisory locks)."""
        ...

    async def family_cases(self, category_keys: Collection[str], grid_codes: Collection[str],
                           known: Collection[str] = ()) -> list[Case]:
        """Active cases of these categories in these cells, but for ``known`` (ids the caller holds already:
        the batch's own cases, which it has just written; reading them back cost a third of a batch)."""
        ...

    async def incident_links(self, case_ids: Collection[str]) -> dict[str, str]:
        """Case id → incident id, for those of ``case_ids`` that are linked."""
        ...

    async def incidents(self, incident_ids: Collection[str]) -> dict[str, Incident]:
        ...

    async def write_incident_links(self, plan: LinkPlan, at: float) -> None:
        """Insert the new incidents, move merged incidents' members, add the joined cases, append the log.
        StoreConflict when a case is already linked or an incident the plan joins or merges was merged
        meanwhile (a racing linker won)."""
        ...


async def link_cases(tx: IncidentTx, touched: Sequence[Case], families: IncidentFamilies, adjacency: Adjacency,
                     *, now: float) -> LinkPlan:
    """Run :func:`plan_links` for the cases a transaction just opened or changed, family by family (each
    family's region locks, :func:`lock_regions`, taken in family order, so two transactions never wait on
    each other's), and write the links."""
    by_family: dict[str, list[Case]] = {}
    for case in touched:
        family = families.family_of(case.category_key)
        if family is not None and case.is_active:
            by_family.setdefault(family.family_id, []).append(case)
    total = LinkPlan()
    for family_id in sorted(by_family):
        family = families.get(family_id)
        assert family is not None
        cases = by_family[family_id]
        cells = _cells_near(cases, family, adjacency)
        await tx.lock_incident_regions(family_id, sorted({cell[:LOCK_REGION_DIGITS] for cell in cells}))
        pool = {c.case_id: c for c in await tx.family_cases(family.categories, cells,
                                                            known=[c.case_id for c in cases])}
        pool.update((c.case_id, c) for c in cases)
        if not could_link(cases, list(pool.values()), family, adjacency):
            continue  # nothing nearby: no link to make, no need to read the existing ones
        links = await tx.incident_links(list(pool))
        incidents = await tx.incidents(set(links.values()))
        plan = plan_links(cases, list(pool.values()), links, incidents, family, adjacency, now=now)
        if not plan.empty:
            await tx.write_incident_links(plan, now)
            total.created += plan.created
            total.joined += plan.joined
            total.merged += plan.merged
            total.log += plan.log
    return total


INCIDENT_STATUSES = ("open", "closed")
# What an incident's log says: the linker's open / link / merge / merged_into, the API's dispatch / close.
INCIDENT_LOG_ACTIONS = ("open", "link", "merge", "merged_into", "dispatch", "close")


def incident_status(members: Sequence[Case]) -> str:
    """``open`` while any member case is not closed."""
    return "open" if any(c.is_active for c in members) else "closed"
