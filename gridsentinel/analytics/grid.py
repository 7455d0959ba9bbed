"""Square grid cells over a city from latitude/longitude.

Points are projected with the sinusoidal projection centred on the city's meridian (``x = R (lon - lon0)
cos(lat)``, ``y = R (lat - lat0)``), which is exactly equal-area, so every cell covers the same ground
area; over a city (tens of km) its shape distortion is negligible. Cells are ``cell_m`` metres square,
anchored at the reference point, and named by their integer column and row.

>>> grid = Grid(lat0=42.3601, lon0=-71.0589, cell_m=500)
>>> grid.cell(42.3601, -71.0589)
(0, 0)
>>> grid.cell(42.3601 + 0.0046, -71.0589)   # about 511 m north
(0, 1)
>>> grid.cell(42.3601, -71.0589 - 0.0062)   # about 510 m west
(-2, 0)
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EARTH_RADIUS_M = 6_371_008.8  # mean radius (IUGG)


@dataclass(frozen=True)
class Grid:
    lat0: float
    lon0: float
    cell_m: float = 500.0

    def xy(self, lat: float, lon: float) -> tuple[float, float]:
        """Metres east and north of the reference point, sinusoidal (equal-area) projection."""
        x = EARTH_RADIUS_M * math.radians(lon - self.lon0) * math.cos(math.radians(lat))
        y = EARTH_RADIUS_M * math.radians(lat - self.lat0)
        return x, y

    def cell(self, lat: float, lon: float) -> tuple[int, int]:
        x, y = self.xy(lat, lon)
        return math.floor(x / self.cell_m), math.floor(y / self.cell_m)

    def centre(self, cell: tuple[int, int]) -> tuple[float, float]:
        """Latitude and longitude of a cell's centre (for maps)."""
        y = (cell[1] + 0.5) * self.cell_m
        lat = self.lat0 + math.degrees(y / EARTH_RADIUS_M)
        x = (cell[0] + 0.5) * self.cell_m
        lon = self.lon0 + math.degrees(x / (EARTH_RADIUS_M * math.cos(math.radians(lat))))
        return lat, lon
