"""Report quality on real photos: frames of real footage (tests/fixtures/vision, derived from vtest.avi and
tree.avi; see its ATTRIBUTION.md), encoded as JPEG here with or without EXIF GPS and time."""

from __future__ import annotations

import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import cv2
import numpy as np
import pytest
from PIL import ExifTags, Image

from gridsentinel.cases.quality import (
    NewReport,
    PastReport,
    QualityConfig,
    assess,
    gaming_signals,
    haversine_m,
)
from gridsentinel.core.config import load_yaml
from gridsentinel.errors import ConfigError

ROOT = Path(__file__).resolve().parents[3]
VISION = ROOT / "tests" / "fixtures" / "vision"
FOOTAGE = ROOT.parent / "shared" / "datasets" / "video"
CFG = QualityConfig()
TZ = ZoneInfo("Asia/Shanghai")
NOW = datetime(2025, 6, 9, 10, 0, tzinfo=TZ).timestamp()
LAT, LON = 31.87225, 120.55053


def frame(name: str) -> np.ndarray:
    img = cv2.imread(str(VISION / name))
    assert img is not None, name
    return img


def dms(value: float) -> tuple[float, float, float]:
    value = abs(value)
    d = int(value)
    m = int((value - d) * 60)
    return float(d), float(m), round((value - d - m / 60) * 3600, 4)


def photo(bgr: np.ndarray, *, quality: int = 85, scale: float = 1.0, gps: tuple[float, float] | None = None,
          taken: datetime | None = None, offset: str | None = None) -> bytes:
    """A JPEG of a real frame, optionally resized, with EXIF GPS / DateTimeOriginal when given."""
    if scale != 1.0:
        bgr = cv2.resize(bgr, (int(bgr.shape[1] * scale), int(bgr.shape[0] * scale)), interpolation=cv2.INTER_AREA)
    img = Image.fromarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB))
    exif = Image.Exif()
    if gps is not None:
        exif[ExifTags.IFD.GPSInfo] = {
            ExifTags.GPS.GPSLatitudeRef: "N" if gps[0] >= 0 else "S",
            ExifTags.GPS.GPSLatitude: dms(gps[0]),
            ExifTags.GPS.GPSLongitudeRef: "E" if gps[1] >= 0 else "W",
            ExifTags.GPS.GPSLongitude: dms(gps[1]),
        }
    if taken is not None:
        tags: dict[int, Any] = {ExifTags.Base.DateTimeOriginal: taken.strftime("%Y:%m:%d %H:%M:%S")}
        if offset is not None:
            tags[ExifTags.Base.OffsetTimeOriginal] = offset
        exif[ExifTags.IFD.Exif] = tags
    buf = io.BytesIO()
    img.save(buf, "JPEG", quality=quality, exif=exif)
    return buf.getvalue()


def local(hours_before: float = 0.0) -> datetime:
    """A naive local (Asia/Shanghai) camera time, ``hours_before`` the report."""
    return datetime.fromtimestamp(NOW - hours_before * 3600, TZ).replace(tzinfo=None)


def report(rid: str = "r1", *, at: float = NOW, lat: float = LAT, lon: float = LON,
           category: str = "event:0103", account: str | None = "acct-1", device: str | None = None) -> NewReport:
    return NewReport(rid, at, lat, lon, category, account, device)


def codes(a: Any) -> list[str]:
    return [r.code for r in a.reasons]


# --- location and time from EXIF ----------------------------------------------------------------------

def test_photo_taken_at_the_reported_point_just_before_goes_straight():
    jpeg = photo(frame("vtest_people/0000.jpg"), gps=(LAT + 0.0003, LON), taken=local(0.2))
    a = assess(report(), jpeg, [], CFG)
    assert a.decision == "straight"
    assert a.location == "consistent"
    assert a.distance_m is not None and 30 < a.distance_m < 35  # 0.0003 degree of latitude
    assert a.exif is not None and a.exif.taken_at == pytest.approx(NOW - 720)
    assert a.reasons == ()


