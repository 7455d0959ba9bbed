"""Backtest: the live engine and dedup in memory; reports, agreement with real cases, HTML, CSV/NAB."""

from __future__ import annotations

import csv
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from gridsentinel.cases.case import Case
from gridsentinel.engineering.run import BacktestRequest, run_sync
from gridsentinel.engineering.sources import CsvSource, read_series, series_readings
from gridsentinel.settings import REPO_ROOT, Settings

pytestmark = pytest.mark.unit
T0 = 1749434400.0  # 2025-06-09 10:00 Asia/Shanghai
CONFIG = REPO_ROOT / "config"


def _history(path: Path) -> None:
    """drain-001 overflows once (rows 200-259), cover-001 tilts once (rows 400-404)."""
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["device_id", "metric", "unit", "value", "observed_at"])
        for i in range(600):
            w.writerow(["drain-001", "water_level", "m", 1.0 + (1.8 if 200 <= i < 260 else 0.0), T0 + 60 * i])
            w.writerow(["cover-001", "tilt", "deg", 40.0 if 400 <= i < 405 else 0.5, T0 + 60 * i])


def _request(tmp_path: Path, config: Path = CONFIG, **kw: Any) -> BacktestRequest:
    _history(tmp_path / "h.csv")
    return BacktestRequest(config_path=config, since=T0, until=T0 + 86400, source="csv",
                           csv_path=tmp_path / "h.csv", out_dir=tmp_path / "out", progress=False, **kw)


def test_replay_opens_cases_and_writes_reports(tmp_path: Path) -> None:
    summary, out = run_sync(_request(tmp_path), Settings(run_dir=tmp_path, config_dir=CONFIG))
    assert out is not None
    run = summary["runs"]["candidate"]
    kinds = run["detections_by_kind"]
    assert kinds["drain_overflow"] >= 1 and kinds["cover_tilt"] >= 1
    assert run["cases"] == run["cases_would_open"] and run["cases"] >= 2
    assert "320582004" in run["by_grid_prefix"]
    assert sum(run["alerts_per_center"].values()) >= run["cases"]
    assert summary["real_cases"] is None  # no case store in this run folder
    assert json.loads((out / "summary.json").read_text()) == summary
    page = (out / "report.html").read_text()
    assert page.count("<svg") == 2 and "http://" not in page.replace("http://www.w3.org/2000/svg", "")
    assert "drain-001" in page and "warn" in page  # threshold lines drawn from the resolved settings


def test_replay_is_deterministic(tmp_path: Path) -> None:
    s = Settings(run_dir=tmp_path, config_dir=CONFIG)
    a, _ = run_sync(_request(tmp_path), s)
    b, _ = run_sync(_request(tmp_path), s)
    assert a == b


def test_against_live_reports_the_difference(tmp_path: Path) -> None:
    cand = tmp_path / "cand"
    cand.mkdir()
    text = (CONFIG / "detectors.yaml").read_text().replace("cover_tilt: {alarm_deg: 10.0",
                                                           "cover_tilt: {alarm_deg: 60.0")
    (cand / "detectors.yaml").write_text(text)
    summary, _ = run_sync(_request(tmp_path, config=cand, against_live=True),
                          Settings(run_dir=tmp_path, config_dir=CONFIG))
    live, mine = summary["runs"]["live"], summary["runs"]["candidate"]
    assert live["detections_by_kind"].get("cover_tilt", 0) >= 1
    assert mine["detections_by_kind"].get("cover_tilt", 0) == 0
    assert summary["difference"]["cases"] == mine["cases"] - live["cases"] < 0


def test_agreement_with_real_cases(tmp_path: Path) -> None:
    import asyncio

    from gridsentinel.cases.store import SqlCaseStore

    s = Settings(run_dir=tmp_path, config_dir=CONFIG)
    first, _ = run_sync(_request(tmp_path), s)
    assert first["real_cases"] is None

    async def seed() -> None:
        store = await SqlCaseStore.open(f"sqlite:///{tmp_path / 'cases.db'}")
        try:
            from gridsentinel.cases.case import new_case_for_test

            base = new_case_for_test()
            # a true problem where the drain overflowed, a false alarm nowhere near a detection
            real = replace(base, case_id="real-1", grid_code="320582004001001", category_type="component",
                           category_code="0103", status="closed", closing_reason="resolved",
                           opened_at=T0 + 12100,
                           first_seen_at=T0 + 12000, last_seen_at=T0 + 15000, closed_at=T0 + 20000)
            fake = replace(real, case_id="real-2", grid_code="320582004001018", closing_reason="false_alarm")
            async with store.transaction() as tx:
                for case in (real, fake):
                    await tx.save(_created(case), None)
        finally:
            await store.close()

    asyncio.run(seed())
    summary, _ = run_sync(_request(tmp_path), s)
    agree = summary["runs"]["candidate"]["agreement"]
    assert summary["real_cases"] == 2
    assert agree["real_true"] == 1 and agree["real_false_alarm"] == 1
    assert agree["recall"] == 1.0 and agree["precision"] == 1.0
    assert agree["time_to_detect_s"]["median"] is not None


def _created(case: Case):
    from gridsentinel.cases.case import CaseChange

    return CaseChange(case=case, entries=(), created=True)


def test_csv_source_reads_nab_folders_in_time_order(tmp_path: Path) -> None:
    data = tmp_path / "nab" / "data" / "cat"
    data.mkdir(parents=True)
    (data / "a.csv").write_text("timestamp,value\n2014-04-01 00:00:00,1\n2014-04-01 00:10:00,3\n")
    (data / "b.csv").write_text("timestamp,value\n2014-04-01 00:05:00,2\n")
    got = [(r.device_id, r.value) for r in CsvSource(tmp_path / "nab")]
    assert got == [("cat/a.csv", 1.0), ("cat/b.csv", 2.0), ("cat/a.csv", 3.0)]
    raw, stamps, values = read_series(data / "a.csv")
    assert [r.observed_at for r in series_readings("x", stamps, values)] == [1396310400.0, 1396311000.0]
