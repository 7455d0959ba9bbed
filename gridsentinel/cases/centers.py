"""The centers of a unit grid, and their queue counts (issue 16). Pure: no I/O, no clock.

Every cell code names its centers by prefix (:mod:`gridsentinel.cases.authority`): the community (12 digits),
the street (9), the district (6) and the city (4). The grid's cells therefore define the centers that exist.
Names come from the GeoJSON when its features carry them (``community_name``, ``street_name``,
``district_name``, ``city_name`` properties); otherwise a center is named by its level and prefix.

>>> grid = derive_centers(["320582004001001", "320582004002001"], {"street_name": {"320582004": "Yushan"}})
>>> [c.id for c in grid.values()]
['city:3205', 'district:320582', 'street:320582004', 'community:320582004001', 'community:320582004002']
>>> grid["street:320582004"].name, grid["street:320582004"].parent, grid["district:320582"].name
('Yushan', 'district:320582', 'district 320582')
>>> sorted(in_scope(grid, "street:320582004"))
['community:320582004001', 'community:320582004002', 'street:320582004']
>>> related(grid, "community:320582004001")
['city:3205', 'district:320582', 'street:320582004', 'community:320582004001']
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace

from gridsentinel.cases.authority import QUEUES, Actor, Queue, center_level, center_prefix, queues, visible
from gridsentinel.cases.case import Case

CENTER_LEVELS: tuple[tuple[str, int], ...] = (("city", 4), ("district", 6), ("street", 9), ("community", 12))
NAME_PROPERTIES = {"city": "city_name", "district": "district_name", "street": "street_name",
                   "community": "community_name"}


@dataclass(frozen=True, slots=True)
class CenterInfo:
    """One center of the grid: id, level, prefix, parent center (None for the city), name, cells it owns."""

    id: str
    level: str
    prefix: str
    parent: str | None
    name: str
    cells: int

    def to_dict(self) -> dict[str, object]:
        return {"id": self.id, "level": self.level, "prefix": self.prefix, "parent": self.parent,
                "name": self.name, "cells": self.cells}


def centers_of_cell(code: str) -> list[str]:
    """The ids of the centers that own a cell, from the city down.

    >>> centers_of_cell("320582004001001")
    ['city:3205', 'district:320582', 'street:320582004', 'community:320582004001']
    """
    return [f"{level}:{code[:n]}" for level, n in CENTER_LEVELS]


def center_ids(codes: Iterable[str]) -> list[str]:
    """Every center that owns one of ``codes``, from the city down (levels first, then prefixes)."""
    return list(derive_centers(codes, {}))


def derive_centers(codes: Iterable[str], names: Mapping[str, Mapping[str, str]]) -> dict[str, CenterInfo]:
    """The centers of a grid's cell codes, city first, then by level and prefix. ``names``: property name
    (``street_name`` ...) -> prefix -> name, as collected from the GeoJSON by :func:`center_names`."""
    counts: dict[str, int] = {}
    for code in codes:
        for center in centers_of_cell(code):
            counts[center] = counts.get(center, 0) + 1
    order = {level: i for i, (level, _) in enumerate(CENTER_LEVELS)}
    out: dict[str, CenterInfo] = {}
    for center in sorted(counts, key=lambda c: (order[center_level(c)], center_prefix(c))):
        level, prefix = center_level(center), center_prefix(center)
        index = order[level]
        parent = None if index == 0 else f"{CENTER_LEVELS[index - 1][0]}:{prefix[:CENTER_LEVELS[index - 1][1]]}"
        name = names.get(NAME_PROPERTIES[level], {}).get(prefix) or f"{level} {prefix}"
        out[center] = CenterInfo(center, level, prefix, parent, name, counts[center])
    return out


def center_names(features: Iterable[Mapping[str, object]]) -> dict[str, dict[str, str]]:
    """Center names carried by GeoJSON features' properties (``street_name`` ...), by property and prefix.

    >>> center_names([{"properties": {"code": "320582004001001", "street_name": "Yushan"}}])
    {'street_name': {'320582004': 'Yushan'}}
    """
    out: dict[str, dict[str, str]] = {}
    lengths = dict(CENTER_LEVELS)
    for feature in features:
        props = feature.get("properties")
        if not isinstance(props, Mapping):
            continue
        code = str(props.get("code", ""))
        for level, prop in NAME_PROPERTIES.items():
            value = props.get(prop)
            if isinstance(value, str) and value.strip():
                out.setdefault(prop, {})[code[:lengths[level]]] = value.strip()
    return out


def in_scope(centers: Mapping[str, CenterInfo], center: str | None) -> list[str]:
    """The centers whose cases ``center`` sees: itself and every center below it (all for the whole city)."""
    prefix = center_prefix(center) if center else ""
    return [c for c, info in centers.items() if info.prefix.startswith(prefix)]


def related(centers: Mapping[str, CenterInfo], center: str | None) -> list[str]:
    """The centers a user of ``center`` is shown: its ancestors, itself and its descendants."""
    if center is None:
        return list(centers)
    prefix = center_prefix(center)
    return [c for c, info in centers.items() if info.prefix.startswith(prefix) or prefix.startswith(info.prefix)]


def count_queues(cases: Iterable[tuple[Case, int]], centers: Iterable[str], *, now: float,
                 actor: Actor | None = None) -> dict[str, dict[Queue, int]]:
    """Per center of ``centers``, how many cases each of its queues holds. ``cases``: (case, how many such
    cases) pairs, so a store may pass one representative per group; with ``actor`` only cases it sees count.

    >>> from gridsentinel.cases.case import new_case_for_test
    >>> case = new_case_for_test(grid_code="320582004001001", center="district:320582",
    ...                          home_center="street:320582004")
    >>> counts = count_queues([(case, 2)], ["district:320582", "street:320582004"], now=0.0)
    >>> counts["district:320582"]["escalated_in"], counts["street:320582004"]["escalated_out"]
    (2, 2)
    """
    wanted = set(centers)
    out: dict[str, dict[Queue, int]] = {c: dict.fromkeys(QUEUES, 0) for c in wanted}
    for case, n in cases:
        if not case.is_active or (actor is not None and not visible(actor, case)):
            continue
        # a case is only ever in the queues of its own center and of the centers owning its cell
        for center in {case.center, *centers_of_cell(case.grid_code)} & wanted:
            for queue in queues(case, center, now=now):
                out[center][queue] += n
    return out


def representative(grid_code: str, center: str, home_center: str, status: str, refused: bool, overdue: bool, *,
                   now: float) -> Case:
    """A case with only what scope and queues look at (a store's GROUP BY row, for :func:`count_queues`)."""
    base = Case(case_id="", grid_code=grid_code, category_type="", category_code="", category_standard="",
                status="open", severity="", opened_at=0.0, updated_at=0.0, first_seen_at=0.0, last_seen_at=0.0)
    return replace(base, status=status, center=center, home_center=home_center,  # type: ignore[arg-type]
                   refused_at=now if refused else None, due_at=now - 1.0 if overdue else None)