def test_photo_taken_a_kilometre_away_is_flagged_with_the_distance():
    jpeg = photo(frame("vtest_people/0140.jpg"), gps=(LAT + 0.009, LON), taken=local(0.1))
    a = assess(report(), jpeg, [], CFG)
    assert a.decision == "verify"
    assert a.location == "flagged"
    assert codes(a) == ["photo_far"]
    assert "1001 m" in a.reasons[0].detail and "limit 200 m" in a.reasons[0].detail


def test_southern_and_western_coordinates_keep_their_sign():
    jpeg = photo(frame("vtest_people/0140.jpg"), gps=(-33.8568, -70.6483), taken=local(0.1))
    a = assess(report(lat=-33.8568, lon=-70.6483), jpeg, [], CFG)
    assert a.location == "consistent" and a.distance_m is not None and a.distance_m < 1


def test_photo_taken_days_before_the_report_is_flagged():
    jpeg = photo(frame("vtest_people/0290.jpg"), gps=(LAT, LON), taken=local(72))
    a = assess(report(), jpeg, [], CFG)
    assert (a.decision, a.location, codes(a)) == ("verify", "flagged", ["photo_old"])
    assert "3.0 d before" in a.reasons[0].detail


def test_the_age_limit_is_configurable():
    jpeg = photo(frame("vtest_people/0290.jpg"), gps=(LAT, LON), taken=local(72))
    assert assess(report(), jpeg, [], CFG.model_copy(update={"max_photo_age_s": 4 * 86400})).decision == "straight"


def test_photo_time_after_the_report_is_flagged():
    jpeg = photo(frame("vtest_people/0290.jpg"), gps=(LAT, LON), taken=local(-2))
    assert codes(assess(report(), jpeg, [], CFG)) == ["photo_after_report"]


def test_offset_time_original_wins_over_the_configured_zone():
    # 09:50 written by a camera set to UTC is 17:50 in Shanghai: after the 10:00 report.
    jpeg = photo(frame("vtest_people/0440.jpg"), gps=(LAT, LON), taken=local(1 / 6), offset="+00:00")
    a = assess(report(), jpeg, [], CFG)
    assert a.exif is not None and a.exif.taken_at == pytest.approx(NOW - 600 + 8 * 3600)
    assert codes(a) == ["photo_after_report"]


def test_photo_without_exif_is_unverifiable_not_an_error():
    jpeg = photo(frame("vtest_people/0590.jpg"))
    a = assess(report(), jpeg, [], CFG)
    assert (a.decision, a.location, codes(a)) == ("straight", "unverifiable", ["exif_missing"])
    assert a.photo_hash is not None
    strict = CFG.model_copy(update={"unverifiable_to_verify": True})
    assert assess(report(), jpeg, [], strict).decision == "verify"


def test_exif_with_time_but_no_gps_is_unverifiable_with_the_reason():
    jpeg = photo(frame("vtest_people/0590.jpg"), taken=local(0.5))
    a = assess(report(), jpeg, [], CFG)
    assert (a.location, codes(a)) == ("unverifiable", ["exif_no_gps"])


def test_unreadable_photo_goes_to_verification_and_no_photo_is_recorded():
    a = assess(report(), b"\xff\xd8 not really a jpeg", [], CFG)
    assert (a.decision, codes(a)) == ("verify", ["photo_unreadable"])
    big = CFG.model_copy(update={"max_photo_bytes": 1000})
    assert codes(assess(report(), photo(frame("tree_clip/0000.jpg")), [], big)) == ["photo_unreadable"]
    none = assess(report(), None, [], CFG)
    assert (none.decision, none.location, codes(none)) == ("straight", "no_photo", ["no_photo"])


# --- near-duplicate photos --------------------------------------------------------------------------------

def first_report(jpeg: bytes, account: str = "acct-1") -> PastReport:
    new = report("r1", at=NOW - 3600, account=account)
    return assess(new, jpeg, [], CFG).as_past(new)


