"""The Boston 311 extract (shared/datasets/civic) as located requests with a category family.

Families come from ``config/forecast_families.yaml``: Boston's coarse ``REASON`` grouped into a handful of
families; a reason not listed is ``other``; listed ``exclude`` reasons (comments, front-desk calls,
notifications) are not field problems and are dropped. Requests on the default City Hall point, or without
coordinates, are unlocated (the dataset's README): they are counted and dropped, never a hotspot.
"""

from __future__ import annotations

import csv
import gzip
from dataclasses import dataclass, field
from datetime import date, datetime
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gridsentinel.errors import GridSentinelError

OTHER = "other"
# Boston's default point for requests that were not geocoded (City Hall), per the dataset's README.
UNLOCATED_POINT = (42.3594, -71.0587)
DEFAULT_FAMILIES = Path(__file__).resolve().parents[2] / "config" / "forecast_families.yaml"


class FamilyConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    families: dict[str, list[str]] = Field(description="family name -> the REASON values it groups")
    exclude: list[str] = Field(default_factory=list, description="REASON values that are not field problems")


@dataclass(frozen=True)
class Families:
    """REASON -> family; ``names`` in a fixed order, ``other`` last."""

    by_reason: dict[str, str]
    excluded: frozenset[str]
    names: tuple[str, ...]

    @classmethod
    def from_config(cls, cfg: FamilyConfig) -> Families:
        by_reason: dict[str, str] = {}
        for fam, reasons in cfg.families.items():
            for reason in reasons:
                if reason in by_reason:
                    raise GridSentinelError(f"REASON {reason!r} is in both {by_reason[reason]!r} and {fam!r}")
                by_reason[reason] = fam
        names = tuple(n for n in cfg.families if n != OTHER) + (OTHER,)
        return cls(by_reason, frozenset(cfg.exclude), names)

    def family_of(self, reason: str) -> str | None:
        """The reason's family, or None when the reason is excluded."""
        if reason in self.excluded:
            return None
        return self.by_reason.get(reason, OTHER)


def load_families(path: Path = DEFAULT_FAMILIES) -> Families:
    try:
        raw = yaml.safe_load(path.read_text())
        return Families.from_config(FamilyConfig.model_validate(raw))
    except OSError as exc:
        raise GridSentinelError(f"{path}: cannot read ({exc.strerror})") from exc
    except ValidationError as exc:
        err = exc.errors()[0]
        loc = ".".join(str(p) for p in err["loc"])
        raise GridSentinelError(f"{path}: {loc}: {err['msg']} (got {err.get('input')!r})") from exc


@dataclass(frozen=True)
class Request:
    day: date
    lat: float
    lon: float
    family: str


@dataclass
class LoadStats:
    rows: int = 0
    excluded: int = 0
    unlocated: int = 0
    kept: int = 0
    by_family: dict[str, int] = field(default_factory=dict)


def _located(lat_text: str, lon_text: str) -> tuple[float, float] | None:
    try:
        lat, lon = float(lat_text), float(lon_text)
    except ValueError:
        return None
    if (round(lat, 4), round(lon, 4)) == UNLOCATED_POINT or not (-90 < lat < 90 and -180 < lon < 180):
        return None
    if lat == 0.0 and lon == 0.0:
        return None
    return lat, lon


def read_requests(path: Path, families: Families) -> tuple[list[Request], LoadStats]:
    """Located, non-excluded requests of a Boston 311 CSV (plain or .gz), by local opening day."""
    if not path.is_file():
        raise GridSentinelError(f"{path}: not found (expected the Boston 311 CSV, e.g. boston311-2015-jan-sep.csv.gz)")
    stats = LoadStats()
    out: list[Request] = []
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", newline="") as fh:
        reader = csv.DictReader(fh)
        missing = {"OPEN_DT", "REASON", "LATITUDE", "LONGITUDE"} - set(reader.fieldnames or [])
        if missing:
            raise GridSentinelError(f"{path}: missing columns {sorted(missing)}")
        for row in reader:
            stats.rows += 1
            fam = families.family_of(row["REASON"])
            if fam is None:
                stats.excluded += 1
                continue
            loc = _located(row["LATITUDE"], row["LONGITUDE"])
            if loc is None:
                stats.unlocated += 1
                continue
            # Local time, MM/DD/YYYY hh:mm:ss AM/PM; only the day matters here.
            day = datetime.strptime(row["OPEN_DT"][:10], "%m/%d/%Y").date()
            out.append(Request(day, loc[0], loc[1], fam))
            stats.by_family[fam] = stats.by_family.get(fam, 0) + 1
    stats.kept = len(out)
    return out, stats
