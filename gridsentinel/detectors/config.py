"""Detector config (``config/detectors.yaml``): models, readable validation errors, JSON Schema, resolver.

Settings are per device kind; ``grid_overrides`` (keyed by a grid-code prefix, the longer prefix winning)
and ``device_overrides`` (keyed by device id) change only the fields they name. Every detector settings
model mirrors its detector's constructor arguments, so ``registry.create(name, **params)`` builds it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, ValidationError, model_validator

from gridsentinel.core.config import StrictModel, format_validation_error, read_yaml, short_value
from gridsentinel.errors import ConfigError

DeviceKind = Literal["drain_level", "rain_gauge", "cover_tilt", "air_quality", "noise"]
SeverityName = Literal["advisory", "warning", "alarm", "critical"]
DEVICE_KINDS: tuple[str, ...] = ("drain_level", "rain_gauge", "cover_tilt", "air_quality", "noise")

_SECONDS_MAX = 30 * 86400.0


class _DetectorSettings(StrictModel):
    enabled: bool = Field(True, description="Run this detector for the device (false switches it off).")


class ThresholdSettings(_DetectorSettings):
    enter: float = Field(1.0, ge=-1e9, le=1e9, description="Level that starts an incident, in metric units.")
    exit: float = Field(0.8, ge=-1e9, le=1e9, description="Level that ends it (hysteresis), in metric units.")
    hold_s: float = Field(0.0, ge=0, le=_SECONDS_MAX, description="Seconds the level must hold first.")
    min_samples: int = Field(1, ge=1, le=1000, description="Readings the level must hold for first.")
    direction: Literal["above", "below"] = Field("above", description="Alarm above or below the level.")
    severity: SeverityName = Field("warning", description="Severity of the detection.")
    cooldown_s: float = Field(0.0, ge=0, le=_SECONDS_MAX, description="Quiet seconds before it clears.")
    kind: str = Field("threshold", pattern=r"^[a-z][a-z0-9_]{0,63}$", description="Finding kind to emit.")

    @model_validator(mode="after")
    def _exit_inside(self) -> ThresholdSettings:
        # a partial override names one of them; the merged settings are checked again with both
        if not {"enter", "exit"} <= self.model_fields_set:
            return self
        if (self.direction == "above" and self.exit > self.enter) or (
                self.direction == "below" and self.exit < self.enter):
            raise ValueError(f"exit ({self.exit}) must not be past enter ({self.enter}) for direction "
                             f"{self.direction!r}")
        return self


class RateOfChangeSettings(_DetectorSettings):
    max_rate: float = Field(0.05, gt=0, le=1e9, description="Rate (units per per_s) that starts an incident.")
    per_s: float = Field(60.0, gt=0, le=86400, description="Time unit of max_rate, in seconds.")
    window_s: float = Field(600.0, gt=0, le=86400, description="Seconds of readings the slope is fitted to.")
    direction: Literal["rise", "fall", "both"] = Field("rise", description="Which change counts.")
    hold_s: float = Field(0.0, ge=0, le=_SECONDS_MAX, description="Seconds the rate must hold first.")
    cooldown_s: float = Field(900.0, ge=0, le=_SECONDS_MAX, description="Quiet seconds before it clears.")
    severity: SeverityName = Field("warning", description="Severity of the detection.")


class RobustSettings(_DetectorSettings):
    method: Literal["mad", "ewma"] = Field("mad", description="Median/MAD window or EWMA mean/deviation.")
    window: int = Field(60, ge=5, le=10000, description="Readings in the median/MAD window.")
    alpha: float = Field(0.05, gt=0, le=1, description="EWMA smoothing factor.")
    warmup: int = Field(10, ge=1, le=10000, description="Readings learnt before scoring starts.")
    min_scale: float = Field(1e-6, gt=0, le=1e9, description="Smallest spread, in metric units.")
    warn_z: float = Field(5.0, gt=0, le=1000, description="Robust z-score for a warning.")
    alarm_z: float = Field(8.0, gt=0, le=1000, description="Robust z-score for an alarm.")
    hold_s: float = Field(0.0, ge=0, le=_SECONDS_MAX, description="Seconds the score must hold first.")
    cooldown_s: float = Field(900.0, ge=0, le=_SECONDS_MAX, description="Quiet seconds before it clears.")


class SeasonalSettings(_DetectorSettings):
    period: Literal["day", "week"] = Field("day", description="Baseline per time of day or hour of week.")
    slot_s: float = Field(3600.0, ge=60, le=86400, description="Width of a baseline slot, in seconds.")
    utc_offset_s: float = Field(28800.0, ge=-50400, le=50400, description="Local time offset (China 28800).")
    alpha: float = Field(0.2, gt=0, le=1, description="EWMA smoothing factor per slot.")
    warmup: int = Field(3, ge=1, le=1000, description="Readings a slot needs before it scores.")
    min_scale: float = Field(1e-6, gt=0, le=1e9, description="Smallest spread, in metric units.")
    warn_z: float = Field(6.0, gt=0, le=1000, description="Deviation (in slot spreads) for a warning.")
    alarm_z: float = Field(10.0, gt=0, le=1000, description="Deviation (in slot spreads) for an alarm.")
    hold_s: float = Field(0.0, ge=0, le=_SECONDS_MAX, description="Seconds the score must hold first.")
    cooldown_s: float = Field(3600.0, ge=0, le=_SECONDS_MAX, description="Quiet seconds before it clears.")


class FlatlineSettings(_DetectorSettings):
    min_duration_s: float = Field(21600.0, gt=0, le=_SECONDS_MAX, description="Seconds unchanged = stuck.")
    tolerance: float = Field(0.0, ge=0, le=1e9, description="Change still counted as none.")
    severity: SeverityName = Field("advisory", description="Severity of the detection.")


class DropoutSettings(_DetectorSettings):
    expected_interval_s: float = Field(300.0, gt=0, le=_SECONDS_MAX,
                                       description="Registry's expected reporting interval, seconds.")
    misses: float = Field(3.0, ge=1, le=1000, description="Missed intervals before the device is offline.")
    severity: SeverityName = Field("warning", description="Severity of the detection.")


class ForecastSettings(_DetectorSettings):
    level: float = Field(1.0, ge=-1e9, le=1e9, description="Level whose arrival is forecast, metric units.")
    horizon_s: float = Field(1800.0, gt=0, le=_SECONDS_MAX, description="Warn when it arrives sooner.")
    window_s: float = Field(900.0, gt=0, le=86400, description="Seconds of readings the trend is fitted to.")
    min_points: int = Field(3, ge=2, le=64, description="Readings needed before forecasting.")
    severity: SeverityName = Field("warning", description="Severity of the detection.")
    cooldown_s: float = Field(900.0, ge=0, le=_SECONDS_MAX, description="Quiet seconds before it clears.")


class NoveltySettings(_DetectorSettings):
    lo: float | None = Field(None, ge=-1e12, le=1e12, description="Expected minimum (else learnt online).")
    hi: float | None = Field(None, ge=-1e12, le=1e12, description="Expected maximum (else learnt online).")


class LikelihoodSettings(_DetectorSettings):
    lo: float | None = Field(None, ge=-1e12, le=1e12, description="Expected minimum (else learnt online).")
    hi: float | None = Field(None, ge=-1e12, le=1e12, description="Expected maximum (else learnt online).")
    bins: int = Field(6, ge=2, le=64, description="Levels the scaled value is quantised into.")
    daily: bool = Field(True, description="Also score a level that is new for its time of day.")
    daily_r2: float = Field(0.5, ge=0, le=1, description="Share of the value's variance the time of day must "
                                                         "explain before the time-of-day part may score.")
    slot_s: float = Field(3600.0, ge=60, le=86400, description="Width of a time-of-day slot, in seconds.")
    utc_offset_s: float = Field(0.0, ge=-50400, le=50400, description="Local time offset for the time of day.")
    short_alpha: float = Field(0.5, gt=0, le=1, description="EWMA weight of the recent raw surprise.")
    long_alpha: float = Field(0.001, gt=0, le=1, description="EW weight of the long-run surprise statistics.")
    p_fire: float = Field(1e-4, gt=0, lt=1, description="Tail probability at which an incident opens.")
    refractory: int = Field(150, ge=0, le=100000, description="Readings held quiet after an incident opens.")
    warmup: int = Field(30, ge=0, le=100000, description="Readings learnt before anything can score.")
    stats: Literal["recent", "history"] = Field(
        "history", description="Surprise statistics: the whole history's, or recent ones (EW, long_alpha).")
    discount_looks: bool = Field(True, description="Lower the surprise by log10 of the 1/long_alpha-row "
                                                   "stretches seen (a long watch sees more chance surprises).")


class DrainageLevelSettings(_DetectorSettings):
    depth_m: float = Field(3.0, gt=0.1, le=30, description="Manhole depth, invert to rim, in metres.")
    warn_fill: float = Field(0.8, gt=0, le=1, description="Fill ratio (level/depth) for a warning.")
    alarm_freeboard_m: float = Field(0.3, ge=0, le=10, description="Freeboard (m below rim) for an alarm.")
    hysteresis: float = Field(0.05, ge=0, le=0.5, description="Fill ratio to fall below a level to leave it.")
    hold_samples: int = Field(2, ge=1, le=100, description="Readings a level must persist (noise filter).")
    cooldown_s: float = Field(1800.0, ge=0, le=_SECONDS_MAX, description="Quiet seconds before it clears.")
    fast_rise_m_per_min: float = Field(0.02, gt=0, le=10, description="Rise rate (m/min) that alarms.")
    rise_min_fill: float = Field(0.5, ge=0, le=1, description="Rise alarms only above it.")
    forecast_horizon_s: float = Field(1800.0, ge=0, le=86400, description="Alarm when the rim is this near.")
    trend_window_s: float = Field(1200.0, gt=0, le=86400, description="Seconds the rise trend is fitted to.")
    rain_threshold_mm_h: float = Field(2.0, gt=0, le=500, description="Rain rate (mm/h) that counts as rain.")
    rain_window_s: float = Field(3600.0, gt=0, le=86400, description="Rain counts for this long after.")
    rain_warn_fill: float = Field(0.6, gt=0, le=1, description="Fill ratio that warns while it rains.")
    dry_high_fill: float = Field(0.5, gt=0, le=1, description="Dry-weather fill that suggests a blockage.")
    dry_hold_s: float = Field(3600.0, ge=0, le=_SECONDS_MAX, description="Seconds it must last first.")


class CoverTiltSettings(_DetectorSettings):
    alarm_deg: float = Field(10.0, gt=0, le=90, description="Tilt angle (degrees) that alarms.")
    exit_deg: float | None = Field(None, ge=0, le=90, description="Angle that ends it (default 0.8·alarm).")
    hold_s: float = Field(2.0, ge=0, le=3600, description="Seconds held before alarming (traffic filter).")
    critical_deg: float = Field(90.0, gt=0, le=180, description="Angle that is critical at once.")
    cooldown_s: float = Field(600.0, ge=0, le=_SECONDS_MAX, description="Quiet seconds before it clears.")


class AirQualitySettings(_DetectorSettings):
    table: Literal["HJ 633-2012"] = Field("HJ 633-2012", description="Versioned IAQI breakpoint table.")
    averaging_s: float = Field(86400.0, ge=3600, le=7 * 86400, description="Mean window (PM bands: 24 h).")
    bucket_s: float = Field(3600.0, ge=60, le=86400, description="Bucket width of the running mean.")
    hold_s: float = Field(3600.0, ge=0, le=_SECONDS_MAX, description="Seconds an AQI band must hold first.")
    hysteresis: float = Field(10.0, ge=0, le=100, description="IAQI points below a band to leave it.")
    cooldown_s: float = Field(7200.0, ge=0, le=_SECONDS_MAX, description="Quiet seconds before it clears.")


class NoiseSettings(_DetectorSettings):
    zone_class: Literal["0", "1", "2", "3", "4a", "4b"] = Field("2", description="GB 3096-2008 zone class.")
    day_start_h: float = Field(6.0, ge=0, lt=24, description="Local hour the day limit starts.")
    night_start_h: float = Field(22.0, ge=0, lt=24, description="Local hour the night limit starts.")
    utc_offset_s: float = Field(28800.0, ge=-50400, le=50400, description="Local time offset (China 28800).")
    hold_s: float = Field(900.0, ge=0, le=_SECONDS_MAX, description="Seconds over the limit first.")
    alarm_excess_db: float = Field(10.0, gt=0, le=60, description="dB over the limit for an alarm.")
    hysteresis_db: float = Field(2.0, ge=0, le=20, description="dB under the limit to leave it.")
    cooldown_s: float = Field(1800.0, ge=0, le=_SECONDS_MAX, description="Quiet seconds before it clears.")


class DetectorSet(StrictModel):
    """Settings per registered detector; a detector left out does not run (in a kind) or is unchanged
    (in an override)."""

    threshold: ThresholdSettings | None = Field(None, description="Fixed limit with hysteresis.")
    rate_of_change: RateOfChangeSettings | None = Field(None, description="Rise/fall rate limit.")
    robust: RobustSettings | None = Field(None, description="Robust z-score outliers.")
    seasonal: SeasonalSettings | None = Field(None, description="Deviation from the time-of-day baseline.")
    flatline: FlatlineSettings | None = Field(None, description="Stuck sensor.")
    dropout: DropoutSettings | None = Field(None, description="Device offline / never reported.")
    forecast: ForecastSettings | None = Field(None, description="Time-to-threshold forecast.")
    novelty: NoveltySettings | None = Field(None, description="General-purpose novelty scorer (NAB).")
    likelihood: LikelihoodSettings | None = Field(
        None, description="General-purpose anomaly scorer, the NAB default: tail probability of novelty.")
    drainage_level: DrainageLevelSettings | None = Field(None, description="Drain fill, rain-aware.")
    cover_tilt: CoverTiltSettings | None = Field(None, description="Manhole-cover tilt.")
    air_quality: AirQualitySettings | None = Field(None, description="IAQI from PM2.5/PM10.")
    noise: NoiseSettings | None = Field(None, description="GB 3096-2008 noise limits.")


CATEGORY_MOVED = ("no `category` or `category_by_finding` (a detection's category is set in "
                  "config/categories.yaml alone: `kinds`, and `device_kinds` for generic detector kinds)")


class KindSettings(StrictModel):
    metrics: list[str] = Field(min_length=1, max_length=16,
                               description="Metrics this kind reports (canonical names), for documentation "
                                           "and routing.")
    detectors: DetectorSet = Field(description="Detectors that run for this kind, with their settings.")

    @model_validator(mode="before")
    @classmethod
    def _category_moved(cls, data: Any) -> Any:
        if isinstance(data, dict) and {"category", "category_by_finding"} & data.keys():
            raise ValueError(CATEGORY_MOVED)  # an older detectors.yaml: say where the category went
        return data


class DetectorConfig(StrictModel):
    """Root of config/detectors.yaml."""

    version: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$",
                         description="Config version, stamped on every detection.")
    kinds: dict[DeviceKind, KindSettings] = Field(description="Settings per device kind.")
    grid_overrides: dict[str, dict[DeviceKind, DetectorSet]] = Field(
        default_factory=dict,
        description="Per grid-code prefix (1-15 digits; the longest matching prefix wins), per kind: "
                    "only the fields named change.")
    device_overrides: dict[str, DetectorSet] = Field(
        default_factory=dict, description="Per device id: only the fields named change; applied last.")
    lateness_s: float = Field(
        120.0, ge=0, le=86400,
        description="Reorder window per device, seconds of event time: a reading may arrive this much "
                    "behind the device's newest one; older ones are dead-lettered as too_late.")
    idle_flush_s: float = Field(
        5.0, ge=0, le=86400,
        description="Wall-clock seconds a device may stay quiet before its reorder buffer is flushed "
                    "(so a device that goes silent is not held back by the lateness window).")

    @model_validator(mode="after")
    def _prefixes(self) -> DetectorConfig:
        for prefix in self.grid_overrides:
            if not (prefix.isdigit() and 1 <= len(prefix) <= 15):
                raise ValueError(f"grid_overrides key {prefix!r} must be a grid-code prefix of 1-15 digits")
        return self

    def settings_for(self, device_id: str, kind: str, grid_code: str) -> DeviceSettings:
        return settings_for(self, device_id, kind, grid_code)


@dataclass(frozen=True, slots=True)
class DeviceSettings:
    """What one device runs: detector name -> constructor arguments (its detections' category comes from
    config/categories.yaml, through the ``CategoryOf`` callable the bank is given)."""

    device_id: str
    kind: str
    grid_code: str
    version: str
    detectors: dict[str, dict[str, Any]] = field(default_factory=dict)


def _merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _layers(config: DetectorConfig, device_id: str, kind: DeviceKind, grid_code: str) -> list[dict[str, Any]]:
    layers = [config.kinds[kind].detectors.model_dump(exclude_none=True)]
    for prefix in sorted(config.grid_overrides, key=len):
        per_kind = config.grid_overrides[prefix]
        if grid_code.startswith(prefix) and kind in per_kind:
            layers.append(per_kind[kind].model_dump(exclude_unset=True))
    if device_id in config.device_overrides:
        layers.append(config.device_overrides[device_id].model_dump(exclude_unset=True))
    return layers


def settings_for(config: DetectorConfig, device_id: str, kind: str, grid_code: str) -> DeviceSettings:
    """Kind settings, then grid-prefix overrides (shorter prefix first), then the device's own override.

    Raises ``ConfigError`` for a kind the config does not know, or an override that makes a detector's
    settings invalid.
    """
    if kind not in config.kinds:
        known = ", ".join(config.kinds)
        raise ConfigError(f"device {device_id}: kind {kind!r} has no settings; known: {known}")
    merged: dict[str, Any] = {}
    for layer in _layers(config, device_id, kind, grid_code):
        merged = _merge(merged, layer)
    try:
        resolved = DetectorSet.model_validate(merged)
    except ValidationError as exc:
        raise ConfigError("\n".join(format_validation_error(exc, f"device {device_id}", flat=True))) from None
    detectors = {}
    for name in DetectorSet.model_fields:
        settings = getattr(resolved, name)
        if settings is not None and settings.enabled:
            detectors[name] = settings.model_dump(exclude={"enabled"})
    return DeviceSettings(device_id, kind, grid_code, config.version, detectors)


def validate_data(data: Any, where: str) -> tuple[DetectorConfig | None, list[str]]:
    """Validate already-parsed YAML; every override is also checked merged onto its base."""
    try:
        config = DetectorConfig.model_validate(data)
    except ValidationError as exc:
        return None, format_validation_error(exc, where, flat=True)
    problems: list[str] = []
    for kind in config.kinds:
        problems += _check_merge(config, f"kinds.{kind}.detectors", kind, "", "", where)
    for prefix, per_kind in config.grid_overrides.items():
        for kind in per_kind:
            if kind not in config.kinds:
                problems.append(f"{where}: grid_overrides.{prefix}.{kind}: got {kind!r}; expected a kind "
                                f"defined under kinds ({', '.join(config.kinds)})")
                continue
            problems += _check_merge(config, f"grid_overrides.{prefix}.{kind}", kind, prefix, "", where)
    for device in config.device_overrides:
        for kind in config.kinds:
            problems += _check_merge(config, f"device_overrides.{device}", kind, "", device, where)
    return (config if not problems else None), sorted(set(problems))


def _check_merge(config: DetectorConfig, path: str, kind: str, grid: str, device: str,
                 where: str) -> list[str]:
    try:
        settings_for(config, device, kind, grid.ljust(15, "0") if grid else "")
    except ConfigError as exc:
        merged = "" if path.startswith("kinds.") else f" (merged onto kinds.{kind})"
        return [line.replace(f"device {device}: ", f"{where}: {path}{merged}: ", 1)
                for line in str(exc).splitlines()]
    return []


def validate_file(path: str | Path) -> list[str]:
    """All problems of a detector config file, one readable line each; empty when it is valid."""
    p = Path(path)
    try:
        data = read_yaml(p)
    except ConfigError as exc:
        return [str(exc)]
    if not isinstance(data, dict):
        return [f"{p}: (top level): got {short_value(data)}; expected a mapping with version and kinds"]
    return validate_data(data, str(p))[1]


def load_file(path: str | Path) -> DetectorConfig:
    """The validated config, or ``ConfigError`` listing every problem."""
    problems = validate_file(path)
    if problems:
        raise ConfigError("\n".join(problems))
    return DetectorConfig.model_validate(read_yaml(path))


def json_schema() -> dict[str, Any]:
    schema = DetectorConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "GridSentinel detector config"
    return schema


def write_schema(path: str | Path) -> None:
    """Write the JSON Schema editors use for config/detectors.yaml."""
    Path(path).write_text(json.dumps(json_schema(), indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
