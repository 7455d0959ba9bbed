"""The patrol plan from the case store: shared by ``GET /api/v1/patrol/plan`` and ``gridsentinel patrol plan``.

Cells are the unit grid's 15-digit cells (``config/grid.geojson``); the expected problems per cell for the
day come from :func:`~gridsentinel.analytics.patrol.expected_for_day` over the cases opened in the last 16 weeks
(whole local days before today; the forecast is made this morning and reaches 6 days ahead). The default depot,
where every inspector starts and ends, is the centre of the grid's extent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import numpy as np

from gridsentinel.analytics.forecast import BoostedPoisson
from gridsentinel.analytics.grid import Grid
from gridsentinel.analytics.model_store import ModelStore, RainSource, StoredModel, case_history
from gridsentinel.analytics.patrol import (
    MIN_FORECAST_HISTORY,
    PatrolError,
    PatrolParams,
    Site,
    expected_for_day,
    plan_routes,
)
from gridsentinel.analytics.weekly import HISTORY_WEEKS
from gridsentinel.cases.case import Case
from gridsentinel.cases.store_protocol import CaseQuery, CaseStore
from gridsentinel.core.grid import GridMap
from gridsentinel.settings import Settings

SHIFT_START = "08:00"


def parse_point(text: str) -> tuple[float, float]:
    """``"lat,lon"`` -> (lat, lon).

    >>> parse_point("42.36,-71.06")
    (42.36, -71.06)
    """
    try:
        lat, lon = (float(v) for v in text.split(","))
    except ValueError as exc:
        raise PatrolError(f"{text!r}: expected a point as LAT,LON, e.g. 42.3603,-71.0580") from exc
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise PatrolError(f"{text!r}: latitude must be within ±90 and longitude within ±180")
    return lat, lon


def add_plan_arguments(parser: argparse.ArgumentParser) -> None:
    """The plan's options, shared by the benchmark and `gridsentinel patrol plan`."""
    parser.add_argument("--inspectors", type=int, default=4, help="number of inspectors (default 4)")
    parser.add_argument("--shift-h", type=float, default=6.0, help="shift length in hours (default 6)")
    parser.add_argument("--speed-kmh", type=float, default=4.0, help="walking speed in km/h (default 4)")
    parser.add_argument("--visit-min", type=float, default=10.0, help="minutes spent in each cell (default 10)")


def params_of(args: argparse.Namespace) -> PatrolParams:
    params = PatrolParams(inspectors=args.inspectors, shift_min=args.shift_h * 60, speed_kmh=args.speed_kmh,
                          visit_min=args.visit_min)
    params.check()
    return params



def grid_centre(grid: GridMap) -> tuple[float, float]:
    """The centre of the grid's extent (lat, lon): the default depot."""
    pts = [grid.centroid(c) for c in grid.cells]
    if not pts:
        raise PatrolError("the unit grid (config/grid.geojson) has no cells")
    lats, lons = [p[0] for p in pts], [p[1] for p in pts]
    return (min(lats) + max(lats)) / 2, (min(lons) + max(lons)) / 2


def _local_midnight(day: date, zone: ZoneInfo) -> float:
    return datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()


async def load_cases(store: CaseStore, opened_from: float, opened_to: float, page: int = 1000,
                 grid_prefix: str | None = None) -> list[Case]:
    out: list[Case] = []
    offset = 0
    while True:
        batch = await store.list_cases(CaseQuery(grid_prefix=grid_prefix, opened_from=opened_from,
                                                 opened_to=opened_to, limit=page, offset=offset))
        out.extend(batch)
        if len(batch) < page:
            return out
        offset += page


def _parse_clock(text: str) -> int:
    m = re.fullmatch(r"([01]?[0-9]|2[0-3]):([0-5][0-9])", text)
    if not m:
        raise PatrolError(f"shift start {text!r}: expected HH:MM, e.g. 08:00")
    return int(m.group(1)) * 60 + int(m.group(2))