def test_a_reposted_photo_reencoded_and_resized_is_a_duplicate_of_the_first_report():
    original = photo(frame("vtest_people/0000.jpg"), quality=90, gps=(LAT, LON), taken=local(1.1))
    repost = photo(frame("vtest_people/0000.jpg"), quality=40, scale=0.5)  # what a messaging app sends on
    assert len(repost) < len(original) / 3
    past = first_report(original, account="acct-1")
    same = assess(report("r2", account="acct-1"), repost, [past], CFG)
    assert same.duplicate_of == "r1"
    assert "duplicate_photo" in codes(same) and "photo_reused" not in codes(same)
    assert same.decision == "straight"  # the intake attaches it to r1; filing twice is not suspicious
    other = assess(report("r3", account="acct-2"), repost, [past], CFG)
    assert other.duplicate_of == "r1"
    assert codes(other) == ["exif_missing", "duplicate_photo", "photo_reused"]
    assert other.gaming_score == pytest.approx(0.6) and other.decision == "verify"


def test_a_frame_of_another_clip_is_not_a_duplicate():
    past = first_report(photo(frame("vtest_people/0000.jpg")))
    a = assess(report("r2"), photo(frame("tree_clip/0000.jpg")), [past], CFG)
    assert a.duplicate_of is None and "duplicate_photo" not in codes(a)


def test_another_moment_of_the_same_fixed_camera_is_not_a_duplicate():
    past = first_report(photo(frame("vtest_people/0000.jpg")))
    assert assess(report("r2"), photo(frame("vtest_people/0740.jpg")), [past], CFG).duplicate_of is None


def test_duplicates_are_only_searched_within_the_window_and_the_earliest_wins():
    jpeg = photo(frame("vtest_people/0440.jpg"))
    h = assess(report(), jpeg, [], CFG).photo_hash
    old = PastReport("old", NOW - CFG.duplicate_window_s - 1, LAT, LON, "event:0103", "a", photo_hash=h)
    assert assess(report("r9"), jpeg, [old], CFG).duplicate_of is None
    recent = [PastReport(f"p{i}", NOW - 100 * i, LAT, LON, "event:0103", "a", photo_hash=h) for i in (1, 3, 2)]
    assert assess(report("r9"), jpeg, recent, CFG).duplicate_of == "p3"


@pytest.mark.skipif(not (FOOTAGE / "vtest.avi").exists(), reason="the shared footage folder is not here")
def test_a_frame_grabbed_from_the_footage_matches_its_reposted_copy():
    cap = cv2.VideoCapture(str(FOOTAGE / "vtest.avi"))
    cap.set(cv2.CAP_PROP_POS_FRAMES, 500)
    ok, grabbed = cap.read()
    cap.release()
    assert ok
    past = first_report(photo(grabbed, quality=95, gps=(LAT, LON), taken=local(1.5)))
    assert assess(report("r2"), photo(grabbed, quality=35, scale=0.4), [past], CFG).duplicate_of == "r1"
    assert assess(report("r2"), photo(frame("tree_clip/0030.jpg")), [past], CFG).duplicate_of is None


# --- gaming -------------------------------------------------------------------------------------------------

def history(n: int, *, category: str = "event:0201", step_s: float = 600, spread_m: float = 0.0,
            account: str = "acct-1", device: str | None = None) -> list[PastReport]:
    """``n`` earlier reports of one account, ``step_s`` apart, spread ``spread_m`` north of each other."""
    return [PastReport(f"h{i}", NOW - step_s * (i + 1), LAT + i * spread_m / 111_195, LON, category, account,
                       device) for i in range(n)]


def test_many_small_ad_reports_in_a_small_radius_score_as_gaming():
    past = history(7, spread_m=40)  # 7 earlier + this one = 8 within 280 m, filed from 8 different places
    score, reasons = gaming_signals(report(category="event:0201"), past, CFG)
    assert [r.code for r in reasons] == ["ad_cluster"]
    assert score == pytest.approx(8 / 10)
    assert "8 ad-type reports" in reasons[0].detail


def test_the_same_count_of_another_category_or_farther_apart_is_not_an_ad_cluster():
    assert gaming_signals(report(category="event:0103"), history(7, category="event:0103", spread_m=40),
                          CFG) == (0.0, [])
    assert gaming_signals(report(category="event:0201"), history(7, spread_m=400), CFG) == (0.0, [])


