"""Daily rainfall from the city's own rain gauges (their ``rain_rate`` readings in InfluxDB), for the hotspot
forecast's rain features (``forecast.RAIN_FEATURES``).

InfluxDB averages each gauge's readings per clock hour (``aggregateWindow``); here each gauge's hourly means are
put on the city's local days and a day's rainfall is the mean of its hours' rates (mm/h) times 24, so a gauge
that misses a few reports still gives a day; the city's figure is the mean over the gauges that reported that
day. A day no gauge reported is left out (the forecast sees NaN: unknown, not dry).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from gridsentinel.settings import Settings

log = logging.getLogger(__name__)

RAIN_METRIC = "rain_rate"  # mm/h (SenML "mm/h"), as rain gauges publish it
MIN_HOURS = 6  # a gauge's day counts when it reported in at least this many of its hours


def daily_totals(hourly: Iterable[tuple[str, float, float]], tz: str, min_hours: int = MIN_HOURS) -> dict[date, float]:
    """City-wide rainfall per local day (mm) from ``(gauge, hour start as Unix s, mean rate in mm/h)`` rows.

    >>> t0 = datetime(2026, 7, 1, tzinfo=ZoneInfo("Asia/Shanghai")).timestamp()
    >>> rows = [("g1", t0 + h * 3600, 2.0) for h in range(24)] + [("g2", t0 + h * 3600, 0.0) for h in range(12)]
    >>> daily_totals(rows, "Asia/Shanghai")
    {datetime.date(2026, 7, 1): 24.0}
    >>> daily_totals(rows[:3], "Asia/Shanghai")  # three hours of one gauge: not a day
    {}
    """
    zone = ZoneInfo(tz)
    per_gauge_day: dict[tuple[str, date], list[float]] = defaultdict(list)
    for gauge, hour_start, rate in hourly:
        if rate == rate and rate >= 0:  # NaN or a negative rate (a broken gauge) is no rainfall
            per_gauge_day[(gauge, datetime.fromtimestamp(hour_start, zone).date())].append(rate)
    per_day: dict[date, list[float]] = defaultdict(list)
    for (_, day), rates in per_gauge_day.items():
        if len(rates) >= min_hours:
            per_day[day].append(sum(rates) / len(rates) * 24.0)
    return {day: sum(v) / len(v) for day, v in sorted(per_day.items())}


def query_hourly_rain(settings: Settings, start: float, stop: float,
                      bucket: str | None = None) -> list[tuple[str, float, float]]:
    """Each rain gauge's mean ``rain_rate`` per clock hour between ``start`` and ``stop`` (Unix s) in InfluxDB:
    ``(device, hour start, mm/h)``. Raises what the client raises when InfluxDB cannot answer."""
    from influxdb_client import InfluxDBClient

    flux = (
        f'from(bucket: "{bucket or settings.influx_bucket}")'
        f" |> range(start: time(v: {int(start * 1e9)}), stop: time(v: {int(stop * 1e9)}))"
        f' |> filter(fn: (r) => r._measurement == "reading" and r._field == "value" and r.metric == "{RAIN_METRIC}")'
        ' |> group(columns: ["device"])'
        ' |> aggregateWindow(every: 1h, fn: mean, createEmpty: false, timeSrc: "_start")'
    )
    out: list[tuple[str, float, float]] = []
    with InfluxDBClient(url=settings.influx_url, token=settings.influx_token, org=settings.influx_org,
                        timeout=30_000) as client:
        for table in client.query_api().query(flux):
            for rec in table.records:
                out.append((str(rec.values.get("device")), rec.get_time().timestamp(), float(rec.get_value())))
    return out


def city_rain(settings: Settings, tz: str, first: date, last: date,
              bucket: str | None = None) -> dict[date, float] | None:
    """Rainfall per local day from ``first`` to ``last`` (included), or None when InfluxDB cannot be asked
    (logged: the forecast then goes without rain) or no gauge reported in the period (a city without gauges)."""
    zone = ZoneInfo(tz)
    start = datetime.combine(first, time.min, zone).timestamp()
    stop = datetime.combine(last + timedelta(days=1), time.min, zone).timestamp()
    try:
        hourly = query_hourly_rain(settings, start, stop, bucket)
    except Exception as exc:  # the client raises urllib3, HTTP and API errors alike: all mean "no rain data now"
        log.warning("rain gauges not read from InfluxDB (%s): the forecast goes without rain", exc)
        return None
    totals = daily_totals(hourly, tz)
    return totals or None


def rain_source(settings: Settings, tz: str) -> Callable[[date, date], dict[date, float] | None]:
    """:func:`city_rain` on ``settings``' InfluxDB, as the forecast's callers take it (``model_store.RainSource``)."""
    return lambda first, last: city_rain(settings, tz, first, last)