def plan_from_cases(cases: Sequence[Case], grid: GridMap, *, tz: str, day: date, today: date, params: PatrolParams,
                    depot: tuple[float, float] | None = None, shift_start: str = SHIFT_START,
                    holiday_country: str = "CN", model: tuple[BoostedPoisson, StoredModel] | None = None,
                    no_model: str = "", is_working_day: Callable[[date], bool] | None = None,
                    rain: dict[date, float] | None = None) -> dict[str, Any]:
    """The plan for ``day`` from ``cases`` (those opened before ``today`` count; ``today`` is not complete).

    ``model``: a stored model to forecast with (used when it knows every family of ``cases``); else one is fitted
    here, and ``no_model`` says why no stored one was used. ``is_working_day`` (the city's working calendar) and
    ``rain`` (mm per local day from the rain gauges) are the forecast's optional inputs: a stored model gets
    those it was trained with (rain unknown when the gauges could not be read); a fit here uses what is given."""
    params.check()
    start_min = _parse_clock(shift_start)
    if day < today:
        raise PatrolError(f"date {day}: a plan is for today or a later day (today is {today} in {tz})")
    depot = depot or grid_centre(grid)
    ref = Grid(depot[0], depot[1], 100.0)
    expected = np.zeros(0)
    codes: list[str] = []
    version = None
    built = case_history(cases, grid.cells, tz=tz, today=today, until=day, holiday_country=holiday_country,
                         is_working_day=is_working_day, rain=rain)
    if built is not None and model is not None:
        forecaster, stored = model
        unknown = set(built.history.families) - set(stored.families)
        if unknown:
            no_model = f"; the stored model {stored.version} does not know {', '.join(sorted(unknown))}"
        elif stored.uses_calendar and is_working_day is None:
            no_model = f"; the stored model {stored.version} needs the working calendar"
        else:  # the model's families, in its order (the family index is one of its features), and its inputs
            built = case_history(cases, grid.cells, tz=tz, today=today, until=day, holiday_country=holiday_country,
                                 families=stored.families,
                                 is_working_day=is_working_day if stored.uses_calendar else None,
                                 rain=rain if stored.uses_rain else None, with_rain=stored.uses_rain)
            version = stored.version
    if built is not None:
        first = built.history.start
        codes = built.codes
        if (today - first).days < MIN_FORECAST_HISTORY:
            version = None  # a short history: the simple estimate, no model
        use = model if version is not None else None
        expected, how = expected_for_day(built.history, (day - first).days, complete_days=(today - first).days,
                                         model=use[0] if use else None,
                                         model_note=use[1].describe() if use else no_model)
    else:
        how = "no cases opened before today in the case store: nothing to plan from"
    sites = []
    for code, value in zip(codes, expected, strict=True):
        lat, lon = grid.centroid(code)
        x, y = ref.xy(lat, lon)
        sites.append(Site(code, x, y, float(value), lat, lon))
    plan = plan_routes(sites, [(0.0, 0.0)], params)

    def clock(minutes: float) -> str:
        t = start_min + round(minutes)
        return f"{(t // 60) % 24:02d}:{t % 60:02d}" + ("" if t < 24 * 60 else " (+1 day)")

    names = grid.names
    routes = [{
        "inspector": r.inspector,
        "distance_km": round(r.distance_m / 1000, 2),
        "minutes": round(r.minutes, 1),
        "ends": clock(r.minutes),
        "expected": round(r.expected, 2),
        "stops": [{"order": i + 1, "cell": s.key, "name": names.get(s.key, s.key), "lat": round(s.lat, 6),
                   "lon": round(s.lon, 6), "arrive": clock(s.arrive_min), "arrive_min": s.arrive_min,
                   "expected": round(s.expected, 2)} for i, s in enumerate(r.stops)],
    } for r in plan.routes]
    return {
        "date": day.isoformat(), "timezone": tz, "method": how, "model_version": version,
        "inspectors": params.inspectors, "shift_h": params.shift_min / 60, "shift_start": shift_start,
        "speed_kmh": params.speed_kmh, "visit_min": params.visit_min, "detour": params.detour,
        "depot": {"lat": round(depot[0], 6), "lon": round(depot[1], 6)},
        "expected_total": round(plan.total_expected, 2), "expected_covered": round(plan.covered_expected, 2),
        "covered_share": round(plan.covered_share, 4), "cells_planned": len(plan.cells), "routes": routes,
    }


