"""Category suggestion from a hotline call's Chinese text: a transparent keyword model.

Each category has weighted keywords (``config/hotline_keywords.yaml``). A category's score is the sum of
the weights of its keywords found in the normalised text (each keyword counted once, so a caller who
repeats a word does not tilt it); its confidence is ``score / (sum of all scores + none_weight)``: a
text that matches several categories, or only one weak keyword, gets a low confidence, and the
``none_weight`` is the mass of "none of these". The top three are offered; the call-taker confirms or
corrects (docs/channels.md has the measured accuracy). Every suggestion lists the keywords that made it.

>>> model = KeywordModel({"event:L001": {"积水": 2.0, "淹": 1.5}, "event:0401": {"塌陷": 2.5, "坑": 0.8}})
>>> [(s.category_key, s.confidence, s.keywords) for s in model.suggest("路口积水很深，车都淹了")]
[('event:L001', 0.78, ('积水', '淹'))]
>>> model.suggest("你好")
[]
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field, field_validator

from gridsentinel.core.config import StrictModel, load_yaml
from gridsentinel.errors import ConfigError

TOP = 3


class CategoryKeywords(StrictModel):
    """One category's keywords."""

    keywords: dict[str, float] = Field(
        min_length=1,
        description="Chinese keyword (a word or a few characters found in callers' words) -> weight in (0, 5]; "
                    "a distinctive word (渣土, 牛皮癣) weighs more than a common one (垃圾, 车).",
    )

    @field_validator("keywords")
    @classmethod
    def _weights(cls, value: dict[str, float]) -> dict[str, float]:
        for word, weight in value.items():
            if not word.strip():
                raise ValueError("a keyword may not be empty")
            if not 0 < weight <= 5:
                raise ValueError(f"keyword {word!r}: weight {weight}; expected in (0, 5]")
        return value


class KeywordsFile(StrictModel):
    """``config/hotline_keywords.yaml``."""

    version: str = Field(description="Version of the keyword table (recorded with each suggestion).")
    none_weight: float = Field(1.0, gt=0, le=20, description="Score mass of 'none of these categories': "
                               "the higher, the lower every confidence.")
    categories: dict[str, CategoryKeywords] = Field(
        min_length=1, description="Category key (type:code, as in categories.yaml) -> its keywords.")


@dataclass(frozen=True, slots=True)
class Suggestion:
    category_key: str
    confidence: float  # in [0, 1]
    score: float  # the sum of the matched keywords' weights
    keywords: tuple[str, ...]  # the keywords found, heaviest first

    def to_dict(self) -> dict[str, object]:
        return {"category": self.category_key, "confidence": self.confidence, "score": self.score,
                "keywords": list(self.keywords)}


def _norm(text: str) -> str:
    return unicodedata.normalize("NFKC", text).casefold()


class KeywordModel:
    """The keyword tables of every category; :meth:`suggest` ranks categories for a text."""

    def __init__(self, table: dict[str, dict[str, float]], *, none_weight: float = 1.0,
                 version: str = "") -> None:
        self.table = {key: {_norm(w): weight for w, weight in words.items()} for key, words in table.items()}
        self.none_weight = none_weight
        self.version = version

    def suggest(self, text: str, top: int = TOP) -> list[Suggestion]:
        """The ``top`` categories with a keyword in ``text``, most confident first (empty: no keyword)."""
        t = _norm(text)
        found: list[tuple[str, float, tuple[str, ...]]] = []
        for key, words in self.table.items():
            hits = sorted(((w, weight) for w, weight in words.items() if w in t), key=lambda h: (-h[1], h[0]))
            if hits:
                found.append((key, sum(weight for _, weight in hits), tuple(w for w, _ in hits)))
        total = sum(score for _, score, _ in found) + self.none_weight
        found.sort(key=lambda f: (-f[1], f[0]))
        return [Suggestion(key, round(score / total, 2), round(score, 2), words) for key, score, words in found[:top]]


def load_keywords(path: Path, known: set[str]) -> KeywordModel:
    """Load the keyword table; every category key must be one of ``known`` (categories.yaml)."""
    data = load_yaml(path, KeywordsFile)
    unknown = sorted(set(data.categories) - known)
    if unknown:
        raise ConfigError(f"{path}: categories {', '.join(unknown)} are not in categories.yaml; "
                          f"known: {', '.join(sorted(known))}")
    return KeywordModel({k: c.keywords for k, c in data.categories.items()}, none_weight=data.none_weight,
                        version=data.version)
