"""The weekly coordination report rendered end to end: from a hand-built case store (SQLite) and from a slice of
the Boston 311 extract, to HTML and to PDF by headless Chromium (Debian's chromium driven by playwright-core),
with a full-page screenshot in ``artifacts/`` to look at.

The hand-built week (2026-W10, Asia/Shanghai) has a known answer: six communities whose sensors find 20
drainage problems each; citizens report 10 of them in five communities and 1 in community ...006, the only
one the selective-reporting index may flag. One case is escalated and still open past its deadline (the only
stuck case); nothing records a refusal (the workflow has no refusal action yet).
"""

from __future__ import annotations

import asyncio
import csv
import gzip
import re
import shutil
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from gridsentinel.analytics.report import chromium_path, civic_report, store_report, write_pdf
from gridsentinel.analytics.weekly import parse_week, render_html, week_bounds
from gridsentinel.cases.case import Case, CaseChange, LogEntry
from gridsentinel.cases.store import SqlCaseStore
from gridsentinel.settings import REPO_ROOT

from ..conftest import api_token
from .conftest import serve_api

pytestmark = pytest.mark.integration

TZ = "Asia/Shanghai"
WEEK = "2026-W10"
H = 3600.0
CIVIC = Path("/work/shared/datasets/civic/boston311-2015-jan-sep.csv.gz")
ARTIFACTS = REPO_ROOT / "artifacts"
SECTIONS = ("figures", "trend", "hotspots", "stuck", "escalations", "selective-reporting", "performance", "next-week")
UNDER = "320582004006"  # the community whose citizens report a tenth of what the sensors find


def _case(case_id: str, cell: str, at: float, source: str, *, code: str = "0103", department: str = "water_affairs",
          entries: list[tuple[float, str, str, dict[str, Any]]] | None = None, status: str = "closed",
          closed: bool = True) -> CaseChange:
    """A case with its audit log: opened at ``at``, then ``entries`` (at, action, to_status, data)."""
    steps: list[tuple[float, str, str, dict[str, Any]]] = entries if entries is not None else [
        (at + 1 * H, "dispatch", "dispatched", {"department": department, "due_at": at + 5 * H}),
        (at + 3 * H, "resolve", "resolved", {}), (at + 4 * H, "verify", "verified", {}),
        (at + 5 * H, "close", "closed", {"reason": "resolved"})]
    log = [LogEntry(case_id, 1, at, f"system:{source}", "open", None, "open")]
    prev = "open"
    for i, (t, action, to, data) in enumerate(steps, 2):
        log.append(LogEntry(case_id, i, t, "user:test", action, prev, to, data=data))
        prev = to
    row, seq = int(cell[-3:]), int(cell[9:12])
    case = Case(case_id=case_id, grid_code=cell, category_type="component", category_code=code,
                category_standard="GB/T 30428.2-2013", status=status, severity="warning",  # type: ignore[arg-type]
                opened_at=at, updated_at=log[-1].at, first_seen_at=at, last_seen_at=at, detection_count=1,
                sources={source: 1}, title=f"storm-water cover {case_id}", lat=31.87 + 0.001 * seq,
                lon=120.55 + 0.001 * row, department=department if any(s[1] == "dispatch" for s in steps) else None,
                center=f"community:{cell[:12]}", dispatched_at=at + H,
                closed_at=log[-1].at if closed else None, closing_reason="resolved" if closed else None,
                log_count=len(log))
    return CaseChange(case, tuple(log), created=True)


def _seed(url: str, start: float) -> None:
    changes = []
    for c in range(1, 7):
        community = f"320582004{c:03d}"
        people = 1 if community == UNDER else 10
        for i in range(20):
            cell = f"{community}{(i % 3) + 1:03d}"
            changes.append(_case(f"s{c}-{i}", cell, start + (i % 6) * 24 * H + c * H, "sensor"))
        for i in range(people):
            cell = f"{community}{(i % 3) + 1:03d}"
            changes.append(_case(f"p{c}-{i}", cell, start + (i % 6) * 24 * H + 2 * H + c * H, "citizen",
                                 department="city_appearance"))
    # Stuck: dispatched, overdue, escalated from the community to the street center, still being handled.
    changes.append(_case("stuck-1", "320582004001002", start + 10 * H, "citizen", code="0302", status="in_progress",
                         closed=False, entries=[
                             (start + 11 * H, "dispatch", "dispatched", {"department": "water_affairs",
                                                                          "due_at": start + 15 * H}),
                             (start + 12 * H, "start", "in_progress", {}),
                             (start + 16 * H, "escalate", "in_progress", {
                                 "level": 1, "center": "street:320582004", "from_center": "community:320582004001",
                                 "overdue_since": start + 15 * H})]))

    async def write() -> None:
        async with SqlCaseStore.open(url) as store:
            async with store.transaction() as tx:
                for change in changes:
                    await tx.save(change, None)

    asyncio.run(write())


def _pdf_pages(pdf: Path) -> int:
    return len(re.findall(rb"/Type\s*/Page[^s]", pdf.read_bytes()))


