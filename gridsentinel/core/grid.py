"""Unit grids: point -> 15-digit grid code (point-in-polygon), and each cell's neighbours."""

from __future__ import annotations

import json
from pathlib import Path

from shapely import STRtree
from shapely.geometry import Point, shape
from shapely.geometry.base import BaseGeometry

from gridsentinel.errors import ConfigError

GRID_CODE_LEN = 15


def valid_grid_code(code: object) -> bool:
    """True when ``code`` is a string of exactly 15 ASCII digits."""
    return isinstance(code, str) and len(code) == GRID_CODE_LEN and code.isascii() and code.isdigit()


DEDUP_DIGITS = 9  # street level: 6 district + 3 street


def dedup_region(code: str, digits: int = DEDUP_DIGITS) -> str:
    """The Kafka key for ``gs.detections``: detections of one region go to one partition, so one worker
    dedups them in order. A street is wider than any merge radius except at its edges, where the case
    store's one-active-case index still prevents a second case in the same cell.

    >>> dedup_region("320582110152102")
    '320582110'
    """
    if not valid_grid_code(code):
        raise ValueError(f"grid code must be 15 digits, got {code!r}")
    return code[:digits]


class GridMap:
    """The city's unit grids from GeoJSON (properties: ``code``, ``name``)."""

    def __init__(self, cells: dict[str, BaseGeometry], names: dict[str, str] | None = None) -> None:
        self.cells = cells
        self.names = names or {}
        self._codes = list(cells)
        self._tree = STRtree([cells[c] for c in self._codes])
        self._neighbours: dict[str, frozenset[str]] | None = None

    @classmethod
    def load(cls, path: Path) -> GridMap:
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ConfigError(f"{path}: grid file not found") from None
        except ValueError as exc:
            raise ConfigError(f"{path}: not valid JSON ({exc})") from None
        cells: dict[str, BaseGeometry] = {}
        names: dict[str, str] = {}
        for i, feature in enumerate(data.get("features", [])):
            code = str(feature.get("properties", {}).get("code", ""))
            if not valid_grid_code(code):
                raise ConfigError(f"{path}: features[{i}].properties.code = {code!r}; expected 15 digits "
                                  "(6 district + 3 street + 3 community + 3 grid)")
            if code in cells:
                raise ConfigError(f"{path}: features[{i}].properties.code = {code!r} appears twice")
            geom = shape(feature["geometry"])
            if not geom.is_valid:
                raise ConfigError(f"{path}: features[{i}] ({code}) has an invalid polygon")
            cells[code] = geom
            names[code] = str(feature["properties"].get("name", code))
        if not cells:
            raise ConfigError(f"{path}: no grid cells (expected a FeatureCollection of polygons)")
        return cls(cells, names)

    def locate(self, lat: float, lon: float) -> str | None:
        """The grid code containing the point (on a shared edge: the lowest code), or None."""
        point = Point(lon, lat)
        hits = [self._codes[i] for i in self._tree.query(point, predicate="intersects")]
        return min(hits) if hits else None

    def neighbours(self) -> dict[str, frozenset[str]]:
        """Cells sharing an edge or a corner with each cell (computed once)."""
        if self._neighbours is None:
            result: dict[str, set[str]] = {c: set() for c in self._codes}
            for code in self._codes:
                for i in self._tree.query(self.cells[code], predicate="intersects"):
                    other = self._codes[i]
                    if other != code:
                        result[code].add(other)
            self._neighbours = {c: frozenset(n) for c, n in result.items()}
        return self._neighbours

    def centroid(self, code: str) -> tuple[float, float]:
        c = self.cells[code].centroid
        return c.y, c.x
