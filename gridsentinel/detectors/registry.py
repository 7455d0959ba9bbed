"""Detector classes by name: the only place that lists them (config and the conformance suite use it)."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from gridsentinel.detectors.air_quality import AirQualityDetector
from gridsentinel.detectors.base import Detector
from gridsentinel.detectors.drainage import DrainageLevelDetector
from gridsentinel.detectors.ensemble import EnsembleDetector
from gridsentinel.detectors.generic import (
    DropoutDetector,
    FlatlineDetector,
    ForecastDetector,
    RateOfChangeDetector,
    RobustDetector,
    SeasonalDetector,
    ThresholdDetector,
)
from gridsentinel.detectors.likelihood import LikelihoodDetector
from gridsentinel.detectors.noise import NoiseDetector
from gridsentinel.detectors.novelty import NoveltyDetector
from gridsentinel.detectors.tilt import CoverTiltDetector

DETECTORS: MappingProxyType[str, type[Detector]] = MappingProxyType({
    cls.name: cls for cls in (
        ThresholdDetector, RateOfChangeDetector, RobustDetector, SeasonalDetector, FlatlineDetector,
        DropoutDetector, ForecastDetector, NoveltyDetector, EnsembleDetector, LikelihoodDetector, DrainageLevelDetector,
        CoverTiltDetector,
        AirQualityDetector, NoiseDetector,
    )
})


def create(name: str, **params: Any) -> Detector:
    """A fresh detector of the registered class ``name``, configured by ``params``.

    >>> create("cover_tilt", alarm_deg=15).alarm_deg
    15
    """
    try:
        cls = DETECTORS[name]
    except KeyError:
        raise KeyError(f"unknown detector {name!r}; registered: {', '.join(sorted(DETECTORS))}") from None
    return cls(**params)
