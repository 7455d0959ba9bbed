"""The city's gazetteer: addresses and places with coordinates, and the matching that turns a caller's
spoken address into a point and a unit-grid cell (the 12345 hotline intake, docs/channels.md).

The file is CSV (UTF-8; lines starting with ``#`` are comments)::

    name,aliases,lat,lon,grid_code
    暨阳中路88号,暨阳路88号|暨阳中路八十八号,31.87225,120.55053,320582004001001

``aliases`` are ``|``-separated; ``grid_code`` may be empty (the cell is found from the point). Every
point must lie in the unit grid, and a given ``grid_code`` must be the cell holding the point.

Matching is transparent: both sides are normalised (:func:`normalize`: full-width to half-width, Chinese
numerals before 号/弄/巷/栋/幢/室 to digits, no whitespace or punctuation); an exact name or alias wins
outright; otherwise each name scores by how much of it the address contains (its longest common
substring and its character bigrams), a different house number on the same road scores far lower, and
the best candidate resolves the address only above a threshold and clearly ahead of a different place.

>>> normalize("暨阳中路 八十八号") == normalize("暨阳中路８８号") == "暨阳中路88号"
True
>>> g = Gazetteer([Place("暨阳中路88号", ("暨阳路88号",), 31.87225, 120.55053, "320582004001001"),
...                Place("暨阳中路90号", (), 31.87225, 120.55160, "320582004001002")])
>>> m = g.match("暨阳路八十八号门口")
>>> m.resolved.place.name, m.resolved.score
('暨阳中路88号', 0.99)
>>> g.match("暨阳中路").resolved is None  # a road is not a point: candidates only
True
"""

from __future__ import annotations

import csv
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from gridsentinel.core.grid import GridMap, valid_grid_code
from gridsentinel.errors import ConfigError

COLUMNS = ("name", "aliases", "lat", "lon", "grid_code")
RESOLVE_AT = 0.65  # a candidate at least this good resolves the address ...
MARGIN = 0.1  # ... when no other place comes within this of it
CANDIDATE_FLOOR = 0.3  # candidates below this are not worth showing
MAX_CANDIDATES = 5
LESS_SPECIFIC = 0.6  # at most this for an address that is only part of a name (长安中路 for 长安中路5号)
NUMBER_MISMATCH = 0.6  # factor on a candidate whose house number differs from the address's

