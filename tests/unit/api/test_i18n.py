"""The dashboard's two dictionaries (gridsentinel/api/static/i18n.js): the same keys and the same {values} in
zh-CN and en, every key the pages name exists, and every status, action, severity, source, device state,
closing reason, center level and role the back end can send has a name in both languages."""

from __future__ import annotations

import json
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest

from gridsentinel.api.auth import ROLES
from gridsentinel.cases.authority import QUEUES
from gridsentinel.cases.case import ACTIONS, CLOSING_REASONS, STATUSES
from gridsentinel.cases.events import DEFAULT_NOTIFY
from gridsentinel.cases.gridcode import LEVELS
from gridsentinel.core.device_health import STATES
from gridsentinel.core.records import SEVERITIES, SOURCES

pytestmark = pytest.mark.unit

STATIC = Path(__file__).resolve().parents[3] / "gridsentinel" / "api" / "static"
LANGS = ("zh-CN", "en")
# Log-only actions the case stage writes (case.log(..., action=...)): shown by name in the audit log.
LOG_ACTIONS = ("open", "evidence", "raise_severity", "escalate", "remind")
# Keys built at run time (tr(`status.${s}`)) -> the values the back end can send for each.
DYNAMIC: dict[str, tuple[str, ...]] = {
    "status": STATUSES, "action": (*ACTIONS, *LOG_ACTIONS, *DEFAULT_NOTIFY), "severity": SEVERITIES,
    "source": SOURCES, "device": STATES, "closing": CLOSING_REASONS, "level": LEVELS, "role": ROLES,
    "queue": QUEUES, "queue_hint": QUEUES,
}


def dictionaries() -> dict[str, dict[str, str]]:
    text = (STATIC / "i18n.js").read_text(encoding="utf-8")
    start = text.index("const GS_I18N =") + len("const GS_I18N =")
    value, _ = json.JSONDecoder().raw_decode(text[start:].lstrip())
    assert isinstance(value, dict)
    return value


def page_sources() -> dict[str, str]:
    return {p.name: p.read_text(encoding="utf-8") for p in sorted(STATIC.glob("*")) if p.suffix in (".js", ".html")}


def test_both_languages_have_the_same_keys_and_values() -> None:
    d = dictionaries()
    assert set(d) == set(LANGS)
    assert sorted(set(d["zh-CN"]) ^ set(d["en"])) == []
    for key, zh in d["zh-CN"].items():
        assert zh.strip() and d["en"][key].strip(), key
        assert sorted(re.findall(r"\{(\w+)\}", zh)) == sorted(re.findall(r"\{(\w+)\}", d["en"][key])), key


def test_the_chinese_dictionary_is_chinese() -> None:
    # a key left in English in zh-CN is a missed translation (names of the product and units are fine)
    latin_only = [k for k, v in dictionaries()["zh-CN"].items()
                  if not re.search(r"[\u4e00-\u9fff]", v) and not re.fullmatch(r"[\W\d{}a-z_]*(GMT|km|h)?[\W\d{}]*", v)]
    assert latin_only == []


def test_every_key_the_pages_name_exists() -> None:
    keys = set(dictionaries()["en"])
    groups = {k.split(".")[0] for k in keys}
    used: dict[str, set[str]] = {}
    for name, src in page_sources().items():
        if name.endswith(".html"):
            found = set(re.findall(r'data-i18n(?:-placeholder|-title|-aria-label)?="([^"]+)"', src))
        else:
            # tr("x.y"), and any string literal "group.name" of a known group (tr(on ? "live.on" : ...), S.msg)
            found = set(re.findall(r'\btr\("([^"]+)"', src))
            found |= {m for m in re.findall(r'"([a-z_]+\.[a-z_0-9]+)"', src) if m.split(".")[0] in groups}
        used[name] = found
    missing = {name: sorted(found - keys) for name, found in used.items() if found - keys}
    assert missing == {}
    # every page is translated: each names some keys, and each HTML text is replaced by its data-i18n key
    for name in ("dashboard.html", "dashboard.js", "patrol.html", "patrol.js", "report.html", "report.js",
                 "center.html", "center.js", "inspector.html", "inspector.js"):
        assert used[name], name
    for name, src in page_sources().items():
        if name.endswith(".html"):
            assert untranslated_text(src) == [], name


class _TextFinder(HTMLParser):
    """Words in an HTML page that no data-i18n key replaces (the product's name aside)."""

    VOID = {"meta", "link", "input", "br", "img"}

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, bool]] = []
        self.found: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in self.VOID:
            self.stack.append((tag, any(k == "data-i18n" for k, _ in attrs)))

    def handle_endtag(self, tag: str) -> None:
        if tag not in self.VOID and self.stack:
            self.stack.pop()

    def handle_data(self, data: str) -> None:
        words = data.replace("GridSentinel", "").strip()
        inside = self.stack[-1] if self.stack else ("", False)
        if inside[0] not in ("script", "style") and re.search(r"[A-Za-z]{2}|[\u4e00-\u9fff]", words) and not inside[1]:
            self.found.append(words)


def untranslated_text(html: str) -> list[str]:
    finder = _TextFinder()
    finder.feed(html)
    return finder.found


def test_dynamic_keys_cover_what_the_back_end_sends() -> None:
    keys = set(dictionaries()["en"])
    prefixes = set()
    for src in page_sources().values():
        prefixes |= set(re.findall(r"\btr\(`([a-z_]+)\.\$\{", src))
    assert prefixes and prefixes <= set(DYNAMIC), f"add the values of {sorted(prefixes - set(DYNAMIC))} to DYNAMIC"
    missing = sorted(f"{p}.{v}" for p in prefixes for v in DYNAMIC[p] if f"{p}.{v}" not in keys)
    assert missing == []


def test_html_pages_load_the_dictionaries_first_and_default_to_chinese() -> None:
    for name in ("dashboard.html", "patrol.html", "report.html", "center.html", "inspector.html"):
        src = (STATIC / name).read_text(encoding="utf-8")
        assert '<html lang="zh-CN">' in src, name
        scripts = re.findall(r'<script src="/dashboard/static/([a-z0-9_-]+\.js)"', src)
        assert scripts[0] == "i18n.js" and len(scripts) == 2, (name, scripts)
