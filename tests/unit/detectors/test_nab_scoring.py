"""Our NAB scorer against numbers worked out by hand from SCORING.md, and the bench on a tiny corpus."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from gridsentinel.bench import nab
from gridsentinel.detectors.nab_scoring import PROFILES, FileData, probation, score_all, score_corpus, sigma

pytestmark = pytest.mark.unit

STANDARD, LOW_FP, LOW_FN = PROFILES


def test_probation() -> None:
    assert probation(20) == 3 and probation(10_000) == 750


def test_hand_computed_corpus() -> None:
    # File A, 20 rows, probation 3, one window rows 10..13 (W = 4).
    # File B, 20 rows, no window.
    a = [0.0] * 20
    a[1] = 1.0      # in probation: ignored
    a[7] = 0.6      # FP before the window: -A_FP
    a[11] = 0.8     # second row of the window: y = -(13-11+1)/4 = -0.75
    a[12] = 0.8     # later row of the same window: adds nothing (only the earliest counts)
    a[15] = 0.7     # after the window: x = (15-13)/(4-1) = 2/3, value = -A_FP·tanh(2.5·2/3)
    b = [0.0] * 20
    b[5] = 0.9      # FP in a file without windows: -A_FP
    files = [FileData("a", a, [(10, 13)]), FileData("b", b, [])]

    tp = sigma(-0.75) / sigma(-1.0)
    after = math.tanh(2.5 * 2 / 3)
    # Candidate thresholds, high to low (S = corpus sum), standard profile:
    s_by_theta = {
        1.1: -1.0,
        0.9: -1.0 - 0.11,
        0.8: tp - 0.11,
        0.7: tp - 0.11 - 0.11 * after,
        0.6: tp - 0.11 - 0.11 * after - 0.11,
        0.0: None,  # flags every scored row: many FPs, clearly worse
    }
    res = score_corpus(files, STANDARD)
    assert res.threshold == 0.8
    assert res.raw == pytest.approx(s_by_theta[0.8])
    assert res.normalized == pytest.approx(100 * (tp - 0.11 + 1) / 2)
    fa, fb = res.files
    assert (fa.tp, fa.fp, fa.fn) == (1, 0, 0) and (fb.tp, fb.fp, fb.fn) == (0, 1, 0)

    # reward_low_FP: the FP at 0.9 is worth -0.22, tp ≈ 0.70 still beats flagging nothing.
    low_fp = score_corpus(files, LOW_FP)
    assert low_fp.threshold == 0.8
    assert low_fp.raw == pytest.approx(tp - 0.22)
    # reward_low_FN: null is -2, so normalised = 100·(S + 2)/3.
    low_fn = score_corpus(files, LOW_FN)
    assert low_fn.normalized == pytest.approx(100 * (tp - 0.11 + 2) / 3)


def test_ties_go_to_the_higher_threshold() -> None:
    # Flagging at 0.5 adds a window hit and an equal FP loss elsewhere: the sums tie? make them exact.
    f = FileData("a", [0.0] * 10 + [0.9] + [0.0] * 9, [])
    res = score_corpus([f, FileData("b", [0.0] * 20, [(15, 16)])], STANDARD)
    assert res.threshold == 1.1  # flagging the FP only loses


def test_perfect_and_null_detectors() -> None:
    wins = [(10, 13)]
    perfect = [0.0] * 20
    perfect[10] = 1.0
    assert score_all([FileData("a", perfect, wins)])["standard"].normalized == pytest.approx(100.0)
    # a constant score can still flag every row (threshold 0.0); the sweep never does worse than null
    assert score_all([FileData("a", [0.0] * 20, wins)])["standard"].normalized >= 0.0
    assert score_all([FileData("a", [0.0] * 20, [])])["standard"].threshold == 1.1


def test_bench_runs_on_a_tiny_synthetic_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "nab"
    (data / "data" / "synthetic").mkdir(parents=True)
    (data / "labels").mkdir()
    rows = ["timestamp,value"]
    for i in range(600):
        v = 10.0 + (i % 12) * 0.5 + (40.0 if 500 <= i < 505 else 0.0)
        rows.append(f"2020-01-01 {i // 60:02d}:{i % 60:02d}:00,{v}")
    (data / "data" / "synthetic" / "spike.csv").write_text("\n".join(rows) + "\n")
    windows = {"synthetic/spike.csv": [["2020-01-01 08:10:00.000000", "2020-01-01 08:40:00.000000"]]}
    (data / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    parser = argparse.ArgumentParser()
    nab.add_arguments(parser)
    args = parser.parse_args(["--data", str(data), "--out", str(tmp_path / "out"), "--json"])
    assert nab.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report["profiles"]) == {p.name for p in PROFILES}
    assert report["profiles"]["standard"]["score"] > 50
    scores = (tmp_path / "out" / "synthetic" / f"{nab.DEFAULT_DETECTOR}_spike.csv").read_text().splitlines()
    assert scores[0] == "timestamp,value,anomaly_score,label" and len(scores) == 601
