"""Free text fit to leave the city: phone numbers, resident ID numbers and e-mail addresses replaced by
``[phone]``, ``[id]`` and ``[email]`` (issue 17, "Privacy"; docs/channels.md, "Desensitised export").

Case titles and headlines are what a citizen, a caller or an inspector wrote ("井盖没了，回电 13912345678"), so
they may name a person's number. Recall comes first: when a run of digits could be an identifier it goes,
unless it is one of the city's own grid codes (``keep``), which exports carry in a column of their own anyway.

What is scrubbed (digits may be ASCII or full-width; a match never starts or ends inside a longer digit run):

- e-mail addresses;
- 18-character resident ID numbers (17 digits and a check character, ``X`` included), also written in
  6-8-4 groups; the check digit is not verified: a mistyped ID is still someone's;
- 15-digit numbers (the old resident ID) unless the number is a grid code in ``keep``;
- mobile numbers ``1[3-9]`` + 9 digits, also as 3-4-4 groups and with ``+86``, ``0086`` or ``(+86)``;
- landlines with an area code: ``0`` + 2-3 digits, then 7-8 digits (``010-62345678``, ``(0512)58761234``,
  ``0512 5876 1234``), with ``+86``/``0086`` and the area code's ``0`` dropped, and an extension
  (``-801``, ``转801``);
- any run of 5 or more digits (with spaces or dashes) right after a word that announces a number
  (电话, 手机, 联系, 座机, 微信, QQ, tel, phone, mobile), e.g. a landline given without its area code.

What stays: other numbers (house numbers ``88号``, dates ``2026-12-05``, times, amounts, 16-digit component
ids, ticket numbers like ``12345-20261205-0042``, the 12345/110/119 service numbers, ``400``/``800``
company lines), and numbers written in Chinese numerals (``一三九…``), which are rare in typed text.

>>> scrub("井盖没了，回电13912345678或0512-58761234，身份证32058219900101123X")
'井盖没了，回电[phone]或[phone]，身份证[id]'
>>> scrub("网格320582004001001内，旧证号320582900101123", keep={"320582004001001"})
'网格320582004001001内，旧证号[id]'
>>> scrub("部件3205820102048188 暨阳中路88号 12345-20261205-0042")
'部件3205820102048188 暨阳中路88号 12345-20261205-0042'
"""

from __future__ import annotations

import re
from collections.abc import Collection
from dataclasses import dataclass

_D = r"\d"  # Python's \d: ASCII and full-width digits alike
_NO_DIGIT_BEFORE = r"(?<!\d)"
_NO_DIGIT_AFTER = r"(?!\d)"
_SEP = r"[ \-\u2010-\u2015\uff0d]?"  # one optional space, hyphen, dash or full-width hyphen
_CC = r"(?:(?:\+|＋|00)86|[(（](?:\+|＋)?86[)）])" + _SEP  # +86, 0086, (+86)

EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
ID18 = re.compile(_NO_DIGIT_BEFORE + rf"{_D}{{6}}{_SEP}{_D}{{8}}{_SEP}{_D}{{3}}[\dXxＸｘ](?![\dA-Za-z])")
ID15 = re.compile(_NO_DIGIT_BEFORE + rf"{_D}{{15}}" + _NO_DIGIT_AFTER)
MOBILE = re.compile(
    _NO_DIGIT_BEFORE + rf"(?:{_CC})?[1１][3-9３-９]{_D}{_SEP}{_D}{{4}}{_SEP}{_D}{{4}}" + _NO_DIGIT_AFTER)
_EXT = rf"(?:(?:-|转|ext\.?|x){_D}{{1,5}})?"
LANDLINE = re.compile(
    _NO_DIGIT_BEFORE
    + rf"(?:{_CC}[(（]?[0０]?[1-9１-９]{_D}{{1,2}}[)）]?|[(（]?[0０][1-9１-９]{_D}{{1,2}}[)）]?)"
    + rf"{_SEP}{_D}{{3,4}}{_SEP}{_D}{{4}}"
    + _EXT + _NO_DIGIT_AFTER
)
ANNOUNCED = re.compile(
    r"(电话|手机|联系|座机|微信|[Qq][Qq]|[Tt]el|TEL|[Pp]hone|PHONE|[Mm]obile)([^\d\n]{0,6}?)"
    + rf"((?:{_CC})?{_D}(?:[ \-]?{_D}){{4,}})" + _NO_DIGIT_AFTER
)


@dataclass(frozen=True, slots=True)
class Scrubbed:
    """The cleaned text and how many of each kind were replaced."""

    text: str
    emails: int = 0
    ids: int = 0
    phones: int = 0


def scrub_counted(text: str, keep: Collection[str] = ()) -> Scrubbed:
    """Like :func:`scrub`, with counts (an export reports how much it removed)."""
    counts = {"emails": 0, "ids": 0, "phones": 0}

    def sub(pattern: re.Pattern[str], token: str, kind: str, value: str) -> str:
        def repl(m: re.Match[str]) -> str:
            if kind == "ids" and m.group(0) in keep:
                return m.group(0)
            counts[kind] += 1
            return token
        return pattern.sub(repl, value)

    out = sub(EMAIL, "[email]", "emails", text)
    out = sub(ID18, "[id]", "ids", out)
    out = sub(ID15, "[id]", "ids", out)
    out = sub(MOBILE, "[phone]", "phones", out)
    out = sub(LANDLINE, "[phone]", "phones", out)

    def announced(m: re.Match[str]) -> str:
        counts["phones"] += 1
        return m.group(1) + m.group(2) + "[phone]"

    out = ANNOUNCED.sub(announced, out)
    return Scrubbed(out, **counts)


def scrub(text: str, keep: Collection[str] = ()) -> str:
    """``text`` without phone numbers, resident ID numbers and e-mail addresses (see the module's list).
    ``keep``: 15-digit numbers to leave alone (the city's grid codes)."""
    return scrub_counted(text, keep).text
