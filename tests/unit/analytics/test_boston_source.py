"""The Boston 311 adapter and `bench performance` on a hand-written extract whose figures are known."""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

import pytest

from gridsentinel.analytics.civic import load_families
from gridsentinel.analytics.sources import from_civic
from gridsentinel.bench import performance

pytestmark = pytest.mark.unit

COLUMNS = ["CASE_ENQUIRY_ID", "OPEN_DT", "TARGET_DT", "CLOSED_DT", "OnTime_Status", "CASE_STATUS", "CLOSURE_REASON",
           "REASON", "TYPE", "Department", "neighborhood", "LATITUDE", "LONGITUDE", "Source"]
ROWS = [
    # opened 08:00, due next day 08:00, closed 10:00 the same day: on time, 2 h
    ["1", "03/02/2015 08:00:00 AM", "03/03/2015 08:00:00 AM", "03/02/2015 10:00:00 AM", "ONTIME", "Closed",
     "Case Closed Case Resolved", "Street Lights", "Street Light Outages", "PWDx", "Back Bay", "42.35", "-71.08",
     "Citizens Connect App"],
    # closed 2 days after its due time: overdue, 72 h
    ["2", "03/02/2015 09:00:00 AM", "03/03/2015 09:00:00 AM", "03/05/2015 09:00:00 AM", "OVERDUE", "Closed",
     "Case Closed Case Resolved", "Street Lights", "Street Light Outages", "PWDx", "Back Bay", "42.35", "-71.08",
     "City Worker App"],
    # a duplicate: closed, not resolved
    ["3", "03/02/2015 10:00:00 AM", "", "03/02/2015 11:00:00 AM", "ONTIME", "Closed",
     "Case Closed Duplicate of Existing Case", "Street Lights", "Street Light Outages", "PWDx", "Back Bay", "42.35",
     "-71.08", "Constituent Call"],
    # still open, on the unlocated City Hall point: counted for performance, never mapped
    ["4", "03/03/2015 08:00:00 AM", "03/04/2015 08:00:00 AM", "", "OVERDUE", "Open", "", "Sanitation",
     "Missed Trash", "ISD", "Downtown", "42.3594", "-71.0587", "Constituent Call"],
]


@pytest.fixture
def extract(tmp_path: Path) -> Path:
    path = tmp_path / "slice.csv"
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(COLUMNS)
        writer.writerows(ROWS)
    return path


def test_boston_rows_become_case_records(extract: Path) -> None:
    data = from_civic(extract, load_families(), opened_from=0, opened_to=float("inf"))
    by = {r.case_id: r for r in data.records}
    assert by["1"].closed_at is not None and by["1"].closed_at - by["1"].opened_at == 2 * 3600  # EST, no DST jump
    assert by["1"].resolved and not by["3"].resolved and by["4"].closed_at is None
    assert (by["1"].department, by["1"].center) == ("PWDx", "Back Bay")
    assert len(data.located) == 3                                   # the City Hall point is not mapped
    channels = [(o.by_machine, o.by_people) for _, o in data.observations["neighborhood"]]
    assert channels == [(False, True), (True, False), (False, True)]  # staff = "machine" side, residents = people
    assert (data.refusals_recorded, data.rework_recorded, data.escalations_recorded) == (False, False, False)


def test_bench_performance_figures_and_on_time_check(extract: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = argparse.Namespace(data=extract, families=performance.DEFAULT_FAMILIES, json=True)
    assert performance.run(args) == 0
    out = json.loads(capsys.readouterr().out)
    pwd = next(d for d in out["departments"] if d["group"] == "PWDx")
    assert (pwd["cases"], pwd["resolved"], pwd["resolve_median_h"]) == (3, 2, 37.0)  # 2 h and 72 h
    assert (pwd["with_deadline"], pwd["overdue"]) == (2, 1)
    assert pwd["rework"] is None and pwd["refusals"] is None
    # Request 4 is still open at the extract's last recorded time (request 2's closing), past its due: overdue.
    assert out["overall"]["overdue"] == 2 and out["overall"]["with_deadline"] == 3
    # The check covers closed requests with a due time: 1 (on time) and 2 (overdue); 3 has no due time.
    assert out["on_time_check"] == {"checked": 2, "both_overdue": 1, "both_on_time": 1,
                                    "ours_overdue_boston_on_time": 0, "ours_on_time_boston_overdue": 0,
                                    "agreement": 1.0}


def test_report_weekly_cli_writes_html_and_says_why_there_is_no_pdf(
        extract: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from gridsentinel.cli import main

    monkeypatch.setenv("GS_CHROMIUM", str(tmp_path / "no-chromium"))
    out = tmp_path / "reports"
    code = main(["report", "weekly", "--civic", str(extract), "--week", "2015-W10", "--out", str(out), "--pdf",
                 "--no-forecast"])
    captured = capsys.readouterr()
    assert code == 1 and "PDF: not written: cannot make the PDF: chromium" in captured.err
    html = (out / "weekly-2015-W10.html").read_text()
    assert "Weekly coordination report 2015-W10" in html and "PWDx" in html
    assert not (out / "weekly-2015-W10.pdf").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["--week", "2015-W10"], None),  # a good call: exit 0
    ([], "--civic needs --week"),
    (["--week", "2015-W10", "--center", "320582"], "--center selects grid-code prefixes"),
    (["--week", "2015-10"], "expected an ISO week like 2015-W36"),
    (["--week", "2015-W20"], "no requests in 2015-W20"),
])
def test_report_weekly_cli_errors(extract: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                  argv: list[str], message: str | None) -> None:
    from gridsentinel.cli import main

    code = main(["report", "weekly", "--civic", str(extract), "--out", str(tmp_path), "--no-forecast", *argv])
    if message is None:
        assert code == 0
        return
    assert code == 2 and message in capsys.readouterr().err