async def store_plan(store: CaseStore, grid: GridMap, *, tz: str, now: float, params: PatrolParams,
                     day: date | None = None, depot: tuple[float, float] | None = None,
                     shift_start: str = SHIFT_START, grid_prefix: str | None = None,
                     models: ModelStore | None = None, is_working_day: Callable[[date], bool] | None = None,
                     rain_source: RainSource | None = None) -> dict[str, Any]:
    """The plan for ``day`` (default tomorrow, in the city's time zone) from the case store; with
    ``grid_prefix`` only that center's cells and cases (a center's inspectors). ``models``: forecast with the
    newest stored city model (:meth:`ModelStore.usable`) when there is one; else one is fitted for the plan.
    ``is_working_day``: the city's working calendar; ``rain_source``: its rain gauges (``weather.city_rain``)."""
    if grid_prefix:
        cells = {c: g for c, g in grid.cells.items() if c.startswith(grid_prefix)}
        if not cells:
            raise PatrolError(f"the unit grid has no cell under {grid_prefix}")
        grid = GridMap(cells, {c: n for c, n in grid.names.items() if c in cells})
    zone = ZoneInfo(tz)
    today = datetime.fromtimestamp(now, zone).date()
    day = day or today + timedelta(days=1)
    if day < today or day > today + timedelta(days=6):
        raise PatrolError(f"date {day}: a plan is for today up to 6 days ahead ({today} to "
                          f"{today + timedelta(days=6)} in {tz})")
    cases = await load_cases(store, _local_midnight(today - timedelta(weeks=HISTORY_WEEKS), zone),
                         _local_midnight(today, zone), grid_prefix=grid_prefix or None)
    model: tuple[BoostedPoisson, StoredModel] | None = None
    no_model = "; no model store"
    if models is not None:
        model, why = await models.usable(today)
        no_model = f"; {why}"
    rain = None
    if rain_source is not None and (model is None or model[1].uses_rain):
        rain = await asyncio.to_thread(rain_source, today - timedelta(weeks=HISTORY_WEEKS), today - timedelta(days=1))
    # Model fits and predictions are CPU work: off the event loop, so an API keeps serving.
    return await asyncio.to_thread(plan_from_cases, cases, grid, tz=tz, day=day, today=today, params=params,
                                   depot=depot, shift_start=shift_start, model=model, no_model=no_model,
                                   is_working_day=is_working_day, rain=rain)


def render_text(plan: dict[str, Any]) -> str:
    lines = [f"Patrol plan for {plan['date']} ({plan['timezone']}): {plan['inspectors']} inspector(s), "
             f"{plan['shift_h']:g} h from {plan['shift_start']}, {plan['speed_kmh']:g} km/h, "
             f"{plan['visit_min']:g} min per cell; depot {plan['depot']['lat']},{plan['depot']['lon']}",
             f"Expected problems: {plan['method']}",
             f"Covers {plan['expected_covered']:.1f} of {plan['expected_total']:.1f} expected problems "
             f"({plan['covered_share']:.0%}) in {plan['cells_planned']} cells", ""]
    for r in plan["routes"]:
        lines.append(f"Inspector {r['inspector']}: {len(r['stops'])} cells, {r['distance_km']:.1f} km, "
                     f"back by {r['ends']}, {r['expected']:.1f} expected")
        for s in r["stops"]:
            lines.append(f"  {s['order']:>2}. {s['arrive']}  {s['cell']}  {s['name'][:40]:<40} {s['expected']:5.2f}")
    return "\n".join(lines)


def register_cli(sub: Any) -> None:
    """``gridsentinel patrol plan``."""
    p = sub.add_parser("patrol", help="inspectors' patrol plan (cells in order, from the hotspot forecast)")
    psub = p.add_subparsers(dest="patrol", metavar="ACTION", required=True)
    pp = psub.add_parser("plan", help="print the plan for a day from the case store (GS_DATABASE_URL)",
                         description="Plan each inspector's walk for a day (default tomorrow): the cells with the "
                                     "most expected problems per minute of walking and visiting, in order, with "
                                     "arrival times. Method: docs/analytics.md 'Patrol plan'.")
    pp.add_argument("--date", default=None, metavar="YYYY-MM-DD", help="the day (default tomorrow, city time)")
    add_plan_arguments(pp)
    pp.add_argument("--depot", default=None, metavar="LAT,LON",
                    help="where every inspector starts and ends (default the centre of the unit grid)")
    pp.add_argument("--shift-start", default=SHIFT_START, metavar="HH:MM", help="default 08:00")
    pp.add_argument("--json", action="store_true", help="print the plan as JSON (as the API answers it)")
    pp.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    import time

    from gridsentinel.analytics.weather import rain_source
    from gridsentinel.cases.categories import load_catalog
    from gridsentinel.cases.store import SqlCaseStore

    params = params_of(args)
    try:
        day = date.fromisoformat(args.date) if args.date else None
    except ValueError as exc:
        raise PatrolError(f"--date {args.date!r}: expected YYYY-MM-DD") from exc
    depot = parse_point(args.depot) if args.depot else None
    _parse_clock(args.shift_start)
    grid = GridMap.load(settings.config_dir / "grid.geojson")
    calendar = load_catalog(settings.config_dir).calendar
    tz = calendar.timezone
    print(f"[patrol] reading the case store {settings.database_url}", file=sys.stderr, flush=True)

    async def go() -> dict[str, Any]:
        async with SqlCaseStore.open(settings.database_url) as store:
            return await store_plan(store, grid, tz=tz, now=time.time(), params=params, day=day, depot=depot,
                                    shift_start=args.shift_start, models=ModelStore(store.engine),
                                    is_working_day=calendar.is_working_day, rain_source=rain_source(settings, tz))

    plan = asyncio.run(go())
    print(json.dumps(plan, indent=2) if args.json else render_text(plan))
    return 0
