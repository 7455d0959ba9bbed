"""``gridsentinel forecast train`` and ``gridsentinel forecast models``: the stored hotspot-forecast models
(:mod:`gridsentinel.analytics.model_store`) by hand; the API retrains them on its own every night."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from gridsentinel.analytics.model_store import HISTORY_WEEKS, KIND, ModelStore, train
from gridsentinel.analytics.patrol_plan import load_cases
from gridsentinel.core.grid import GridMap
from gridsentinel.settings import Settings


def register_cli(sub: Any) -> None:
    p = sub.add_parser("forecast", help="the hotspot forecast's stored models: train one now, list them",
                       description="The hotspot forecast's models, versioned in the case database.")
    fsub = p.add_subparsers(dest="forecast", metavar="ACTION", required=True)
    tp = fsub.add_parser("train", help="train the city's model on the case store (GS_DATABASE_URL) and store it",
                         description="Fit the daily hotspot model (boosted Poisson trees) on the last "
                                     f"{HISTORY_WEEKS} weeks of cases opened before today (city time) and store "
                                     "it with its version; the patrol plan uses the newest one. The API does "
                                     "this every night at GS_FORECAST_RETRAIN_AT. A day that has a model "
                                     "already keeps it. Method: docs/analytics.md 'Stored models'.")
    tp.add_argument("--json", action="store_true", help="print the stored model's row as JSON")
    tp.set_defaults(func=run_train)
    mp = fsub.add_parser("models", help="list the stored models, newest first")
    mp.add_argument("--limit", type=int, default=30, help="at most this many (default 30)")
    mp.add_argument("--json", action="store_true", help="print them as JSON (as the API answers)")
    mp.set_defaults(func=run_models)


def _line(m: dict[str, Any], tz: str) -> str:
    trained = datetime.fromtimestamp(m["trained_at"], ZoneInfo(tz)).strftime("%Y-%m-%d %H:%M %Z")
    return (f"{m['version']:<22} trained {trained}  on {m['data_start']} .. before {m['data_end']}: "
            f"{m['problems']} problems, {m['cells']} cells, {len(m['families'])} families, "
            f"scikit-learn {m['sklearn']}")


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    from gridsentinel.analytics.weather import city_rain
    from gridsentinel.cases.categories import load_catalog
    from gridsentinel.cases.store import SqlCaseStore

    grid = GridMap.load(settings.config_dir / "grid.geojson")
    calendar = load_catalog(settings.config_dir).calendar
    tz = calendar.timezone
    now = time.time()
    today = datetime.fromtimestamp(now, ZoneInfo(tz)).date()
    since = datetime.combine(today - timedelta(weeks=HISTORY_WEEKS), datetime.min.time(), ZoneInfo(tz)).timestamp()

    async def go() -> dict[str, Any]:
        async with SqlCaseStore.open(settings.database_url) as store:
            models = ModelStore(store.engine)
            kept = await models.for_day(KIND, "", today)
            if kept is not None:
                print(f"[forecast] today's model is there already: kept {kept.version} (one model per day)",
                      file=sys.stderr)
                return kept.summary()
            print(f"[forecast] reading {HISTORY_WEEKS} weeks of cases from {settings.database_url}", file=sys.stderr,
                  flush=True)
            cases = await load_cases(store, since, now)
            print(f"[forecast] reading the rain gauges' daily rainfall from InfluxDB ({settings.influx_url})",
                  file=sys.stderr, flush=True)
            rain = await asyncio.to_thread(city_rain, settings, tz, today - timedelta(weeks=HISTORY_WEEKS),
                                           today - timedelta(days=1))
            print(f"[forecast] training on {len(cases)} cases, the working calendar and "
                  f"{f'{len(rain)} days of rainfall' if rain else 'no rainfall (no gauge data)'} "
                  "(a few seconds per city)", file=sys.stderr, flush=True)
            model = await asyncio.to_thread(train, cases, grid.cells, tz=tz, now=now,
                                            is_working_day=calendar.is_working_day, rain=rain)
            return (await models.save(model)).summary()  # another trainer of the same day wins: its row is kept

    row = asyncio.run(go())
    print(json.dumps(row, indent=2) if args.json else f"stored {_line(row, tz)}")
    return 0


def run_models(args: argparse.Namespace, settings: Settings) -> int:
    from gridsentinel.cases.categories import load_catalog
    from gridsentinel.cases.store import SqlCaseStore

    async def go() -> list[dict[str, Any]]:
        async with SqlCaseStore.open(settings.database_url) as store:
            return [m.summary() for m in await ModelStore(store.engine).versions(limit=args.limit)]

    rows = asyncio.run(go())
    if args.json:
        print(json.dumps(rows, indent=2))
    elif not rows:
        print("no stored forecast model (gridsentinel forecast train makes one; the API trains one every night)")
    else:
        tz = load_catalog(settings.config_dir).calendar.timezone
        print("\n".join(_line(m, tz) for m in rows))
    return 0
