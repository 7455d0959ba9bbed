"""Making the weekly report from a data source, and its PDF: shared by the CLI and the API.

``gridsentinel report weekly`` writes ``weekly-<week>[-<center>].html`` (and ``.pdf`` with ``--pdf``) from the
case store (``GS_DATABASE_URL``) or, with ``--civic DIR``, from the Boston 311 extract. The PDF is Chromium's
print of the same HTML (``tests/browser/report_pdf.mjs``: playwright-core driving Debian's chromium, both
installed by ``scripts/setup.sh``); without them the command says so and writes the HTML only.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import subprocess
import sys
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from gridsentinel.analytics.civic import DEFAULT_FAMILIES, load_families
from gridsentinel.analytics.reporting_index import DEFAULT_FDR
from gridsentinel.analytics.sources import BOSTON_TZ, Dataset, from_civic, from_store
from gridsentinel.analytics.weekly import HISTORY_WEEKS, Report, ReportError, build, iso_week, parse_week, week_bounds
from gridsentinel.cases.categories import load_catalog
from gridsentinel.cases.store_protocol import CaseStore
from gridsentinel.settings import REPO_ROOT, Settings

BROWSER_DIR = REPO_ROOT / "tests" / "browser"
PDF_SCRIPT = BROWSER_DIR / "report_pdf.mjs"
STORE_CELL_M = 100.0  # unit grids are about 100 m x 100 m (domain notes)
CIVIC_CELL_M = 500.0  # as in `bench forecast`


def store_timezone(settings: Settings) -> str:
    """The city's time zone: the working calendar's (config/calendar.yaml)."""
    return load_catalog(settings.config_dir).calendar.timezone


def current_monday(tz: str, now: float | None = None) -> date:
    today = datetime.fromtimestamp(time.time() if now is None else now, ZoneInfo(tz)).date()
    return today - timedelta(days=today.weekday())


async def store_report(store: CaseStore, *, tz: str, monday: date | None = None, center: str | None = None,
                       now: float | None = None, fdr: float = DEFAULT_FDR, forecast: bool = True) -> Report:
    """The report of one ISO week (default: the current one, to date) from the case store."""
    if center is not None and not re.fullmatch(r"[0-9]{1,15}", center):
        raise ReportError(f"--center {center!r}: expected a grid-code prefix (1-15 digits, e.g. 320582110)")
    now = time.time() if now is None else now
    monday = monday or current_monday(tz, now)
    start, end = week_bounds(monday, tz)
    data = await from_store(store, grid_prefix=center, opened_from=start - HISTORY_WEEKS * 7 * 86400,
                            opened_to=min(end, now), tz=tz)
    # The figures (and the forecast's model fits) are CPU work: off the event loop, so an API keeps serving.
    return await asyncio.to_thread(build, data, monday, as_of=now, center=center, cell_m=STORE_CELL_M, fdr=fdr,
                                   forecast=forecast)


def civic_report(path: Path, monday: date, *, families: Path = DEFAULT_FAMILIES, fdr: float = DEFAULT_FDR,
                 forecast: bool = True) -> tuple[Report, Dataset]:
    """The report of one whole ISO week of the Boston 311 extract (judged at the week's end)."""
    start, end = week_bounds(monday, BOSTON_TZ)
    data = from_civic(path, load_families(families), opened_from=start - HISTORY_WEEKS * 7 * 86400,
                      opened_to=end, cell_m=CIVIC_CELL_M)
    if not any(start <= r.opened_at < end for r in data.records):
        raise ReportError(f"{path}: no requests in {iso_week(monday)} (the extract covers 2015-W01 to 2015-W39)")
    return build(data, monday, as_of=end, cell_m=CIVIC_CELL_M, fdr=fdr, forecast=forecast), data


def chromium_path() -> str | None:
    found = os.environ.get("GS_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    return found if Path(found).exists() else None


def write_pdf(html: Path, pdf: Path, png: Path | None = None, *, timeout: float = 120.0) -> dict[str, Any]:
    """Print ``html`` to ``pdf`` with headless Chromium (and a full-page screenshot to ``png``)."""
    chromium = chromium_path()
    node = shutil.which("node")
    missing = [what for what, ok in (("chromium", chromium), ("node", node),
                                     ("tests/browser/node_modules/playwright-core",
                                      (BROWSER_DIR / "node_modules" / "playwright-core").is_dir())) if not ok]
    if missing:
        raise ReportError(f"cannot make the PDF: {', '.join(missing)} not found (scripts/setup.sh installs them; "
                          "GS_CHROMIUM names another Chromium)")
    assert node is not None and chromium is not None
    cmd = [node, str(PDF_SCRIPT), str(html.resolve()), str(pdf.resolve())] + ([str(png.resolve())] if png else [])
    done = subprocess.run(cmd, cwd=BROWSER_DIR, capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "GS_CHROMIUM": chromium})
    if done.returncode != 0:
        raise ReportError(f"Chromium could not print {html}: {(done.stderr or done.stdout).strip()[-800:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--center", default=None, metavar="PREFIX",
                        help="only cells under this grid-code prefix (a community, street or district center)")
    parser.add_argument("--week", default=None, metavar="YYYY-Www",
                        help="ISO week, e.g. 2015-W36 (default: the current week, to date; required with --civic)")
    parser.add_argument("--out", type=Path, default=Path("reports"), help="output folder (default ./reports)")
    parser.add_argument("--pdf", action="store_true", help="also print the HTML to PDF with headless Chromium")
    parser.add_argument("--civic", type=Path, default=None, metavar="DIR",
                        help="report from the Boston 311 extract (its folder or CSV) instead of the case store")
    parser.add_argument("--fdr", type=float, default=DEFAULT_FDR,
                        help=f"false discovery rate of the selective-reporting flags (default {DEFAULT_FDR})")
    parser.add_argument("--no-forecast", action="store_true",
                        help="skip the hotspot forecast (two model fits; tens of seconds on a city's year)")


def run(args: argparse.Namespace, settings: Settings) -> int:
    t0 = time.perf_counter()

    def progress(msg: str) -> None:
        print(f"[report {time.perf_counter() - t0:5.1f}s] {msg}", file=sys.stderr, flush=True)

    if not 0 < args.fdr < 1:
        raise ReportError(f"--fdr must be between 0 and 1, got {args.fdr}")
    monday = parse_week(args.week) if args.week else None
    forecast = not args.no_forecast
    if args.civic is not None:
        if monday is None:
            raise ReportError("--civic needs --week (e.g. --week 2015-W36; the extract covers 2015-W01 to 2015-W39)")
        if args.center:
            raise ReportError("--center selects grid-code prefixes of the case store; the Boston data has none")
        progress(f"reading {args.civic} and building {iso_week(monday)}"
                 + (" (with the forecast: two model fits)" if forecast else ""))
        report, _ = civic_report(args.civic, monday, fdr=args.fdr, forecast=forecast)
    else:
        from gridsentinel.cases.store import SqlCaseStore

        tz = store_timezone(settings)

        async def from_cases() -> Report:
            async with SqlCaseStore.open(settings.database_url) as store:
                return await store_report(store, tz=tz, monday=monday, center=args.center, fdr=args.fdr,
                                          forecast=forecast)

        progress(f"reading the case store {settings.database_url}")
        report = asyncio.run(from_cases())
    from gridsentinel.analytics.weekly import render_html

    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"weekly-{report.week}" + (f"-{args.center}" if args.center else "")
    html = args.out / f"{stem}.html"
    html.write_text(render_html(report))
    print(f"HTML: {html}")
    if args.pdf:
        progress("printing the PDF with headless Chromium")
        try:
            result = write_pdf(html, args.out / f"{stem}.pdf")
        except ReportError as exc:
            print(f"PDF: not written: {exc}", file=sys.stderr)
            return 1
        print(f"PDF: {result['pdf']} ({result['bytes']} bytes)")
    progress("done")
    return 0
