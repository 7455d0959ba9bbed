"""``gridsentinel export cases``: the desensitised case export (:mod:`gridsentinel.cases.export`) written from
the case store (``GS_DATABASE_URL``) to a file, with progress on stderr. The same rows as
``GET /api/v1/export/cases.csv`` / ``.geojson`` for a city-wide user."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from gridsentinel.cases import export
from gridsentinel.cases.case import STATUSES
from gridsentinel.cases.categories import load_catalog
from gridsentinel.cases.store_protocol import CaseQuery
from gridsentinel.core.grid import GridMap
from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings

PROGRESS_EVERY = 5000  # rows between progress lines (and one at the end)


class ExportError(GridSentinelError):
    """A bad option: the message says what to give instead."""


def parse_time(text: str, option: str) -> float:
    """A date (``2026-12-01``: midnight UTC) or an ISO 8601 time with or without offset (UTC if none).

    >>> parse_time("2026-12-01", "--since"), parse_time("2026-12-01T08:00:00+08:00", "--since")
    (1796083200.0, 1796083200.0)
    """
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.combine(date.fromisoformat(text), datetime.min.time(), UTC).timestamp()
        value = datetime.fromisoformat(text)
    except ValueError:
        raise ExportError(f"{option} {text!r}: give a date (2026-12-01) or an ISO 8601 time "
                          "(2026-12-01T08:00:00+08:00)") from None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=export.FORMATS, default="csv",
                        help="csv (UTF-8 with BOM, one row per case) or geojson (a FeatureCollection of points at "
                             "the cells' centroids); default csv")
    parser.add_argument("--since", required=True, help="cases opened at or after this date or ISO 8601 time "
                                                       "(a date is midnight UTC)")
    parser.add_argument("--until", required=True, help="cases opened before this date or ISO 8601 time")
    parser.add_argument("--center", metavar="PREFIX", default=None,
                        help="only cells whose grid code starts with PREFIX (district 6, street 9, community 12 "
                             "digits)")
    parser.add_argument("--category", action="append", default=None, metavar="KEY",
                        help="only this category (e.g. component:0103); repeat for several")
    parser.add_argument("--status", action="append", default=None, choices=STATUSES,
                        help="only this status; repeat for several")
    parser.add_argument("-o", "--output", type=Path, required=True, help="file to write ('-' for stdout)")
    parser.add_argument("--quiet", action="store_true", help="no progress lines on stderr")


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("export", help="desensitised exports for other departments (cases as CSV or GeoJSON)")
    esub = p.add_subparsers(dest="export", metavar="WHAT", required=True)
    cp = esub.add_parser(
        "cases", help="cases of a period without personal data (CSV or GeoJSON)",
        description="Write the cases opened in [--since, --until) from the case store (GS_DATABASE_URL) without "
                    "personal data: no account, phone, device or name, points snapped to the centroid of the "
                    "case's grid cell, phone numbers, ID numbers and e-mail addresses in titles replaced by "
                    "[phone], [id], [email]. docs/channels.md, 'Desensitised export'.")
    add_arguments(cp)
    cp.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    since, until = parse_time(args.since, "--since"), parse_time(args.until, "--until")
    if since >= until:
        raise ExportError(f"--since {args.since} is not before --until {args.until}")
    if args.center is not None and not re.fullmatch(r"\d{1,15}", args.center):
        raise ExportError(f"--center {args.center!r}: a grid-code prefix is 1-15 digits, e.g. 320582004")
    catalog = load_catalog(settings.config_dir)
    unknown = [c for c in args.category or () if c not in catalog.policies]
    if unknown:
        raise ExportError(f"unknown category {', '.join(unknown)}; known: {', '.join(catalog.policies)}")
    grid = GridMap.load(settings.config_dir / "grid.geojson")
    names = {k: (p.spec.name, p.spec.name_zh) for k, p in catalog.policies.items()}
    query = CaseQuery(grid_prefix=args.center, opened_from=since, opened_to=until,
                      category_keys=tuple(args.category) if args.category else None,
                      statuses=tuple(args.status) if args.status else None)
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        if not args.quiet:
            print(f"[export {time.perf_counter() - t0:6.1f}s] {msg}", file=sys.stderr, flush=True)

    to_stdout = str(args.output) == "-"
    target = args.output if not to_stdout else None
    if target is not None:
        target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(target.name + ".part") if target is not None else None

    async def write() -> int:
        from gridsentinel.cases.store import SqlCaseStore

        rows = 0
        out = sys.stdout if tmp is None else tmp.open("w", encoding="utf-8", newline="")
        try:
            async with SqlCaseStore.open(settings.database_url) as store:
                out.write(export.csv_header() if args.format == "csv" else export.geojson_head())
                async for case in export.iter_cases(store, query, page=1000):
                    row = export.export_row(case, grid, names)
                    out.write(export.csv_line(row) if args.format == "csv" else export.geojson_feature(row, rows == 0))
                    rows += 1
                    if rows % PROGRESS_EVERY == 0:
                        progress(f"{rows} cases written")
                if args.format == "geojson":
                    out.write(export.geojson_tail())
        finally:
            if out is not sys.stdout:
                out.close()
        return rows

    progress(f"reading the case store {settings.database_url}")
    try:
        rows = asyncio.run(write())
    except BaseException:
        if tmp is not None:
            tmp.unlink(missing_ok=True)
        raise
    if tmp is not None and target is not None:
        tmp.replace(target)  # a reader never sees half a file
    progress(f"done: {rows} cases -> {args.output}")
    return 0
