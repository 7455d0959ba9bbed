"""Generate config/grid.geojson: the demo district's unit grids (real-format 15-digit codes).

District 320582, street office 004, communities 001 and 002, each a 3 x 3 block of ~100 m cells,
numbered west->east, north->south inside the community. Run: python scripts/make-grid.py
"""

import json
from pathlib import Path

LAT0, LON0 = 31.8727, 120.5500  # north-west corner
DLAT, DLON = 0.0009, 0.001057  # ~100 m at this latitude
features = []
for community, col0 in (("001", 0), ("002", 3)):
    for row in range(3):
        for col in range(3):
            seq = 1 + row * 3 + col
            code = f"320582004{community}{seq:03d}"
            west = LON0 + (col0 + col) * DLON
            north = LAT0 - row * DLAT
            ring = [[west, north], [west + DLON, north], [west + DLON, north - DLAT], [west, north - DLAT],
                    [west, north]]
            ring = [[round(x, 7), round(y, 7)] for x, y in ring]
            features.append({
                "type": "Feature",
                "properties": {"code": code, "name": f"Community {community} cell {seq}",
                               "area_m2": 10000, "valid_from": "2026-01-01"},
                "geometry": {"type": "Polygon", "coordinates": [ring]},
            })
out = Path(__file__).resolve().parent.parent / "config" / "grid.geojson"
out.write_text(json.dumps({"type": "FeatureCollection", "name": "demo district 320582-004",
                           "features": features}, indent=1) + "\n")
print(f"wrote {len(features)} cells to {out}")
