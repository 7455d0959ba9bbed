"""The backtest's HTML report: one self-contained file, charts as inline SVG (no scripts, no CDN).

Per device and metric: the signal, the configured thresholds (dashed), the detections of each config
(triangles: candidate on top, live below) and the real cases in that cell (bands: green resolved,
grey false alarm, amber still open).
"""

from __future__ import annotations

import html
import json
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from gridsentinel.cases.case import Case
from gridsentinel.core.devices import Registry
from gridsentinel.detectors.config import DetectorConfig
from gridsentinel.engineering.backtest import Backtest, Series, downsample
from gridsentinel.errors import ConfigError

W, H, PAD_L, PAD_R, PAD_T, PAD_B = 960, 220, 56, 16, 14, 26
RUN_COLOURS = {"candidate": "#d62728", "live": "#1f77b4"}
CASE_COLOURS = {"resolved": "#2ca02c", "false_alarm": "#7f7f7f", None: "#ff9f1c"}


def thresholds(config: DetectorConfig, registry: Registry, s: Series) -> list[tuple[str, float]]:
    """Horizontal lines worth drawing for this series, from the resolved settings."""
    device = registry.get(s.device_id)
    kind = device.kind if device else s.kind
    grid = (device.grid_code if device else None) or s.grid_code
    try:
        dets = config.settings_for(s.device_id, kind, grid or "").detectors
    except (ConfigError, KeyError):
        return []
    lines: list[tuple[str, float]] = []
    if "threshold" in dets:
        lines += [("enter", dets["threshold"]["enter"]), ("exit", dets["threshold"]["exit"])]
    if "drainage_level" in dets and s.metric == "water_level":
        p = dets["drainage_level"]
        depth = device.install.get("depth_m") if device else None
        own = config.device_overrides.get(s.device_id)
        ddl = own.drainage_level if own is not None else None
        if ddl is not None and "depth_m" in ddl.model_fields_set:
            depth = None  # the device override wins over the registry, as in the engine
        depth = float(depth) if isinstance(depth, (int, float)) else p["depth_m"]
        lines += [("warn", p["warn_fill"] * depth), ("alarm", depth - p["alarm_freeboard_m"]), ("rim", depth)]
    if "cover_tilt" in dets and s.metric == "tilt":
        lines += [("alarm", dets["cover_tilt"]["alarm_deg"])]
    if "forecast" in dets:
        lines += [("forecast level", dets["forecast"]["level"])]
    return lines


