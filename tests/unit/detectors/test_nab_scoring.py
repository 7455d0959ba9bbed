"""Our NAB scorer against numbers worked out by hand from SCORING.md, and the bench on a tiny corpus."""

from __future__ import annotations

import argparse
import json
import math
from pathlib import Path

import pytest

from gridsentinel.bench import nab
from gridsentinel.bench.nab import out_of_fold
from gridsentinel.detectors.nab_scoring import (
    PROFILES,
    FileData,
    FileResult,
    probation,
    score_all,
    score_corpus,
    sigma,
)
from gridsentinel.errors import GridSentinelError

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


def _tiny_corpus(root: Path) -> Path:
    """Two categories of two files each: a spike in a sawtooth, labelled with a window around it."""
    data = root / "nab"
    (data / "labels").mkdir(parents=True)
    windows = {}
    for category, height in (("catA", 40.0), ("catB", -30.0)):
        (data / "data" / category).mkdir(parents=True)
        for k, at in enumerate((500, 450)):
            rows = ["timestamp,value"]
            for i in range(600):
                v = 10.0 + (i % 12) * 0.5 + (height if at <= i < at + 5 else 0.0)
                rows.append(f"2020-01-01 {i // 60:02d}:{i % 60:02d}:00,{v}")
            (data / "data" / category / f"f{k}.csv").write_text("\n".join(rows) + "\n")
            lo, hi = at - 10, at + 20
            windows[f"{category}/f{k}.csv"] = [[f"2020-01-01 {lo // 60:02d}:{lo % 60:02d}:00.000000",
                                                f"2020-01-01 {hi // 60:02d}:{hi % 60:02d}:00.000000"]]
    (data / "labels" / "combined_windows.json").write_text(json.dumps(windows))
    return data


def test_bench_runs_on_a_tiny_synthetic_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _tiny_corpus(tmp_path)
    parser = argparse.ArgumentParser()
    nab.add_arguments(parser)
    args = parser.parse_args(["--data", str(data), "--out", str(tmp_path / "out"), "--json"])
    assert nab.run(args) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["protocol"] == "leave-one-category-out" and report["categories"] == ["catA", "catB"]
    assert set(report["detectors"]) == set(nab.GRIDS) and report["default"] in nab.GRIDS
    assert "sum_range_1e8_s" in report["calibration"]
    det = report["detectors"][nab.DEFAULT_DETECTOR]
    assert set(det["out_of_fold"]) == set(det["in_sample"]) == {p.name for p in PROFILES}
    assert det["in_sample"]["standard"]["score"] > 50 and det["rows_per_s"] > 0
    folds = det["out_of_fold"]["standard"]["folds"]
    assert [f["category"] for f in folds] == ["catA", "catB"]
    assert all(set(f["files"]) == {f"{f['category']}/f0.csv", f"{f['category']}/f1.csv"} for f in folds)
    oof = det["out_of_fold"]["standard"]
    assert [c["category"] for c in oof["categories"]] == ["catA", "catB"] and set(oof["gap"]) == {"threshold",
                                                                                                "setting"}
    scores = (tmp_path / "out" / "catA" / f"{nab.DEFAULT_DETECTOR}_f0.csv").read_text().splitlines()
    assert scores[0] == "timestamp,value,anomaly_score,label" and len(scores) == 601


def test_bench_text_labels_out_of_fold_and_in_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    nab.add_arguments(parser)
    assert nab.run(parser.parse_args(["--data", str(_tiny_corpus(tmp_path)), "--detector", "likelihood"])) == 0
    out = capsys.readouterr().out
    assert "out of fold" in out and "in-sample" in out and "CPU calibration: sum(range(10**8))" in out
    assert "default (best out-of-fold standard score): likelihood" in out
    assert "from choosing the threshold without the held-out category" in out and "per category" in out


def test_bench_refuses_a_single_category(tmp_path: Path) -> None:
    data = _tiny_corpus(tmp_path)
    windows = json.loads((data / "labels" / "combined_windows.json").read_text())
    (data / "labels" / "combined_windows.json").write_text(
        json.dumps({k: v for k, v in windows.items() if k.startswith("catA/")}))
    parser = argparse.ArgumentParser()
    nab.add_arguments(parser)
    with pytest.raises(GridSentinelError, match="needs two or more"):
        nab.run(parser.parse_args(["--data", str(data), "--detector", "likelihood"]))


def _file(name: str, hit: bool, fp: bool) -> FileData:
    scores = [0.0] * 100
    if hit:
        scores[60] = 0.9
    if fp:
        scores[30] = 0.95
    return FileData(name, scores, [(58, 62)])


