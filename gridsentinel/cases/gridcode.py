"""Unit-grid codes: parse the 15-digit code, walk its escalation ladder, find neighbouring cells.

A code is 6 digits district (GB/T 2260) + 3 street + 3 community + 3 grid sequence. The escalation
ladder is the code's prefixes: grid → community → street → district → city (the first 4 digits of the
district code are the prefecture-level city).

>>> g = parse_grid_code("320582110152102")
>>> (g.district, g.street, g.community, g.sequence)
('320582', '110', '152', '102')
>>> [c.prefix for c in escalation_ladder("320582110152102")]
['320582110152102', '320582110152', '320582110', '320582', '3205']

Neighbours come from a precomputed adjacency map (built elsewhere from the grid GeoJSON):

>>> adj = {"A": {"B"}, "B": {"A", "C"}, "C": {"B"}}
>>> sorted(cells_within("A", 1, adj)), sorted(cells_within("A", 2, adj))
(['A', 'B'], ['A', 'B', 'C'])
"""

from __future__ import annotations

from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from typing import Literal

from gridsentinel.core.grid import dedup_region as _dedup_region
from gridsentinel.core.grid import valid_grid_code
from gridsentinel.errors import GridSentinelError

Level = Literal["grid", "community", "street", "district", "city"]
# Ordered from the cell up; an escalation moves one step right.
LEVELS: tuple[Level, ...] = ("grid", "community", "street", "district", "city")
_PREFIX_LEN: dict[str, int] = {"grid": 15, "community": 12, "street": 9, "district": 6, "city": 4}

Adjacency = Mapping[str, AbstractSet[str]]


class GridCodeError(GridSentinelError, ValueError):
    """A string is not a 15-digit unit-grid code."""


@dataclass(frozen=True, slots=True)
class GridCode:
    """A parsed 15-digit unit-grid code."""

    code: str

    @property
    def district(self) -> str:
        return self.code[:6]

    @property
    def street(self) -> str:
        return self.code[6:9]

    @property
    def community(self) -> str:
        return self.code[9:12]

    @property
    def sequence(self) -> str:
        return self.code[12:15]

    def prefix(self, level: Level) -> str:
        """The code prefix that names the center of ``level`` for this cell."""
        return self.code[: _PREFIX_LEN[level]]


@dataclass(frozen=True, slots=True)
class Center:
    """A grid-management center (or the cell itself) on the escalation ladder."""

    level: Level
    prefix: str

    @property
    def id(self) -> str:
        """Stable id, e.g. ``street:320582110``."""
        return f"{self.level}:{self.prefix}"


CENTER_LEVELS: tuple[Level, ...] = ("community", "street", "district", "city")


def parse_center(text: str) -> Center:
    """A center from its id ``<level>:<prefix>``: city 4 digits, district 6, street 9, community 12.

    >>> parse_center("street:320582110")
    Center(level='street', prefix='320582110')
    >>> parse_center("street:3205821")
    Traceback (most recent call last):
    ...
    gridsentinel.cases.gridcode.GridCodeError: center 'street:3205821': a street center's prefix has 9 digits \
(e.g. street:320582110)
    """
    name, sep, prefix = text.partition(":")
    level = next((lv for lv in CENTER_LEVELS if lv == name), None)
    if not sep or level is None:
        raise GridCodeError(f"center {text!r}: expected <level>:<prefix> with level one of "
                            f"{', '.join(CENTER_LEVELS)} (e.g. street:320582110)")
    width = _PREFIX_LEN[level]
    if not (prefix.isascii() and prefix.isdigit() and len(prefix) == width):
        example = "320582110152"[:width]
        raise GridCodeError(f"center {text!r}: a {level} center's prefix has {width} digits (e.g. {level}:{example})")
    return Center(level, prefix)


def is_grid_code(code: object) -> bool:
    """True when ``code`` is a string of exactly 15 ASCII digits."""
    return valid_grid_code(code)


def parse_grid_code(code: str) -> GridCode:
    """Parse a 15-digit code; anything else (including the legacy 14-digit form) raises GridCodeError."""
    if not is_grid_code(code):
        raise GridCodeError(f"grid code must be 15 digits (6 district + 3 street + 3 community + 3 grid), "
                            f"got {code!r}")
    return GridCode(code)


def center_for(code: str, level: Level) -> Center:
    """The center of ``level`` responsible for cell ``code``.

    >>> center_for("320582110152102", "street").id
    'street:320582110'
    """
    return Center(level, parse_grid_code(code).prefix(level))


def escalation_ladder(code: str) -> list[Center]:
    """Every level from the cell itself up to the city center, in escalation order."""
    g = parse_grid_code(code)
    return [Center(level, g.prefix(level)) for level in LEVELS]


def level_above(level: Level, steps: int = 1) -> Level:
    """The level ``steps`` above ``level``, capped at ``city``.

    >>> level_above("street"), level_above("district", 5)
    ('district', 'city')
    """
    return LEVELS[min(LEVELS.index(level) + steps, len(LEVELS) - 1)]


def neighbours(code: str, adjacency: Adjacency) -> frozenset[str]:
    """Cells sharing a border with ``code``; an unknown cell has none."""
    return frozenset(n for n in adjacency.get(code, ()) if n != code)


def ring_distances(code: str, rings: int, adjacency: Adjacency) -> dict[str, int]:
    """Every cell at most ``rings`` neighbour steps from ``code`` (breadth-first), with its distance.

    >>> ring_distances("A", 5, {"A": {"B"}, "B": {"A", "C"}, "C": {"B"}})
    {'A': 0, 'B': 1, 'C': 2}
    """
    if rings < 0:
        raise ValueError(f"rings must be >= 0, got {rings}")
    dist = {code: 0}
    frontier = [code]
    for ring in range(1, rings + 1):
        nxt = sorted({n for cell in frontier for n in neighbours(cell, adjacency)} - dist.keys())
        if not nxt:
            break
        dist.update(dict.fromkeys(nxt, ring))
        frontier = nxt
    return dist


def cells_within(code: str, rings: int, adjacency: Adjacency) -> frozenset[str]:
    """``code`` plus every cell at most ``rings`` neighbour steps away."""
    return frozenset(ring_distances(code, rings, adjacency))


def dedup_region(code: str, level: Level = "street") -> str:
    """The dedup region of ``code`` at ``level`` (see gridsentinel.core.grid.dedup_region).

    >>> dedup_region("320582110152102")
    '320582110'
    """
    return _dedup_region(code, len(parse_grid_code(code).prefix(level)))
