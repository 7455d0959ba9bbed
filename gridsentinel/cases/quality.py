"""Report quality: is a citizen's report straight enough to open a case, or does an inspector verify it first?

Three checks, each pure (no clock, no store, no network: the caller passes the photo's bytes, the report's
time and the recent reports to compare with), and one decision that keeps every reason (docs/cases.md,
"Report quality"):

- **Location/time** (:func:`check_location`): the photo's EXIF GPS position and capture time against the
  reported point and time. Farther than ``max_distance_m`` or taken more than ``max_photo_age_s`` before
  the report is flagged; no EXIF (messaging apps strip it) is ``unverifiable``, not an error.
- **Near-duplicate photo** (:func:`find_duplicate`): a perceptual hash (``imagehash.phash``, survives
  re-encoding and resizing) against recent reports' hashes: the same photo filed again is a duplicate of
  the earlier report.
- **Gaming** (:func:`gaming_signals`): per account (and device), many reports of an ad-type category in a
  small radius, everything filed from one place, a burst over the rate limit, a photo another account
  already filed; combined into a score in [0, 1].

:func:`assess` runs all three and decides ``straight`` or ``verify``:

>>> cfg = QualityConfig()
>>> now = 1_700_000_000.0
>>> past = [PastReport(f"r{i}", now - 60 * i, 31.87, 120.55, "event:0201", account_id="a1")
...         for i in range(1, 9)]
>>> a = assess(NewReport("r9", now, 31.87, 120.55, "event:0201", account_id="a1"), None, past, cfg)
>>> a.decision, [r.code for r in a.reasons]
('verify', ['no_photo', 'ad_cluster', 'one_place'])
>>> assess(NewReport("r10", now, 31.87, 120.55, "event:0103", account_id="a2"), None, past, cfg).decision
'straight'
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import imagehash
from PIL import ExifTags, Image, ImageOps, UnidentifiedImageError
from pydantic import Field, field_validator

from gridsentinel.core.config import StrictModel

Decision = Literal["straight", "verify"]
LocationStatus = Literal["consistent", "flagged", "unverifiable", "no_photo"]
EARTH_RADIUS_M = 6_371_008.8  # mean Earth radius (IUGG)


class QualityConfig(StrictModel):
    """Thresholds of the report-quality checks (config/quality.yaml; defaults here)."""

    timezone: str = Field(
        "Asia/Shanghai",
        description="Zone of an EXIF DateTimeOriginal that carries no offset (cameras write local time).",
    )
    max_photo_bytes: int = Field(
        15_000_000, gt=0, description="A larger photo is not decoded (reason photo_unreadable)."
    )
    max_distance_m: float = Field(
        200.0, gt=0, description="Photo GPS farther than this from the reported point is flagged (metres)."
    )
    max_photo_age_s: float = Field(
        86_400.0, gt=0, description="A photo taken more than this long before the report is flagged (seconds)."
    )
    max_clock_skew_s: float = Field(
        900.0, ge=0, description="A photo 'taken' more than this after the report is flagged (seconds)."
    )
    unverifiable_to_verify: bool = Field(
        False,
        description="Send reports whose photo has no EXIF position/time to verification. Off by default: "
        "most messaging apps strip EXIF, and queueing all of them recreates the inspectors' backlog.",
    )
    # 256 bits rather than imagehash's default 64: at 64 bits two frames of one fixed camera with people
    # walking through differ by 0-10 bits (as little as a re-encoded copy); at 256 by 42-50, while a copy
    # re-encoded at JPEG quality 40 and halved stays within 0-4 (tests/unit/cases/test_quality.py).
    hash_size: int = Field(16, ge=4, le=32, description="pHash side: hash_size**2 bits (16 = 256 bits).")
    duplicate_max_bits: int = Field(
        16, ge=0, description="Photos whose hashes differ in at most this many bits are the same photo."
    )
    duplicate_window_s: float = Field(
        7 * 86_400.0, gt=0, description="Recent reports a new photo is compared with (seconds before it)."
    )
    gaming_window_s: float = Field(
        86_400.0, gt=0, description="An account's recent reports the gaming signals count (seconds)."
    )
    ad_categories: tuple[str, ...] = Field(
        ("event:0201",), description="Category keys of ad-type problems (illegal small advertisements)."
    )
    ad_radius_m: float = Field(300.0, gt=0, description="Radius of the ad-cluster signal (metres).")
    ad_max_reports: int = Field(
        5, ge=1, description="Ad-type reports by one account within ad_radius_m above this fire the signal."
    )
    one_place_radius_m: float = Field(
        30.0, gt=0, description="Reports filed from within this of each other count as one place (metres)."
    )
    one_place_max_reports: int = Field(
        5, ge=1, description="Reports by one account from one place above this fire the signal."
    )
    burst_window_s: float = Field(3_600.0, gt=0, description="Window of the burst-rate signal (seconds).")
    burst_max_reports: int = Field(
        10, ge=1, description="Reports by one account or device within burst_window_s above this fire it."
    )
    reused_photo_weight: float = Field(
        0.6, ge=0, le=1, description="Gaming signal of a photo another account already filed."
    )
    verify_score: float = Field(
        0.5, ge=0, le=1, description="A gaming score at or above this sends the report to verification."
    )
    rate_window_s: float = Field(
        3_600.0, gt=0, description="Window of the hard rate limits (seconds)."
    )
    rate_max_per_account: int = Field(
        30, ge=1, description="Reports one account may file within rate_window_s; more are refused (429)."
    )
    rate_max_per_device: int = Field(
        30, ge=1, description="Reports one device may file within rate_window_s; more are refused (429)."
    )
    photo_retention_days: float = Field(
        30.0, gt=0, le=3650,
        description="Days a citizen's photo (and its blurred copy) is kept; `gridsentinel photos sweep` deletes "
        "older ones. The report and its reasons stay.",
    )

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {value!r}") from None
        return value


@dataclass(frozen=True, slots=True)
class Reason:
    """Why a check flagged (or could not check) a report: a stable code and a sentence for people."""

    code: str
    detail: str


@dataclass(frozen=True, slots=True)
class PhotoExif:
    """What a photo's EXIF says about where and when it was taken (each part may be missing)."""

    lat: float | None = None
    lon: float | None = None
    taken_at: float | None = None  # Unix seconds


