"""All enabled camera detectors of one camera, built from its config and fed together."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from gridsentinel.core.records import Detection
from gridsentinel.detectors.camera.base import CameraDetector, CameraIdentity
from gridsentinel.detectors.camera.config import CameraConfig
from gridsentinel.detectors.camera.crowd import CrowdDetector
from gridsentinel.detectors.camera.fire_smoke import FireSmokeDetector
from gridsentinel.detectors.camera.static_object import StaticObjectDetector
from gridsentinel.detectors.camera.tamper import TamperDetector
from gridsentinel.detectors.camera.waterlogging import WaterloggingDetector
from gridsentinel.detectors.detection import CategoryOf

CAMERA_KIND = "camera"  # the registry's device kind of a camera (what ``category_of`` is asked about)

# Registry: detector key (its config's `detector` field, its key in cameras.yaml) -> detector class.
# The conformance tests run over every entry.
CAMERA_DETECTORS: dict[str, type[CameraDetector[Any]]] = {
    "tamper": TamperDetector,
    "static_object": StaticObjectDetector,
    "crowd": CrowdDetector,
    "fire_smoke": FireSmokeDetector,
    "waterlogging": WaterloggingDetector,
}


class CameraStack:
    """The detector stack of one camera.

    While the tamper detector alarms, the scene detectors are not fed (a covered or moved camera
    would otherwise produce nonsense findings and learn a wrong background); when the alarm clears,
    they warm up again. ``category_of`` (config/categories.yaml's ``Catalog.category_of``) labels
    every detection with its category.

    >>> import numpy as np
    >>> from gridsentinel.detectors.camera.config import CameraConfig
    >>> tampered = lambda device_kind, kind, component_class: ("L006", "GridSentinel local 2025.1")
    >>> stack = CameraStack(CameraConfig(camera_id="cam-1", grid_code="110101001001001"), category_of=tampered)
    >>> sorted(stack.detectors)
    ['crowd', 'fire_smoke', 'static_object', 'tamper']
    >>> rng = np.random.default_rng(0)
    >>> scene = rng.integers(0, 255, (240, 320, 3), dtype=np.uint8)
    >>> _ = [stack.update(scene, t / 5) for t in range(20)]
    >>> found = [d for t in range(20, 40) for d in stack.update(np.zeros_like(scene), t / 5)]
    >>> [(d.detector, d.evidence["reason"], d.grid_code, d.category_code) for d in found]
    [('camera.tamper', 'blackout', '110101001001001', 'L006')]
    """

    def __init__(self, config: CameraConfig, *, category_of: CategoryOf, config_version: str = "1") -> None:
        self.config = config
        self.category_of = category_of
        self.identity = CameraIdentity(
            camera_id=config.camera_id,
            grid_code=config.grid_code,
            lat=config.lat,
            lon=config.lon,
            config_version=config_version,
        )
        self.detectors: dict[str, CameraDetector[Any]] = {}
        for det_cfg in config.detector_configs():
            if det_cfg.enabled:
                cls = CAMERA_DETECTORS[det_cfg.detector]
                self.detectors[det_cfg.detector] = cls(det_cfg, camera=self.identity, ignore=config.ignore)

    def relabel(self, config_version: str) -> None:
        """Stamp ``config_version`` on the detections from now on, keeping every detector's state (live
        config: this camera's settings did not change, only the file's version)."""
        self.identity = replace(self.identity, config_version=config_version)
        for det in self.detectors.values():
            det.camera = self.identity

    def update(self, frame: np.ndarray, ts: float) -> list[Detection]:
        """Feed one decoded frame (BGR uint8) taken at ``ts`` to every detector; return all findings."""
        return [self._labelled(d) for d in self._update(frame, ts)]

    def _labelled(self, d: Detection) -> Detection:
        code, standard = self.category_of(CAMERA_KIND, d.kind, None)
        return replace(d, category_code=code, category_standard=standard)

    def _update(self, frame: np.ndarray, ts: float) -> list[Detection]:
        out: list[Detection] = []
        tamper = self.detectors.get("tamper")
        if isinstance(tamper, TamperDetector):
            was_alarming = tamper.alarming
            out.extend(tamper.update(frame, ts))
            if tamper.alarming:
                return out
            if was_alarming:
                # The view is back, but it may have moved and the scene has changed while the scene
                # detectors were muted: their models are stale, so they warm up again.
                for name, det in self.detectors.items():
                    if name != "tamper":
                        det.reset()
        for name, det in self.detectors.items():
            if name != "tamper":
                out.extend(det.update(frame, ts))
        return out

    def get_state(self) -> dict[str, bytes]:
        """Per-detector state (bytes each), e.g. for a Faust table keyed by camera id."""
        return {name: det.get_state() for name, det in self.detectors.items()}

    def set_state(self, state: dict[str, bytes]) -> None:
        for name, raw in state.items():
            if name in self.detectors:
                self.detectors[name].set_state(raw)