def test_another_accounts_reports_do_not_count_against_this_one():
    assert gaming_signals(report(category="event:0201", account="acct-2"), history(7, spread_m=40), CFG)[0] == 0


def test_everything_filed_from_one_place_is_a_signal_even_for_distant_points():
    # Eight reports of points up to 2 km apart, each photo taken from the same balcony.
    balcony = (LAT, LON)
    past = [PastReport(f"h{i}", NOW - 600 * (i + 1), LAT + 0.002 * i, LON, "event:0103", "acct-1",
                       filed_lat=balcony[0], filed_lon=balcony[1]) for i in range(7)]
    score, reasons = gaming_signals(report(lat=LAT + 0.018), past, CFG, filed_from=balcony)
    assert [r.code for r in reasons] == ["one_place"] and score == pytest.approx(0.8)


def test_a_burst_is_counted_per_account_and_per_device():
    past = history(11, category="event:0103", step_s=120, spread_m=100, device="dev-9")
    _, reasons = gaming_signals(report(account="acct-1", device="dev-9"), past, CFG)
    assert [r.detail for r in reasons] == [
        "12 reports by this account in 60 min (limit 10)", "12 reports by this device in 60 min (limit 10)"]
    # A new account on the same phone is still caught by the device.
    _, reasons = gaming_signals(report(account="fresh", device="dev-9"), past, CFG)
    assert [r.detail for r in reasons] == ["12 reports by this device in 60 min (limit 10)"]
    # Spread over a day the same number is no burst.
    assert gaming_signals(report(), history(11, category="event:0103", step_s=3600, spread_m=100), CFG) == (0.0, [])


def test_the_gaming_score_stays_in_0_1_and_sends_the_report_to_verification():
    past = history(30, step_s=60, device="dev-1")
    a = assess(report(category="event:0201", device="dev-1"), None, past, CFG)
    assert 0.99 < a.gaming_score <= 1.0
    assert a.decision == "verify"
    assert codes(a) == ["no_photo", "ad_cluster", "one_place", "burst", "burst"]


# --- config and what the case keeps -------------------------------------------------------------------------

def test_the_shipped_config_file_holds_the_defaults():
    assert load_yaml(ROOT / "config" / "quality.yaml", QualityConfig) == QualityConfig()


def test_a_bad_config_names_the_key(tmp_path: Path):
    bad = tmp_path / "quality.yaml"
    bad.write_text("max_distance_m: -5\ntimezone: Mars/Olympus\nduplicate_bits: 3\n")
    with pytest.raises(ConfigError) as err:
        load_yaml(bad, QualityConfig)
    text = str(err.value)
    assert "max_distance_m" in text and "Mars/Olympus" in text and "duplicate_bits" in text


def test_the_assessment_goes_into_evidence_as_json_with_every_reason():
    past = first_report(photo(frame("vtest_people/0000.jpg")), account="acct-1")
    jpeg = photo(frame("vtest_people/0000.jpg"), quality=50, gps=(LAT + 0.009, LON), taken=local(0.1))
    a = assess(report("r2", account="acct-2"), jpeg, [past], CFG)
    ev = json.loads(json.dumps(a.evidence()))
    assert ev["decision"] == "verify" and ev["location"] == "flagged" and ev["duplicate_of"] == "r1"
    assert [r["code"] for r in ev["reasons"]] == ["photo_far", "duplicate_photo", "photo_reused"]
    assert ev["photo_distance_m"] == pytest.approx(1000.8, abs=0.5)
    assert len(ev["photo_hash"]) == 64  # 256 bits in hex
    kept = a.as_past(report("r2", account="acct-2"))
    assert kept.filed_lat == pytest.approx(LAT + 0.009) and kept.photo_hash == a.photo_hash


def test_haversine_is_symmetric_and_zero_on_the_same_point():
    assert haversine_m(LAT, LON, LAT, LON) == 0
    assert haversine_m(LAT, LON, 31.0, 121.0) == pytest.approx(haversine_m(31.0, 121.0, LAT, LON))
