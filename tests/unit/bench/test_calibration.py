"""Every benchmark prints a CPU calibration (a fixed pure-Python loop) beside its figures."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from gridsentinel.bench import nab
from gridsentinel.bench.common import calibration

pytestmark = pytest.mark.unit


def test_calibration_times_the_loop_as_a_sum_range_1e8_equivalent() -> None:
    cal = calibration(repeat=1)
    seconds = cal["sum_range_1e8_s"]
    assert isinstance(seconds, float) and seconds > 0
    assert "sum(range(10**7))" in str(cal["method"])


def _tiny_nab(tmp_path: Path) -> Path:
    # two categories: the bench holds each out in turn (leave one category out)
    data = tmp_path / "nab"
    (data / "labels").mkdir(parents=True)
    rows = ["timestamp,value"] + [f"2020-01-01 {i // 60:02d}:{i % 60:02d}:00,{10.0 + (40.0 if i == 150 else 0.0)}"
                                  for i in range(200)]
    windows = {}
    for category in ("synthetic", "other"):
        (data / "data" / category).mkdir(parents=True)
        (data / "data" / category / "spike.csv").write_text("\n".join(rows) + "\n")
        windows[f"{category}/spike.csv"] = [["2020-01-01 02:20:00.000000", "2020-01-01 02:40:00.000000"]]
    (data / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return data


@pytest.mark.parametrize("as_json", [True, False])
def test_bench_nab_output_carries_the_calibration(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                  as_json: bool) -> None:
    parser = argparse.ArgumentParser()
    nab.add_arguments(parser)
    argv = ["--data", str(_tiny_nab(tmp_path)), "--out", str(tmp_path / "out")] + (["--json"] if as_json else [])
    assert nab.run(parser.parse_args(argv)) == 0
    out = capsys.readouterr().out
    if as_json:
        report = json.loads(out)
        assert report["calibration"]["sum_range_1e8_s"] > 0
        assert "out_of_fold" in report["detectors"][report["default"]]
    else:
        calibration_lines = [ln for ln in out.splitlines() if ln.startswith("CPU calibration:")]
        assert len(calibration_lines) == 1 and "sum(range(10**8)) equivalent" in calibration_lines[0]
