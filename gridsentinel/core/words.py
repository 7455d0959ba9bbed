"""A message in the product's two languages: English (``Detection.message``, logs, alerts) and Chinese
(zh-CN, the default of the dispatch centers' pages).

Detectors describe a finding with :class:`Words`; the detection carries the English text in ``message``
and the others in ``messages`` (``{"zh-CN": ...}``), and a case's headline keeps both (``Case.headline``,
``Case.headlines``), so a page shows each user the state of the case in their language.

>>> w = Words("drain 100% full", "井内水位 100%")
>>> w.en, w.messages()
('drain 100% full', {'zh-CN': '井内水位 100%'})
>>> Words.join([w, Words("raining", "正在降雨")]).zh
'井内水位 100%，正在降雨'
>>> Words.of("plain English").messages()
{}
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Languages besides English that messages are written in (BCP 47 tags, as the pages name them).
OTHER_LANGUAGES = ("zh-CN",)


@dataclass(frozen=True, slots=True)
class Words:
    """One message in English and in Chinese (zh-CN); ``zh`` empty when there is no translation."""

    en: str
    zh: str = ""

    @classmethod
    def of(cls, text: str | Words) -> Words:
        """``text`` as Words (a plain string is English only)."""
        return text if isinstance(text, Words) else cls(text)

    @classmethod
    def join(cls, parts: Iterable[Words]) -> Words:
        """Clauses joined the way each language joins them (", " and "，")."""
        parts = list(parts)
        zh = "，".join(p.zh for p in parts) if all(p.zh for p in parts) else ""
        return cls(", ".join(p.en for p in parts), zh)

    def messages(self) -> dict[str, str]:
        """The translations, for ``Detection.messages``: ``{"zh-CN": ...}``, or empty."""
        return {"zh-CN": self.zh} if self.zh else {}