def test_out_of_fold_never_reads_the_held_out_category() -> None:
    categories = ["a", "a", "b", "b", "c"]
    # setting 0 is good everywhere; setting 1 is perfect on category c alone and poor elsewhere
    good = [_file(f"f{i}", True, i == 1) for i in range(5)]
    only_c = [_file(f"f{i}", i == 4, i != 4) for i in range(5)]
    oof = out_of_fold([good, only_c], categories, STANDARD)
    assert [(f.category, f.setting) for f in oof.folds] == [("a", 0), ("b", 0), ("c", 0)]
    # whatever the held-out files score under any setting, the choice for their fold does not move
    for fold in oof.folds:
        held = [i for i, c in enumerate(categories) if c == fold.category]
        scrambled = [[FileData(f.name, [1.0 - s for s in f.scores], f.windows) if i in held else f
                      for i, f in enumerate(run)] for run in (good, only_c)]
        again = next(f for f in out_of_fold(scrambled, categories, STANDARD).folds if f.category == fold.category)
        assert (again.setting, again.threshold) == (fold.setting, fold.threshold)
    # pooled: the held-out results of all folds, against the whole corpus's null and perfect detectors
    assert oof.counts() == (5, 1, 0)
    in_sample = score_corpus(good, STANDARD)
    assert oof.normalized == pytest.approx(in_sample.normalized)


def test_default_is_chosen_among_candidates_not_tuned_on_the_corpus() -> None:
    def ev(name: str, score: float) -> nab.Evaluation:
        oof = nab.OutOfFold(STANDARD, [nab.Fold("a", 0, 0.5, 0.0, [
            FileResult("x", 10, 1, raw=score / 50 - 1, null=-1.0, perfect=1.0)])])
        return nab.Evaluation(name, ({},), 10, 1.0, {"standard": oof}, {}, [])
    assert next(iter(nab.TUNED_ON_SHARED_FILES)) in {"ensemble", "novelty"}
    assert nab.choose_default([ev("ensemble", 66.0), ev("likelihood", 63.0)]) == "likelihood"
    assert nab.choose_default([ev("ensemble", 66.0), ev("novelty", 70.0)]) == "novelty"


def _scored(name: str, hit: float, fp: float | None) -> FileData:
    scores = [0.0] * 100
    scores[60] = hit
    if fp is not None:
        scores[30] = fp
    return FileData(name, scores, [(58, 62)])


def _evaluation(runs: list[list[FileData]]) -> nab.Evaluation:
    categories = [f.name.split("/")[0] for f in runs[0]]
    everything = list(range(len(categories)))
    return nab.Evaluation("x", tuple({"s": s} for s in range(len(runs))), 1, 1.0,
                          {p.name: out_of_fold(runs, categories, p) for p in PROFILES},
                          {p.name: nab.best_setting(runs, everything, p) for p in PROFILES}, runs)


def test_the_gap_is_split_into_threshold_and_setting_and_shown_per_category() -> None:
    # category a wants a high threshold (a false positive at 0.5, hits at 0.9); b's hits score only 0.3:
    # chosen on a alone, the threshold misses all of b
    run = [_scored("a/f0.csv", 0.9, 0.5), _scored("a/f1.csv", 0.9, 0.5),
           _scored("b/f0.csv", 0.3, None), _scored("b/f1.csv", 0.3, None)]
    ev = _evaluation([run])
    threshold_part, setting_part = nab.gap_parts(ev, STANDARD)
    gap = ev.in_sample["standard"][1].normalized - ev.oof["standard"].normalized
    assert threshold_part == pytest.approx(gap) and gap > 40 and setting_part == pytest.approx(0.0)
    views = {v.category: v for v in nab.category_views(ev, STANDARD)}
    assert views["b"].own_threshold == 0.3 and views["b"].own == pytest.approx(views["b"].in_sample)
    assert views["b"].out_of_fold == pytest.approx(0.0)  # held out, b is scored at a's threshold: no hit
    assert views["a"].own_threshold == 0.9 and views["a"].own > views["a"].in_sample  # type: ignore[operator]
    # two settings: the in-sample one (1) is perfect, but its threshold chosen on b misses a's hits; choosing
    # the setting in each fold too (a's fold takes setting 0) recovers them: a negative setting part
    noisy = [_scored("a/f0.csv", 0.9, 0.95), _scored("a/f1.csv", 0.9, 0.95),
             _scored("b/f0.csv", 0.3, None), _scored("b/f1.csv", 0.3, None)]
    clean = [_scored("a/f0.csv", 0.9, None), _scored("a/f1.csv", 0.9, None),
             _scored("b/f0.csv", 0.95, None), _scored("b/f1.csv", 0.95, None)]
    ev2 = _evaluation([noisy, clean])
    threshold_part, setting_part = nab.gap_parts(ev2, STANDARD)
    in_sample = ev2.in_sample["standard"]
    assert in_sample[0] == 1 and sum(f.fp + f.fn for f in in_sample[1].files) == 0
    assert threshold_part > 40 and setting_part < -40
    assert threshold_part + setting_part == pytest.approx(in_sample[1].normalized - ev2.oof["standard"].normalized)
