"""Category suggestion on hand-written 12345 call texts (tests/unit/cases/hotline_calls.py): its accuracy on
the tuning set and on the held-out set written after the keyword table was frozen, and the keyword file's
checks. The measured figures are in docs/channels.md; the floors here keep them from silently falling."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridsentinel.cases.categories import load_catalog
from gridsentinel.cases.suggest import KeywordModel, load_keywords
from gridsentinel.errors import ConfigError
from gridsentinel.settings import REPO_ROOT

from .hotline_calls import HELD_OUT, TUNING

pytestmark = pytest.mark.unit
CONFIG = REPO_ROOT / "config"
MACHINE_ONLY = {"event:L006", "event:L007", "event:L008"}  # camera tampered, device offline, rainfall


@pytest.fixture(scope="module")
def model() -> KeywordModel:
    return load_keywords(CONFIG / "hotline_keywords.yaml", set(load_catalog(CONFIG).policies))


def accuracy(model: KeywordModel, calls: list[tuple[str, str | None]]) -> tuple[int, int, int]:
    """(top-1 hits, top-3 hits, labelled calls); a call labelled None is right when nothing is suggested."""
    top1 = top3 = 0
    for text, expected in calls:
        keys = [s.category_key for s in model.suggest(text)]
        if expected is None:
            top1 += not keys
            top3 += not keys
        else:
            top1 += keys[:1] == [expected]
            top3 += expected in keys
    return top1, top3, len(calls)


def test_every_category_callers_report_has_keywords_and_tuning_calls(model: KeywordModel) -> None:
    reportable = set(load_catalog(CONFIG).policies) - MACHINE_ONLY
    assert set(model.table) == reportable
    assert {k for _, k in TUNING} == reportable and len(TUNING) >= 30
    assert len(HELD_OUT) >= 15


def test_tuning_set_accuracy(model: KeywordModel) -> None:
    top1, top3, n = accuracy(model, list(TUNING))
    assert (top1, top3, n) == (36, 36, 36)


def test_held_out_accuracy(model: KeywordModel) -> None:
    top1, top3, n = accuracy(model, HELD_OUT)
    assert (top1, top3, n) == (13, 13, 15)  # docs/channels.md explains the two misses


def test_confidences_are_ranked_and_explained(model: KeywordModel) -> None:
    [first, *rest] = model.suggest("暨阳中路88号门口的井盖不见了")
    assert first.category_key == "component:0103" and first.keywords == ("井盖",)
    assert all(0 < s.confidence < first.confidence for s in rest) and len(rest) == 2
    fire = model.suggest("楼下着火了，冒着浓烟")[0]
    assert fire.category_key == "event:L005" and fire.confidence > 0.8
    assert model.suggest("请问社保卡怎么办理") == []


def test_the_keyword_file_is_checked(tmp_path: Path) -> None:
    path = tmp_path / "kw.yaml"
    path.write_text('version: "x"\ncategories:\n  "event:9999": {keywords: {积水: 1}}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="event:9999 are not in categories.yaml"):
        load_keywords(path, {"event:L001"})
    path.write_text('version: "x"\ncategories:\n  "event:L001": {keywords: {积水: 9}}\n', encoding="utf-8")
    with pytest.raises(ConfigError, match="weight 9.0; expected in"):
        load_keywords(path, {"event:L001"})
