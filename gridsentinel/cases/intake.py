"""What the inspector and hotline channels share: their limits (``config/channels.yaml``), the check of a
report's observed time, and their deterministic detection ids (docs/channels.md).

Every channel ends as the same :class:`~gridsentinel.core.records.Detection` on ``gs.detections``; the
ids make a retried report the same detection, so the case stage applies it once.

>>> cfg = ChannelsConfig()
>>> check_observed_at(1000.0, now=1000.0 + 3 * 3600, cfg=cfg.inspector) is None  # sent 3 h late: fine
True
>>> print(check_observed_at(1000.0 + 3600, now=1000.0, cfg=cfg.inspector))
observed_at is 3600 s in the future (more than 120 s ahead of the server clock): check the phone's clock
>>> print(check_observed_at(0.0, now=73 * 3600.0, cfg=cfg.inspector))
observed_at is 73.0 h old; reports older than 72 h are refused (file it as a new finding with the time of sending)
>>> inspector_detection_id("li", "r-1") == inspector_detection_id("li", "r-1") != inspector_detection_id("wang", "r-1")
True
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from gridsentinel.cases.gazetteer import Gazetteer, load_gazetteer
from gridsentinel.cases.suggest import KeywordModel, load_keywords
from gridsentinel.core.config import StrictModel, load_yaml
from gridsentinel.core.grid import GridMap

INSPECTOR_PREFIX = "inspector:"
HOTLINE_PREFIX = "hotline:"


class InspectorLimits(StrictModel):
    """Limits of the inspectors' reports."""

    max_age_hours: float = Field(72.0, gt=0, le=24 * 30, description="A report observed longer ago than this is "
                                 "refused (an offline phone that sends days later).")
    max_future_s: float = Field(120.0, ge=0, le=3600, description="Clock skew allowed: an observed time at most "
                                "this far ahead of the server's clock is taken as now.")
    max_photos: int = Field(4, ge=0, le=10, description="Photos per report or verification.")
    max_photo_bytes: int = Field(3 * 1024 * 1024, ge=1024, le=20 * 1024 * 1024,
                                 description="Largest photo (decoded bytes); the page shrinks photos before sending.")
    severity: str = Field("warning", pattern="^(advisory|warning|alarm|critical)$",
                          description="Severity of an inspector's finding.")


class HotlineLimits(StrictModel):
    """Limits and defaults of the 12345 hotline intake."""

    gazetteer: str = Field("gazetteer.csv", min_length=1, description="The gazetteer file, relative to the config "
                           "directory (format: docs/channels.md).")
    keywords: str = Field("hotline_keywords.yaml", min_length=1, description="The category keyword table, "
                          "relative to the config directory.")
    max_age_hours: float = Field(24 * 30.0, gt=0, le=24 * 366, description="A call older than this (its "
                                 "called_at) is refused.")
    max_future_s: float = Field(120.0, ge=0, le=3600, description="Clock skew allowed on called_at.")
    severity: str = Field("warning", pattern="^(advisory|warning|alarm|critical)$",
                          description="Severity of a hotline call's detection.")


class ChannelsConfig(StrictModel):
    """``config/channels.yaml`` (optional: every key has a default)."""

    inspector: InspectorLimits = Field(default_factory=InspectorLimits, description="Inspectors' reports.")
    hotline: HotlineLimits = Field(default_factory=HotlineLimits, description="The 12345 hotline intake.")


def load_channels_config(config_dir: Path) -> ChannelsConfig:
    path = config_dir / "channels.yaml"
    return load_yaml(path, ChannelsConfig) if path.exists() else ChannelsConfig()


def check_observed_at(observed_at: float, *, now: float, cfg: InspectorLimits | HotlineLimits) -> str | None:
    """Why a report's observed time is refused, or None when it is acceptable."""
    ahead = observed_at - now
    skew = cfg.max_future_s
    if ahead > skew:
        return (f"observed_at is {ahead:.0f} s in the future (more than {skew:.0f} s ahead of the server clock): "
                "check the phone's clock")
    age_h = (now - observed_at) / 3600
    if age_h > cfg.max_age_hours:
        return (f"observed_at is {age_h:.1f} h old; reports older than {cfg.max_age_hours:g} h are refused "
                "(file it as a new finding with the time of sending)")
    return None


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:32]


def inspector_detection_id(user: str, report_id: str) -> str:
    """The detection id of an inspector's report: the same user's report id is always the same detection."""
    return INSPECTOR_PREFIX + _digest("inspector", user, report_id)


def hotline_detection_id(call_id: str) -> str:
    """The detection id of a hotline call (one call, one detection, however often it is confirmed)."""
    return HOTLINE_PREFIX + _digest("hotline", call_id)


@dataclass(frozen=True, slots=True)
class Channels:
    """The loaded channel config: limits, the gazetteer and the keyword model (None when their file is missing:
    every hotline address then waits for a call-taker's point, and no category is suggested)."""

    config: ChannelsConfig
    gazetteer: Gazetteer | None
    keywords: KeywordModel | None


def load_channels(config_dir: Path, grid: GridMap, category_keys: set[str]) -> Channels:
    """Load ``channels.yaml`` and the files it names; ConfigError (file, line, what to fix) when invalid."""
    config = load_channels_config(config_dir)
    gazetteer_path = config_dir / config.hotline.gazetteer
    keywords_path = config_dir / config.hotline.keywords
    return Channels(
        config=config,
        gazetteer=load_gazetteer(gazetteer_path, grid) if gazetteer_path.exists() else None,
        keywords=load_keywords(keywords_path, category_keys) if keywords_path.exists() else None,
    )
