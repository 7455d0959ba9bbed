"""The metric catalogue: canonical metric names, their SenML units, and accepted spellings.

JSON telemetry names a metric with its unit as suffix (``water_level_m``); SenML names it plainly and
gives the unit in ``u``. Both end up as (canonical metric, canonical unit, value in that unit).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Metric:
    name: str
    unit: str  # canonical SenML unit symbol
    json_keys: tuple[str, ...]  # accepted keys in the JSON contract
    lo: float  # physically plausible range; outside it the reading is rejected
    hi: float


METRICS: dict[str, Metric] = {m.name: m for m in (
    Metric("water_level", "m", ("water_level_m", "water_level"), -1.0, 50.0),
    Metric("rain_rate", "mm/h", ("rain_rate_mm_h", "rain_rate"), 0.0, 500.0),
    Metric("tilt", "deg", ("tilt_deg", "tilt"), -360.0, 360.0),
    Metric("pm2_5", "ug/m3", ("pm2_5_ugm3", "pm2_5"), 0.0, 5000.0),
    Metric("pm10", "ug/m3", ("pm10_ugm3", "pm10"), 0.0, 5000.0),
    Metric("laeq", "dB", ("laeq_db", "laeq"), 0.0, 200.0),
    Metric("temperature", "Cel", ("temperature_c", "temperature"), -60.0, 100.0),
    Metric("humidity", "%RH", ("humidity_pct", "humidity"), 0.0, 100.0),
    Metric("battery", "V", ("battery_v", "battery"), 0.0, 60.0),
    # device housekeeping (device health, not detection): SenML's %EL is the battery's remaining energy level
    Metric("battery_level", "%EL", ("battery_pct", "battery_level"), 0.0, 100.0),
    Metric("rssi", "dBm", ("rssi_dbm", "rssi", "signal_dbm"), -150.0, 20.0),
)}

JSON_KEYS: dict[str, Metric] = {key: m for m in METRICS.values() for key in m.json_keys}

# Unit conversions into the canonical unit: (from unit, to unit) -> factor.
_FACTORS: dict[tuple[str, str], float] = {
    ("cm", "m"): 0.01, ("mm", "m"): 0.001, ("rad", "deg"): 57.29577951308232,
    ("mm/s", "mm/h"): 3600.0, ("m/s", "mm/h"): 3_600_000.0, ("mg/m3", "ug/m3"): 1000.0,
}


def convert(value: float, unit: str, metric: Metric) -> float | None:
    """Value in the metric's canonical unit, or None when the unit cannot be converted."""
    if unit == metric.unit:
        return value
    factor = _FACTORS.get((unit, metric.unit))
    return None if factor is None else value * factor