_UNITS = "号弄巷栋幢室"
_CN_DIGITS = {"零": 0, "〇": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_CN_SCALES = {"十": 10, "百": 100, "千": 1000}
_CN_NUMBER = re.compile(f"([零〇一二两三四五六七八九十百千]+)(?=[{_UNITS}])")
_HOUSE_NUMBER = re.compile(f"(\\d+)[{_UNITS}]")
_DROP = re.compile(r"[\W_]+")  # whitespace and punctuation (CJK characters are word characters)


def chinese_number(text: str) -> int:
    """A Chinese numeral as an int: positional (八十八, 一百零五) or digit by digit (一二三).

    >>> [chinese_number(t) for t in ("八十八", "十二", "一百零五", "两千", "一二三", "〇")]
    [88, 12, 105, 2000, 123, 0]
    """
    if not any(c in _CN_SCALES for c in text):
        return int("".join(str(_CN_DIGITS[c]) for c in text))
    total, digit = 0, 0
    for c in text:
        if c in _CN_DIGITS:
            digit = _CN_DIGITS[c]
        else:
            total += (digit or 1) * _CN_SCALES[c]  # 十二: a leading 十 means one ten
            digit = 0
    return total + digit


def normalize(text: str) -> str:
    """The form addresses are compared in: NFKC (full-width → half-width), case-folded, Chinese house
    numbers as digits, no whitespace or punctuation.

    >>> normalize("  梁丰花园 ３幢 ")
    '梁丰花园3幢'
    >>> normalize("长安路十二弄（东）")
    '长安路12弄东'
    """
    s = _DROP.sub("", unicodedata.normalize("NFKC", text).casefold())
    s = _CN_NUMBER.sub(lambda m: str(chinese_number(m.group(1))), s)
    return s


def _bigrams(s: str) -> set[str]:
    return {s[i:i + 2] for i in range(len(s) - 1)} or {s}


def _longest_common(a: str, b: str) -> int:
    """Length of the longest common substring (dynamic programming; addresses are short)."""
    best = 0
    prev = [0] * (len(b) + 1)
    for ca in a:
        cur = [0] * (len(b) + 1)
        for j, cb in enumerate(b, 1):
            if ca == cb:
                cur[j] = prev[j - 1] + 1
                best = max(best, cur[j])
        prev = cur
    return best


def similarity(address: str, name: str) -> float:
    """How well a (normalised) address names a (normalised) gazetteer name, in [0, 1].

    1 for equal strings; just under 1 when the address contains the name (extra words such as 门口 cost a
    little); at most :data:`LESS_SPECIFIC` when the name contains the address; else the mean of the share
    of the name in the longest common substring and the share of the name's bigrams found in the address;
    times :data:`NUMBER_MISMATCH` when both carry a house number and they differ.

    >>> similarity("暨阳中路88号", "暨阳中路88号"), similarity("暨阳中路88号门口", "暨阳中路88号")
    (1.0, 0.99)
    >>> similarity("暨杨中路88号", "暨阳中路88号")  # one wrong character (a homophone)
    0.69
    >>> similarity("暨阳中路90号", "暨阳中路88号")  # another house on the same road
    0.32
    >>> similarity("暨阳中路", "暨阳中路88号")  # the road only
    0.57
    """
    if not address or not name:
        return 0.0
    if address == name:
        return 1.0
    if name in address:
        return round(0.95 + 0.05 * len(name) / len(address), 2)
    if address in name:  # less specific than the place (a road, an estate with several gates)
        return round(min(LESS_SPECIFIC, len(address) / len(name)), 2)
    cover = _longest_common(address, name) / len(name)
    grams = _bigrams(name)
    score = 0.5 * cover + 0.5 * len(grams & _bigrams(address)) / len(grams)
    wanted, have = set(_HOUSE_NUMBER.findall(address)), set(_HOUSE_NUMBER.findall(name))
    if wanted and have and not wanted & have:
        score *= NUMBER_MISMATCH
    return round(score, 2)


@dataclass(frozen=True, slots=True)
class Place:
    """One gazetteer entry."""

    name: str
    aliases: tuple[str, ...]
    lat: float
    lon: float
    grid_code: str

    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass(frozen=True, slots=True)
class Candidate:
    place: Place
    score: float
    matched: str  # the name or alias that scored best

    def to_dict(self) -> dict[str, object]:
        p = self.place
        return {"name": p.name, "matched": self.matched, "score": self.score, "lat": p.lat, "lon": p.lon,
                "grid_code": p.grid_code}


@dataclass(frozen=True, slots=True)
class Match:
    """The candidates for an address, best first, and the one that resolves it (None: a person decides)."""

    address: str
    candidates: tuple[Candidate, ...]
    resolved: Candidate | None
    reason: str  # why it resolved or did not, in one sentence


class Gazetteer:
    """Places by normalised name; :meth:`match` finds an address's candidates."""

    def __init__(self, places: list[Place]) -> None:
        self.places = places
        self._exact: dict[str, Place] = {}
        for place in places:
            for n in place.names():
                self._exact[normalize(n)] = place
        self._names = [(normalize(n), n, p) for p in places for n in p.names()]

    def __len__(self) -> int:
        return len(self.places)

    def match(self, address: str) -> Match:
        q = normalize(address)
        if len(q) < 2:
            return Match(address, (), None, "the address is empty or too short to look up")
        exact = self._exact.get(q)
        if exact is not None:
            hit = Candidate(exact, 1.0, next(n for n in exact.names() if normalize(n) == q))
            return Match(address, (hit,), hit, "exact name or alias")
        best: dict[str, Candidate] = {}
        for norm, original, place in self._names:
            score = similarity(q, norm)
            if score >= CANDIDATE_FLOOR and (place.name not in best or score > best[place.name].score):
                best[place.name] = Candidate(place, score, original)
        ranked = tuple(sorted(best.values(), key=lambda c: (-c.score, -len(c.matched), c.place.name)))
        ranked = ranked[:MAX_CANDIDATES]
        if not ranked:
            return Match(address, (), None, "no gazetteer name resembles the address")
        top = ranked[0]
        if top.score < RESOLVE_AT:
            return Match(address, ranked, None,
                         f"best candidate scores {top.score:.2f}, below {RESOLVE_AT}: choose one or give the point")
        rival = next((c for c in ranked[1:] if (c.place.lat, c.place.lon) != (top.place.lat, top.place.lon)),
                     None)
        if rival is not None and top.score - rival.score < MARGIN:
            return Match(address, ranked, None,
                         f"{top.place.name} ({top.score:.2f}) and {rival.place.name} ({rival.score:.2f}) are "
                         "too close to tell apart: choose one or give the point")
        return Match(address, ranked, top, f"best candidate {top.place.name} scores {top.score:.2f}")


def load_gazetteer(path: Path, grid: GridMap) -> Gazetteer:
    """Read and validate a gazetteer CSV; ConfigError naming the line and what to fix."""
    try:
        lines = path.read_text(encoding="utf-8-sig").splitlines()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read ({exc.strerror or exc})") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; save the gazetteer as UTF-8 CSV") from None
    numbered = [(i, line) for i, line in enumerate(lines, 1) if line.strip() and not line.lstrip().startswith("#")]
    if not numbered:
        raise ConfigError(f"{path}: no header; expected the columns {','.join(COLUMNS)}")
    rows = list(csv.reader([line for _, line in numbered]))
    header = [h.strip() for h in rows[0]]
    if header not in (list(COLUMNS), list(COLUMNS[:-1])):
        raise ConfigError(f"{path} line {numbered[0][0]}: header {','.join(header)!r}; expected "
                          f"{','.join(COLUMNS)} (grid_code may be left out)")
    places: list[Place] = []
    owner: dict[str, str] = {}
    for (lineno, _), row in zip(numbered[1:], rows[1:], strict=True):
        where = f"{path} line {lineno}"
        if len(row) != len(header):
            raise ConfigError(f"{where}: {len(row)} fields; expected {len(header)} ({','.join(header)})")
        values = dict(zip(header, (v.strip() for v in row), strict=True))
        name = values["name"]
        aliases = tuple(a.strip() for a in values["aliases"].split("|") if a.strip())
        coords: list[float] = []
        for key, low, high in (("lat", -90.0, 90.0), ("lon", -180.0, 180.0)):
            try:
                value = float(values[key])
            except ValueError:
                raise ConfigError(f"{where}: {key} {values[key]!r} is not a number (decimal degrees, WGS 84)") \
                    from None
            if not low <= value <= high:
                raise ConfigError(f"{where}: {key} {value} is outside [{low}, {high}]")
            coords.append(value)
        lat, lon = coords
        cell = grid.locate(lat, lon)
        if cell is None:
            raise ConfigError(f"{where}: {name!r} at ({lat}, {lon}) is outside the unit grid (config/grid.geojson); "
                              "fix the point or leave the place out")
        given = values.get("grid_code", "")
        if given and not valid_grid_code(given):
            raise ConfigError(f"{where}: grid_code {given!r} is not 15 digits")
        if given and given != cell:
            raise ConfigError(f"{where}: grid_code {given} but the point ({lat}, {lon}) lies in {cell}; "
                              "fix one of them (or leave grid_code empty)")
        for n in (name, *aliases):
            norm = normalize(n)
            if len(norm) < 2:
                raise ConfigError(f"{where}: name or alias {n!r} is shorter than two characters once normalised")
            if norm in owner and owner[norm] != name:
                raise ConfigError(f"{where}: {n!r} already names {owner[norm]!r}; an alias must name one place")
            owner[norm] = name
        places.append(Place(name, aliases, lat, lon, cell))
    return Gazetteer(places)