@dataclass(frozen=True, slots=True)
class PastReport:
    """A recent report the new one is compared with (what the intake keeps of each report)."""

    report_id: str
    reported_at: float
    lat: float
    lon: float
    category_key: str
    account_id: str | None = None
    device_id: str | None = None
    photo_hash: str | None = None  # hex, from :func:`photo_hash`
    filed_lat: float | None = None  # where the reporter stood (photo GPS), when known
    filed_lon: float | None = None


@dataclass(frozen=True, slots=True)
class NewReport:
    """The report being assessed."""

    report_id: str
    reported_at: float
    lat: float
    lon: float
    category_key: str
    account_id: str | None = None
    device_id: str | None = None


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The earlier report a photo repeats, and how many hash bits differ."""

    report_id: str
    account_id: str | None
    bits: int


@dataclass(frozen=True, slots=True)
class Assessment:
    """The decision on one report with every reason, and what the intake keeps for later comparisons."""

    decision: Decision
    location: LocationStatus
    gaming_score: float
    reasons: tuple[Reason, ...]
    duplicate_of: str | None = None
    photo_hash: str | None = None
    exif: PhotoExif | None = None
    distance_m: float | None = None

    def evidence(self) -> dict[str, Any]:
        """The assessment as a Detection's ``evidence['quality']`` (JSON types only)."""
        out: dict[str, Any] = {
            "decision": self.decision,
            "location": self.location,
            "gaming_score": round(self.gaming_score, 3),
            "reasons": [{"code": r.code, "detail": r.detail} for r in self.reasons],
        }
        if self.duplicate_of is not None:
            out["duplicate_of"] = self.duplicate_of
        if self.photo_hash is not None:
            out["photo_hash"] = self.photo_hash
        if self.distance_m is not None:
            out["photo_distance_m"] = round(self.distance_m, 1)
        return out

    def as_past(self, report: NewReport) -> PastReport:
        """This report as a :class:`PastReport` for the next assessments."""
        exif = self.exif or PhotoExif()
        return PastReport(
            report.report_id, report.reported_at, report.lat, report.lon, report.category_key,
            report.account_id, report.device_id, self.photo_hash, exif.lat, exif.lon,
        )