def _print(html_text: str, stem: str, tmp_path: Path) -> tuple[Path, Path]:
    if chromium_path() is None or not shutil.which("node"):
        pytest.fail("needs Debian's chromium and node with `npm ci` in tests/browser (scripts/setup.sh installs them)")
    html = tmp_path / f"{stem}.html"
    html.write_text(html_text)
    ARTIFACTS.mkdir(exist_ok=True)
    pdf, png = ARTIFACTS / f"{stem}.pdf", ARTIFACTS / f"{stem}.png"
    for old in (pdf, png):
        old.unlink(missing_ok=True)
    seen = write_pdf(html, pdf, png)
    assert seen["pageErrors"] == []
    assert pdf.read_bytes()[:5] == b"%PDF-" and _pdf_pages(pdf) > 0
    assert png.stat().st_size > 10_000
    return pdf, png


def test_weekly_report_from_a_hand_built_case_store(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    monday = parse_week(WEEK)
    start, end = week_bounds(monday, TZ)
    _seed(url, start)

    async def make() -> str:
        async with SqlCaseStore.open(url) as store:
            report = await store_report(store, tz=TZ, monday=monday, now=end, forecast=True)
        # The index: only the under-reporting community is flagged, by community; its street is one unit alone.
        community = next(lv for lv in report.index_levels if lv.level == "community")
        assert [f.unit for f in community.flagged] == [UNDER]
        assert (community.flagged[0].people, community.flagged[0].machines) == (1, 20)
        assert [s.case_id for s in report.stuck] == ["stuck-1"]
        assert report.refusals == []  # refusals are recorded (issue 16); this week had none
        water = next(g for g in report.departments if g.group == "water_affairs")
        assert (water.cases, water.dispatch_median_h, water.resolve_median_h) == (121, 1.0, 3.0)
        assert (water.overdue, water.escalations_sent) == (1, 1)
        street = next(g for g in report.centers if g.group == "street:320582004")
        assert street.escalations_received == 1
        assert "not available" in report.forecast_note  # one week of history: no forecast, said so
        return render_html(report)

    html_text = asyncio.run(make())
    for section in SECTIONS:
        assert f'id="{section}"' in html_text
    assert UNDER in html_text and "Benjamini-Hochberg" in html_text
    assert "stuck-1" in html_text and "street:320582004" in html_text
    assert "the case workflow has no refusal action yet" not in html_text  # refusals are recorded (issue 16)
    _print(html_text, "weekly-report-store", tmp_path)


def test_weekly_report_from_a_boston_slice(tmp_path: Path) -> None:
    if not CIVIC.is_file():
        pytest.fail(f"{CIVIC}: the civic dataset is missing")
    tz = ZoneInfo("America/New_York")
    lo, hi = datetime(2015, 8, 24, tzinfo=tz), datetime(2015, 9, 7, tzinfo=tz)
    slice_csv = tmp_path / "boston-slice.csv"
    with gzip.open(CIVIC, "rt", newline="") as src, slice_csv.open("w", newline="") as dst:
        reader = csv.DictReader(src)
        writer = csv.DictWriter(dst, reader.fieldnames or [])
        writer.writeheader()
        for row in reader:
            opened = datetime.strptime(row["OPEN_DT"], "%m/%d/%Y %I:%M:%S %p").replace(tzinfo=tz)
            if lo <= opened < hi:
                writer.writerow(row)
    report, data = civic_report(slice_csv, parse_week("2015-W36"))
    assert report.complete and report.source.startswith("Boston 311")
    pwd = next(g for g in report.departments if g.group == "PWDx")
    assert pwd.cases > 500 and pwd.resolve_median_h is not None and pwd.overdue_share is not None
    assert (pwd.dispatch_median_h, pwd.rework, pwd.refusals) == (None, None, None)  # Boston records none of them
    assert "rework" in report.hidden_columns and "refusals" in report.hidden_columns
    html_text = render_html(report)
    for section in SECTIONS:
        assert f'id="{section}"' in html_text
    assert "residents" in html_text and "city staff" in html_text
    _print(html_text, "weekly-report-boston", tmp_path)


def test_dashboard_report_page_in_chromium(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Sign in on the dashboard, follow its report link, show 2026-W10 of the hand-built store, screenshot it."""
    import json
    import subprocess

    from gridsentinel.api.app import create_app
    from gridsentinel.settings import Settings

    if chromium_path() is None or not shutil.which("node"):
        pytest.fail("needs Debian's chromium and node with `npm ci` in tests/browser (scripts/setup.sh installs them)")
    url = f"sqlite+aiosqlite:///{tmp_path / 'cases.db'}"
    _seed(url, week_bounds(parse_week(WEEK), TZ)[0])
    monkeypatch.setenv("GS_DATABASE_URL", url)
    dispatcher = api_token(url, "dispatcher")
    app = create_app(Settings().with_(run_dir=tmp_path))
    with serve_api(app) as base:
        ARTIFACTS.mkdir(exist_ok=True)
        shot = ARTIFACTS / "weekly-report-dashboard.png"
        done = subprocess.run(["node", "report_page.mjs", base, dispatcher,
                               WEEK, str(shot)], cwd=REPO_ROOT / "tests" / "browser", capture_output=True, text=True,
                              timeout=180, env={"GS_CHROMIUM": chromium_path() or "", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert WEEK in seen["title"] and seen["message"] == ""
    assert set(SECTIONS) <= set(seen["sections"])
    assert seen["flagged"] == [UNDER] and seen["stuck"][0].startswith("stuck-1")
    assert seen["charts"] >= 2 and seen["pageErrors"] == []
