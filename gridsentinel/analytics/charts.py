"""Small inline SVG charts for reports (no JavaScript, so they print the same in HTML and PDF).

>>> svg = line_chart(["Mon", "Tue"], {"new": [1, 3], "closed": [0, 2]})
>>> svg.count("<polyline"), "Tue" in svg
(2, True)
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from html import escape

SERIES_COLOURS = ("#1f6feb", "#d9480f", "#2f9e44", "#7048e8")
# Sequential (counts) and diverging (actual minus forecast) colour ramps.
SEQUENTIAL = ("#fff5d6", "#fed976", "#fd8d3c", "#e8412c", "#a50f15")
DIVERGING_NEG, DIVERGING_MID, DIVERGING_POS = (33, 102, 172), (247, 247, 247), (178, 24, 43)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return float(step * exp)
    return float(10 * exp)


def line_chart(labels: Sequence[str], series: Mapping[str, Sequence[float]], *, width: int = 900,
               height: int = 220, shade_from: int | None = None, title: str = "") -> str:
    """Lines over categorical x labels; ``shade_from`` shades the x positions from that index on."""
    left, right, top, bottom = 40, 12, 26, 34
    n = max(len(labels), 1)
    top_value = _nice_max(max((max(v) for v in series.values() if len(v)), default=0.0))
    plot_w, plot_h = width - left - right, height - top - bottom

    def x(i: int) -> float:
        return left + (plot_w * (i + 0.5) / n)

    def y(v: float) -> float:
        return top + plot_h * (1 - v / top_value)

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" viewBox="0 0 {width} {height}" '
             f'width="{width}" height="{height}" role="img" aria-label="{escape(title)}">']
    if shade_from is not None and shade_from < n:
        x0 = left + plot_w * shade_from / n
        parts.append(f'<rect x="{x0:.1f}" y="{top}" width="{left + plot_w - x0:.1f}" height="{plot_h}" '
                     'fill="#eef4ff"/>')
    for k in range(5):
        v = top_value * k / 4
        parts.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#ddd"/>'
                     f'<text x="{left - 4}" y="{y(v) + 4:.1f}" text-anchor="end" class="tick">{v:g}</text>')
    step = max(1, math.ceil(n / 14))
    for i, label in enumerate(labels):
        if i % step == 0:
            parts.append(f'<text x="{x(i):.1f}" y="{height - bottom + 16}" text-anchor="middle" '
                         f'class="tick">{escape(label)}</text>')
    for (name, values), colour in zip(series.items(), SERIES_COLOURS, strict=False):
        pts = " ".join(f"{x(i):.1f},{y(v):.1f}" for i, v in enumerate(values))
        parts.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2" '
                     f'class="series"><title>{escape(name)}</title></polyline>')
    lx = left
    for name, colour in zip(series, SERIES_COLOURS, strict=False):
        parts.append(f'<rect x="{lx}" y="6" width="12" height="12" fill="{colour}"/>'
                     f'<text x="{lx + 16}" y="16" class="legend">{escape(name)}</text>')
        lx += 24 + 8 * len(name)
    parts.append("</svg>")
    return "".join(parts)


def _ramp(value: float, top: float) -> str:
    if value <= 0 or top <= 0:
        return "#f4f4f4"
    idx = min(len(SEQUENTIAL) - 1, int(len(SEQUENTIAL) * math.sqrt(value / top)))
    return SEQUENTIAL[idx]


def _diverging(value: float, top: float) -> str:
    t = 0.0 if top <= 0 else max(-1.0, min(1.0, value / top))
    end = DIVERGING_POS if t > 0 else DIVERGING_NEG
    a = math.sqrt(abs(t))  # like the counts' ramp: small errors stay visible next to one large one
    r, g, b = (round(m + (e - m) * a) for m, e in zip(DIVERGING_MID, end, strict=True))
    return f"#{r:02x}{g:02x}{b:02x}"


def cell_map(values: Mapping[tuple[int, int], float], *, diverging: bool = False, labels: int = 5,
             width: int = 420, height: int = 360, title: str = "", unit: str = "") -> str:
    """Square grid cells (integer x east, y north) coloured by value; the ``labels`` largest are numbered.

    Sequential colours for counts; ``diverging`` for signed values (blue below zero, red above).
    """
    def header(h: float) -> str:
        return (f'<svg xmlns="http://www.w3.org/2000/svg" class="map" viewBox="0 0 {width} {h:.0f}" '
                f'width="{width}" height="{h:.0f}" role="img" aria-label="{escape(title)}">')

    if not values:
        return (header(60) + f'<text x="{width / 2}" y="30" text-anchor="middle" class="tick">no located '
                'problems</text></svg>')
    xs = [c[0] for c in values]
    ys = [c[1] for c in values]
    nx, ny = max(xs) - min(xs) + 1, max(ys) - min(ys) + 1
    legend_h = 28
    size = min((width - 8) / nx, (height - legend_h - 8) / ny, 26.0)  # a few cells stay small squares
    ox = (width - size * nx) / 2
    oy = 4
    height = round(min(height, oy + ny * size + legend_h + 8))  # no empty band when the cells are few
    parts = [header(height)]
    top = max(abs(v) for v in values.values())
    ranked = sorted(values, key=lambda c: -abs(values[c]))[:labels]
    for cell, v in sorted(values.items()):
        px = ox + (cell[0] - min(xs)) * size
        py = oy + (max(ys) - cell[1]) * size
        fill = _diverging(v, top) if diverging else _ramp(v, top)
        shown = f"{v:+.1f}" if diverging else f"{v:g}"
        parts.append(f'<rect x="{px:.1f}" y="{py:.1f}" width="{size:.2f}" height="{size:.2f}" fill="{fill}" '
                     f'stroke="#fff" stroke-width="{min(0.5, size / 10):.2f}" class="cell">'
                     f'<title>cell {cell[0]},{cell[1]}: {shown}{unit}</title></rect>')
    for rank, cell in enumerate(ranked, 1):  # a ring around the cell and its rank beside it, colour left visible
        px = ox + (cell[0] - min(xs)) * size
        py = oy + (max(ys) - cell[1]) * size
        parts.append(f'<rect x="{px - 1:.1f}" y="{py - 1:.1f}" width="{size + 2:.2f}" height="{size + 2:.2f}" '
                     f'fill="none" stroke="#111" stroke-width="1.2"/>'
                     f'<text x="{px + size + 2:.1f}" y="{py + size / 2 + 4:.1f}" class="rank">{rank}</text>')
    ly = height - legend_h + 6
    if diverging:
        stops = [(-top, f"-{top:.0f} (fewer)"), (0.0, "0 (as forecast)"), (top, f"+{top:.0f} (more)")]
        for i, (v, text) in enumerate(stops):
            lx = 8 + i * (width - 16) / 3
            parts.append(f'<rect x="{lx:.0f}" y="{ly}" width="12" height="12" fill="{_diverging(v, top)}" '
                         f'stroke="#999"/><text x="{lx + 16:.0f}" y="{ly + 10}" class="legend">{escape(text)}</text>')
    else:
        # The upper bound of each colour (the ramp is on the square root), as whole counts, each shown once.
        bounds = sorted({max(1, math.floor(top * k * k / 25)) for k in range(1, 5)} | {math.ceil(top)})
        for i, v in enumerate(bounds):
            lx = 8 + i * (width - 16) / len(bounds)
            parts.append(f'<rect x="{lx:.0f}" y="{ly}" width="12" height="12" fill="{_ramp(v, top)}" '
                         f'stroke="#999"/><text x="{lx + 16:.0f}" y="{ly + 10}" class="legend">'
                         f'{"≤ " if v < top else ""}{v:g}</text>')
    parts.append("</svg>")
    return "".join(parts)