def haversine_m(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance in metres.

    >>> round(haversine_m(31.0, 120.0, 31.001, 120.0), 1)  # 0.001 degree of latitude
    111.2
    """
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * math.asin(min(1.0, math.sqrt(h)))


# --- decoding ---------------------------------------------------------------------------------------------

def _open(photo: bytes, cfg: QualityConfig) -> Image.Image | None:
    """The decoded image, or None when it is too large, not an image, or a decompression bomb."""
    if not photo or len(photo) > cfg.max_photo_bytes:
        return None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(photo))
            img.load()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError,
            ValueError, SyntaxError):  # Pillow raises SyntaxError for some corrupt headers
        return None
    return img


def _degrees(value: Any, ref: Any, negative: str) -> float | None:
    """An EXIF GPS (degrees, minutes, seconds) triple of rationals as signed decimal degrees."""
    try:
        d, m, s = (float(v) for v in value)
    except (TypeError, ValueError, ZeroDivisionError):
        return None
    if not all(math.isfinite(v) for v in (d, m, s)):
        return None
    deg = d + m / 60 + s / 3600
    ref_s = ref.decode("ascii", "ignore") if isinstance(ref, bytes) else str(ref or "")
    return -deg if ref_s.strip().upper().startswith(negative) else deg


def _exif_time(exif_ifd: dict[int, Any], gps: dict[int, Any], tz: ZoneInfo) -> float | None:
    """Capture time: DateTimeOriginal with its OffsetTimeOriginal, else the GPS UTC stamp, else
    DateTimeOriginal read in the configured zone."""
    original = exif_ifd.get(ExifTags.Base.DateTimeOriginal)
    offset = exif_ifd.get(ExifTags.Base.OffsetTimeOriginal)
    local: datetime | None = None
    if isinstance(original, str):
        try:
            local = datetime.strptime(original.strip("\x00 "), "%Y:%m:%d %H:%M:%S")
        except ValueError:
            local = None
    if local is not None and isinstance(offset, str):
        try:
            off = datetime.strptime(offset.strip("\x00 "), "%z").utcoffset()
        except ValueError:
            off = None
        if off is not None:
            return local.replace(tzinfo=timezone(off)).timestamp()
    stamp, date = gps.get(ExifTags.GPS.GPSTimeStamp), gps.get(ExifTags.GPS.GPSDateStamp)
    if isinstance(date, str) and stamp is not None:
        try:
            h, m, s = (float(v) for v in stamp)
            day = datetime.strptime(date.strip("\x00 "), "%Y:%m:%d").replace(tzinfo=UTC)
            return (day + timedelta(hours=h, minutes=m, seconds=s)).timestamp()
        except (TypeError, ValueError, ZeroDivisionError, OverflowError):
            pass
    return local.replace(tzinfo=tz).timestamp() if local is not None else None


def read_exif(img: Image.Image, cfg: QualityConfig) -> PhotoExif | None:
    """GPS position and capture time from a decoded image's EXIF; None when it has neither."""
    exif = img.getexif()
    gps = dict(exif.get_ifd(ExifTags.IFD.GPSInfo))
    exif_ifd = dict(exif.get_ifd(ExifTags.IFD.Exif))
    lat = _degrees(gps.get(ExifTags.GPS.GPSLatitude), gps.get(ExifTags.GPS.GPSLatitudeRef), "S")
    lon = _degrees(gps.get(ExifTags.GPS.GPSLongitude), gps.get(ExifTags.GPS.GPSLongitudeRef), "W")
    if lat is None or lon is None or not (-90 <= lat <= 90 and -180 <= lon <= 180):
        lat = lon = None
    taken_at = _exif_time(exif_ifd, gps, ZoneInfo(cfg.timezone))
    if lat is None and taken_at is None:
        return None
    return PhotoExif(lat, lon, taken_at)


def photo_hash(img: Image.Image, cfg: QualityConfig) -> str:
    """The perceptual hash (hex) of a decoded image, upright as its EXIF orientation says."""
    upright = ImageOps.exif_transpose(img)
    return str(imagehash.phash(upright, hash_size=cfg.hash_size))


def hash_bits(a: str, b: str) -> int | None:
    """Hamming distance of two hex hashes; None when they are of different sizes (other settings)."""
    if len(a) != len(b):
        return None
    return int(imagehash.hex_to_hash(a) - imagehash.hex_to_hash(b))


# --- the checks -------------------------------------------------------------------------------------------

def check_location(exif: PhotoExif | None, report: NewReport,
                   cfg: QualityConfig) -> tuple[LocationStatus, float | None, list[Reason]]:
    """Compare the photo's EXIF position and time with the report: status, distance (m) and reasons."""
    if exif is None:
        return "unverifiable", None, [Reason("exif_missing", "the photo carries no EXIF position or time")]
    reasons: list[Reason] = []
    flagged = False
    distance = None
    if exif.lat is not None and exif.lon is not None:
        distance = haversine_m(exif.lat, exif.lon, report.lat, report.lon)
        if distance > cfg.max_distance_m:
            flagged = True
            reasons.append(Reason("photo_far", f"photo taken {distance:.0f} m from the reported point "
                                               f"(limit {cfg.max_distance_m:.0f} m)"))
    else:
        reasons.append(Reason("exif_no_gps", "the photo's EXIF has no GPS position"))
    if exif.taken_at is not None:
        age = report.reported_at - exif.taken_at
        if age > cfg.max_photo_age_s:
            flagged = True
            reasons.append(Reason("photo_old", f"photo taken {_span(age)} before the report "
                                               f"(limit {_span(cfg.max_photo_age_s)})"))
        elif -age > cfg.max_clock_skew_s:
            flagged = True
            reasons.append(Reason("photo_after_report", f"photo time is {_span(-age)} after the report"))
    else:
        reasons.append(Reason("exif_no_time", "the photo's EXIF has no capture time"))
    if flagged:
        return "flagged", distance, reasons
    if exif.taken_at is None or distance is None:
        return "unverifiable", distance, reasons
    return "consistent", distance, reasons


def find_duplicate(hash_hex: str, report: NewReport, recent: Iterable[PastReport],
                   cfg: QualityConfig) -> Duplicate | None:
    """The earliest recent report (within ``duplicate_window_s`` before this one) whose photo is the same
    photo, by any account; None when there is none."""
    best: tuple[float, Duplicate] | None = None
    for past in recent:
        if past.photo_hash is None or past.report_id == report.report_id:
            continue
        if not 0 <= report.reported_at - past.reported_at <= cfg.duplicate_window_s:
            continue
        bits = hash_bits(hash_hex, past.photo_hash)
        if bits is None or bits > cfg.duplicate_max_bits:
            continue
        if best is None or past.reported_at < best[0]:
            best = (past.reported_at, Duplicate(past.report_id, past.account_id, bits))
    return best[1] if best is not None else None


def _ramp(count: int, limit: int) -> float:
    """0 up to ``limit``; above it, from 0.5 rising to 1 at twice the limit."""
    return 0.0 if count <= limit else min(1.0, count / (2 * limit))


def gaming_signals(report: NewReport, recent: Sequence[PastReport], cfg: QualityConfig,
                   filed_from: tuple[float, float] | None = None,
                   duplicate: Duplicate | None = None) -> tuple[float, list[Reason]]:
    """Gaming score in [0, 1] (noisy-or of the signals that fired) and one reason per signal.

    Counts include the new report. ``filed_from`` is where the reporter stood (the photo's GPS), else the
    reported point is used.
    """
    signals: list[tuple[float, Reason]] = []

    def mine(key: str | None, attr: str, window: float) -> list[PastReport]:
        if key is None:
            return []
        return [p for p in recent if getattr(p, attr) == key and p.report_id != report.report_id
                and 0 <= report.reported_at - p.reported_at <= window]

    account = mine(report.account_id, "account_id", cfg.gaming_window_s)
    if report.category_key in cfg.ad_categories and report.account_id is not None:
        n = 1 + sum(1 for p in account if p.category_key in cfg.ad_categories
                    and haversine_m(p.lat, p.lon, report.lat, report.lon) <= cfg.ad_radius_m)
        if s := _ramp(n, cfg.ad_max_reports):
            signals.append((s, Reason("ad_cluster", f"{n} ad-type reports by this account within "
                                                    f"{cfg.ad_radius_m:.0f} m in {_span(cfg.gaming_window_s)}")))
    here = filed_from or (report.lat, report.lon)
    n = 1 + sum(1 for p in account
                if haversine_m(p.filed_lat if p.filed_lat is not None else p.lat,
                               p.filed_lon if p.filed_lon is not None else p.lon, *here)
                <= cfg.one_place_radius_m)
    if s := _ramp(n, cfg.one_place_max_reports):
        signals.append((s, Reason("one_place", f"{n} reports by this account filed from one place "
                                               f"(within {cfg.one_place_radius_m:.0f} m)")))
    for who, key, attr in (("account", report.account_id, "account_id"), ("device", report.device_id,
                                                                          "device_id")):
        n = 1 + len(mine(key, attr, cfg.burst_window_s))
        if s := _ramp(n, cfg.burst_max_reports):
            signals.append((s, Reason("burst", f"{n} reports by this {who} in {_span(cfg.burst_window_s)} "
                                               f"(limit {cfg.burst_max_reports})")))
    if duplicate is not None and duplicate.account_id != report.account_id and cfg.reused_photo_weight > 0:
        signals.append((cfg.reused_photo_weight,
                        Reason("photo_reused", f"the same photo was filed by another account "
                                               f"(report {duplicate.report_id})")))
    keep = 1.0
    for s, _ in signals:
        keep *= 1 - s
    return 1 - keep, [r for _, r in signals]


def assess(report: NewReport, photo: bytes | None, recent: Sequence[PastReport],
           cfg: QualityConfig) -> Assessment:
    """Run every check on one report and decide: ``verify`` when the location/time is flagged (or
    unverifiable, if so configured), the photo cannot be read, or the gaming score reaches
    ``verify_score``; otherwise ``straight``. A duplicate photo sets ``duplicate_of`` (the intake attaches
    the report to the earlier one) and is not by itself a reason to verify; another account's photo is a
    gaming signal."""
    reasons: list[Reason] = []
    verify = False
    exif: PhotoExif | None = None
    hash_hex: str | None = None
    distance: float | None = None
    duplicate: Duplicate | None = None
    if photo is None:
        location: LocationStatus = "no_photo"
        reasons.append(Reason("no_photo", "the report has no photo"))
    else:
        img = _open(photo, cfg)
        if img is None:
            location = "unverifiable"
            verify = True
            reasons.append(Reason("photo_unreadable", "the photo could not be decoded (or is too large)"))
        else:
            exif = read_exif(img, cfg)
            hash_hex = photo_hash(img, cfg)
            location, distance, found = check_location(exif, report, cfg)
            reasons += found
            verify |= location == "flagged" or (location == "unverifiable" and cfg.unverifiable_to_verify)
            duplicate = find_duplicate(hash_hex, report, recent, cfg)
            if duplicate is not None:
                reasons.append(Reason("duplicate_photo", f"same photo as report {duplicate.report_id} "
                                                         f"({duplicate.bits} bits apart)"))
    filed_from = (exif.lat, exif.lon) if exif is not None and exif.lat is not None and exif.lon is not None \
        else None
    score, gaming = gaming_signals(report, recent, cfg, filed_from, duplicate)
    reasons += gaming
    verify |= score >= cfg.verify_score
    return Assessment(
        decision="verify" if verify else "straight",
        location=location,
        gaming_score=score,
        reasons=tuple(reasons),
        duplicate_of=duplicate.report_id if duplicate is not None else None,
        photo_hash=hash_hex,
        exif=exif,
        distance_m=distance,
    )


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A report refused by a hard rate limit: which key, the reason, and when the oldest counted report
    leaves the window (the client may retry then)."""

    who: Literal["account", "device"]
    reason: Reason
    retry_after_s: float


def rate_limit(report: NewReport, recent: Iterable[PastReport], cfg: QualityConfig) -> RateLimited | None:
    """The first hard rate limit the report would break (per account, then per device), else None.

    Unlike the ``burst`` gaming signal (which sends a report to verification), a report over the rate limit
    is refused and not kept. Counts are of the recent reports, without the new one.

    >>> cfg = QualityConfig(rate_max_per_account=2, rate_window_s=600)
    >>> past = [PastReport(f"r{i}", 1000.0 + i, 31.87, 120.55, "event:0103", account_id="a1") for i in (1, 2)]
    >>> hit = rate_limit(NewReport("r3", 1100.0, 31.87, 120.55, "event:0103", account_id="a1"), past, cfg)
    >>> hit.who, hit.reason.code, hit.retry_after_s
    ('account', 'rate_limit_account', 501.0)
    >>> rate_limit(NewReport("r4", 1700.0, 31.87, 120.55, "event:0103", account_id="a1"), past, cfg) is None
    True
    """
    recent = list(recent)
    checks: tuple[tuple[Literal["account", "device"], str | None, str, int], ...] = (
        ("account", report.account_id, "account_id", cfg.rate_max_per_account),
        ("device", report.device_id, "device_id", cfg.rate_max_per_device),
    )
    for who, key, attr, limit in checks:
        if key is None:
            continue
        times = sorted(p.reported_at for p in recent if getattr(p, attr) == key
                       and p.report_id != report.report_id
                       and 0 <= report.reported_at - p.reported_at < cfg.rate_window_s)
        if len(times) >= limit:
            # the report that must leave the window before one more fits
            retry = times[len(times) - limit] + cfg.rate_window_s - report.reported_at
            detail = (f"this {who} filed {len(times)} reports in the last {_span(cfg.rate_window_s)} "
                      f"(limit {limit}); retry in {_span(max(retry, 1.0))}")
            return RateLimited(who, Reason(f"rate_limit_{who}", detail), max(retry, 1.0))
    return None


def _span(seconds: float) -> str:
    """A duration for people: ``90 s``, ``15 min``, ``3.0 h``, ``2.0 d``."""
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    if seconds < 172_800:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86_400:.1f} d"