def _t(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def chart(s: Series, lines: list[tuple[str, float]], marks: dict[str, list[tuple[float, str]]],
          real: Sequence[Case], t0: float, t1: float) -> str:
    pts = downsample(s.points)
    values = [v for _, v in pts] + [v for _, v in lines]
    lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
    if hi - lo < 1e-9:
        lo, hi = lo - 1, hi + 1
    lo, hi = lo - 0.05 * (hi - lo), hi + 0.05 * (hi - lo)
    span = max(t1 - t0, 1e-9)

    def x(t: float) -> float:
        return PAD_L + (t - t0) / span * (W - PAD_L - PAD_R)

    def y(v: float) -> float:
        return PAD_T + (hi - v) / (hi - lo) * (H - PAD_T - PAD_B)

    out = [f'<svg viewBox="0 0 {W} {H}" width="100%" role="img" xmlns="http://www.w3.org/2000/svg">',
           f'<rect x="{PAD_L}" y="{PAD_T}" width="{W - PAD_L - PAD_R}" height="{H - PAD_T - PAD_B}" '
           'fill="#fafafa" stroke="#ddd"/>']
    for case in real:  # bands under the signal
        end = case.closed_at if case.closed_at is not None else case.last_seen_at
        if end < t0 or case.first_seen_at > t1:
            continue  # outside the chart
        x0, x1 = x(max(case.first_seen_at, t0)), x(min(max(end, case.first_seen_at), t1))
        colour = CASE_COLOURS.get(case.closing_reason, CASE_COLOURS[None])
        out.append(f'<rect x="{x0:.1f}" y="{PAD_T}" width="{max(x1 - x0, 2):.1f}" '
                   f'height="{H - PAD_T - PAD_B}" fill="{colour}" opacity="0.18">'
                   f'<title>real case {html.escape(case.case_id)} '
                   f'{html.escape(case.category_key)} {case.closing_reason or case.status}</title></rect>')
    for label, v in lines:
        out.append(f'<line x1="{PAD_L}" x2="{W - PAD_R}" y1="{y(v):.1f}" y2="{y(v):.1f}" stroke="#9467bd" '
                   f'stroke-dasharray="5 4"/><text x="{W - PAD_R - 4}" y="{y(v) - 3:.1f}" font-size="10" '
                   f'text-anchor="end" fill="#9467bd">{html.escape(label)} {v:g}</text>')
    if pts:
        path = " ".join(f"{'M' if i == 0 else 'L'}{x(t):.1f},{y(v):.1f}" for i, (t, v) in enumerate(pts))
        out.append(f'<path d="{path}" fill="none" stroke="#333" stroke-width="1.2"/>')
    for row, (run, items) in enumerate(sorted(marks.items())):
        colour = RUN_COLOURS.get(run, "#e377c2")
        ty = PAD_T + 4 + row * 9
        for t, tip in items:
            cx = x(t)
            out.append(f'<path d="M{cx - 4:.1f},{ty:.1f} L{cx + 4:.1f},{ty:.1f} L{cx:.1f},{ty + 7:.1f} Z" '
                       f'fill="{colour}"><title>{html.escape(run)}: {html.escape(tip)}</title></path>')
    out.append(f'<text x="{PAD_L - 4}" y="{PAD_T + 8}" font-size="10" text-anchor="end">{hi:.3g}</text>'
               f'<text x="{PAD_L - 4}" y="{H - PAD_B}" font-size="10" text-anchor="end">{lo:.3g}</text>'
               f'<text x="{PAD_L}" y="{H - 8}" font-size="10">{_t(t0)}</text>'
               f'<text x="{W - PAD_R}" y="{H - 8}" font-size="10" text-anchor="end">{_t(t1)}</text></svg>')
    return "".join(out)


def _table(rows: dict[str, dict[str, Any]], title: str) -> str:
    cols = sorted({c for r in rows.values() for c in r})
    if not rows:
        return f"<h3>{html.escape(title)}</h3><p>none</p>"
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join(f"<tr><td>{html.escape(k)}</td>" + "".join(f"<td>{r.get(c, 0)}</td>" for c in cols)
                   + "</tr>" for k, r in rows.items())
    return f"<h3>{html.escape(title)}</h3><table><tr><th></th>{head}</tr>{body}</table>"


def _or_dash(value: object) -> str:
    return "–" if value is None else str(value)


def render(summary: dict[str, Any], bt: Backtest, configs: dict[str, DetectorConfig], registry: Registry,
           real: Sequence[Case]) -> str:
    t0 = summary["period"]["since"] if bt.first_at is None else min(summary["period"]["since"], bt.first_at)
    t1 = summary["period"]["until"] if bt.last_at is None else max(summary["period"]["until"], bt.last_at)
    # charts span the data (a little margin), not the whole requested period: a short incident in a
    # long --since window would otherwise be a sliver at one edge
    c0, c1 = (t0, t1) if bt.first_at is None or bt.last_at is None else (bt.first_at, bt.last_at)
    margin = max((c1 - c0) * 0.03, 1.0)
    c0, c1 = max(t0, c0 - margin), min(t1, c1 + margin)
    parts = ["<!doctype html><html><head><meta charset='utf-8'><title>GridSentinel backtest</title><style>",
             "body{font:14px system-ui,sans-serif;margin:24px;max-width:1000px;color:#222}"
             "table{border-collapse:collapse;margin:6px 0 16px}td,th{border:1px solid #ddd;padding:3px 8px;"
             "text-align:right}th:first-child,td:first-child{text-align:left}h2{margin-top:32px}"
             ".k{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}",
             "</style></head><body><h1>Backtest</h1>",
             f"<p>{html.escape(summary['source'])}: {summary['readings']:,} readings from "
             f"{summary['devices']} devices, {_t(t0)} → {_t(t1)}.</p>"]
    runs = summary["runs"]
    keys = ["detections", "cases", "cases_would_open", "cases_would_merge", "cases_would_reopen"]
    head = "".join(f"<th>{html.escape(n)} ({html.escape(r['label'])})</th>" for n, r in runs.items())
    rows = "".join(f"<tr><td>{k.replace('_', ' ')}</td>" + "".join(f"<td>{r[k]}</td>" for r in runs.values())
                   + "</tr>" for k in keys)
    for metric in ("precision", "recall"):
        if all("agreement" in r for r in runs.values()):
            rows += f"<tr><td>{metric}</td>" + "".join(
                f"<td>{_or_dash(r['agreement'][metric])}</td>"
                for r in runs.values()) + "</tr>"
    if all("agreement" in r for r in runs.values()):
        rows += "<tr><td>time to detect (median s)</td>" + "".join(
            f"<td>{_or_dash(r['agreement']['time_to_detect_s']['median'])}</td>"
            for r in runs.values()) + "</tr>"
    parts.append(f"<h2>Summary</h2><table><tr><th></th>{head}</tr>{rows}</table>")
    if "difference" in summary:
        d = summary["difference"]
        parts.append("<p>Candidate − live: " + ", ".join(
            f"{k} {v:+g}" for k, v in d.items() if isinstance(v, (int, float)) and v is not None) + "</p>")
    for name, r in runs.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts.append(_table(r["by_grid_prefix"], "per grid prefix"))
        parts.append(_table(r["by_category"], "per category"))
        parts.append(_table({k: {"alerts": v} for k, v in r["alerts_per_center"].items()},
                            "alerts per dispatch center"))
    parts.append("<h2>Signals</h2><p>" + "".join(
        f'<span class="k" style="background:{c}"></span>{n} detections' for n, c in RUN_COLOURS.items()
        if n in runs) + "".join(f'<span class="k" style="background:{c};opacity:.4"></span>real case '
                                f'{k or "open"}' for k, c in CASE_COLOURS.items())
        + '<span class="k" style="border-top:2px dashed #9467bd;height:0"></span>threshold</p>')
    marks_by_device: dict[str, dict[str, list[tuple[float, str]]]] = {}
    for run in bt.runs:
        for det in run.detections:
            outcome = run.outcomes.get(det.detection_id, "-")
            tip = f"{det.kind} {det.severity} at {_t(det.observed_at)} ({outcome})"
            marks_by_device.setdefault(det.device_id or "", {}).setdefault(run.name, []).append(
                (det.observed_at, tip))
    first_config = configs.get("candidate") or next(iter(configs.values()))
    for (device_id, metric), s in sorted(bt.series.items()):
        device = registry.get(device_id)
        cell = s.grid_code or (device.grid_code if device is not None else None) or ""
        cell_cases = [c for c in real if c.grid_code == cell]
        parts.append(f"<h3>{html.escape(device_id)} · {html.escape(metric)} · {html.escape(cell)}</h3>")
        parts.append(chart(s, thresholds(first_config, registry, s), marks_by_device.get(device_id, {}),
                           cell_cases, c0, c1))
    parts.append("<h2>JSON summary</h2><pre>" + html.escape(json.dumps(summary, indent=1)[:200_000])
                 + "</pre></body></html>")
    return "".join(parts)
