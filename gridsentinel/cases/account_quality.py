"""Report quality per reporting account (the dashboard's "report quality" view): what each account filed over a
period, how the intake decided, its gaming score and the signals behind it, the location/EXIF flags and the
photos that repeat earlier ones. Pure: the caller passes the reports (``citizen_reports`` rows).

>>> from gridsentinel.cases.report_store import CitizenReport
>>> def r(i, account, state, score, codes, dup=None):
...     return CitizenReport(report_id=i, detection_id="citizen:" + i, received_at=float(len(i)), reporter="app",
...         lat=0, lon=0, grid_code="320582004001001", category_key="event:0201", decision="straight",
...         state=state, gaming_score=score, quality={"reasons": [{"code": c} for c in codes]}, detection={},
...         description="", account_id=account, duplicate_of=dup)
>>> [a] = by_account([r("a1", "acct", "accepted", 0.2, ["exif_missing"]),
...                   r("a22", "acct", "held", 0.7, ["ad_cluster", "photo_far"]),
...                   r("a333", "acct", "duplicate", 0.0, ["duplicate_photo"], dup="a1")])
>>> a.reports, a.gaming_score_max, a.gaming_signals, a.location_flags, a.held_ids, a.duplicate_photos
(3, 0.7, {'ad_cluster': 1}, {'exif_missing': 1, 'photo_far': 1}, ['a22'], [('a333', 'a1')])
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from gridsentinel.cases.report_store import CitizenReport

GAMING = frozenset({"ad_cluster", "one_place", "burst", "photo_reused"})
LOCATION = frozenset({"photo_far", "photo_old", "photo_after_report", "exif_missing", "exif_no_gps",
                      "exif_no_time", "photo_unreadable"})


@dataclass(frozen=True, slots=True)
class AccountQuality:
    account: str
    reports: int
    states: dict[str, int]
    gaming_score_max: float
    gaming_score_last: float
    gaming_signals: dict[str, int]
    location_flags: dict[str, int]
    duplicate_photos: list[tuple[str, str]]
    last_report_at: float
    held_ids: list[str]


def account_of(report: CitizenReport) -> tuple[str, str]:
    """(kind, value) naming who filed a report: the account, else the device, else anonymous."""
    if report.account_id:
        return "account", report.account_id
    if report.device_id:
        return "device", report.device_id
    return "anonymous", "anonymous"


def by_account(reports: Iterable[CitizenReport],
               show: Callable[[str, str], str] = lambda kind, value: value if kind == "account"
               else f"{kind}:{value}" if kind != "anonymous" else value) -> list[AccountQuality]:
    """One record per account (``show`` turns (kind, value) into what is displayed: a pseudonym for a role
    without identity rights), highest gaming score first, then most reports."""
    groups: dict[tuple[str, str], list[CitizenReport]] = {}
    for report in sorted(reports, key=lambda r: (r.received_at, r.report_id)):
        groups.setdefault(account_of(report), []).append(report)
    out = []
    for (kind, value), mine in groups.items():
        codes = [[c.get("code") for c in r.quality.get("reasons", []) if isinstance(c, dict)] for r in mine]
        out.append(AccountQuality(
            account=show(kind, value), reports=len(mine), states=dict(Counter(r.state for r in mine)),
            gaming_score_max=round(max(r.gaming_score for r in mine), 3),
            gaming_score_last=round(mine[-1].gaming_score, 3),
            gaming_signals=dict(Counter(c for cs in codes for c in set(cs) if c in GAMING)),
            location_flags=dict(sorted(Counter(c for cs in codes for c in set(cs) if c in LOCATION).items())),
            duplicate_photos=[(r.report_id, r.duplicate_of) for r in mine if r.duplicate_of],
            last_report_at=mine[-1].received_at,
            held_ids=[r.report_id for r in mine if r.state == "held"]))
    return sorted(out, key=lambda a: (-a.gaming_score_max, -a.reports, a.account))
