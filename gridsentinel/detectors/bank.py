"""All detectors of one device, from resolved config to ``Detection`` records, with one state blob.

This is what the Faust stage holds per device (its state in a table keyed by device id):

    bank = DeviceDetectors(config.settings_for(device_id, kind, grid_code), catalog.category_of,
                           since=registered_at)
    bank.restore(table.get(device_id) or {})
    detections = bank.update(reading)        # on every reading
    detections += bank.check(now)            # on a timer: dropout / held tilt
    table[device_id] = bank.state()
"""

from __future__ import annotations

import inspect
from dataclasses import replace
from typing import Any

from gridsentinel.core.records import Detection, Reading
from gridsentinel.detectors.base import Detector, Finding
from gridsentinel.detectors.config import DeviceSettings
from gridsentinel.detectors.detection import CategoryOf, component_class, to_detection
from gridsentinel.detectors.registry import DETECTORS, create


class DeviceDetectors:
    """The detectors configured for one device; ``category_of`` (config/categories.yaml's answer, see
    ``CategoryOf``) labels their detections.

    >>> s = DeviceSettings("cover-7", "cover_tilt", "320582110152102", "v1",
    ...                    {"cover_tilt": {"alarm_deg": 10.0, "hold_s": 0.0}})
    >>> covers = {"0102": ("0102", "GB/T 30428.2-2013")}          # categories.yaml, in short
    >>> category_of = lambda device_kind, kind, cls: covers.get(cls or "", ("0103", "GB/T 30428.2-2013"))
    >>> bank = DeviceDetectors(s, category_of)
    >>> found = bank.update(Reading("cover-7", "tilt", "deg", 95.0, 5.0))
    >>> [(d.kind, d.severity, d.category_code) for d in found]
    [('cover_tilt', 'critical', '0103')]
    >>> sewage = DeviceDetectors(s, category_of, component_id="3205820102000001")  # its class picks it
    >>> d = sewage.update(Reading("cover-7", "tilt", "deg", 95.0, 5.0))[0]
    >>> d.evidence["component_id"], d.category_code
    ('3205820102000001', '0102')
    """

    def __init__(self, settings: DeviceSettings, category_of: CategoryOf, since: float | None = None,
                 lat: float | None = None, lon: float | None = None, component_id: str | None = None) -> None:
        self.settings = settings
        self.category_of = category_of
        self.lat, self.lon = lat, lon
        self.component_id = component_id  # the registry's component code: a cover's class picks its category
        self.detectors: dict[str, Detector] = {}
        for name, params in settings.detectors.items():
            kwargs = dict(params)
            if "since" in inspect.signature(DETECTORS[name]).parameters:
                kwargs["since"] = since
            self.detectors[name] = create(name, **kwargs)

    def update(self, reading: Reading) -> list[Detection]:
        out: list[Detection] = []
        for name, det in self.detectors.items():
            if det.accepts(reading):
                out += self._detections(name, det.update(reading).findings)
        return out

    def check(self, now: float) -> list[Detection]:
        out: list[Detection] = []
        for name, det in self.detectors.items():
            out += self._detections(name, det.check(now))
        return out

    def findings(self, reading: Reading) -> dict[str, list[Finding]]:
        """Raw findings per detector, clears included (for backtests and dashboards)."""
        return {name: list(det.update(reading).findings)
                for name, det in self.detectors.items() if det.accepts(reading)}

    def state(self) -> dict[str, Any]:
        states = {n: d.state() for n, d in self.detectors.items()}
        return {"version": self.settings.version, "detectors": states}

    def restore(self, state: dict[str, Any]) -> None:
        """Restore saved state; detectors absent from it (newly configured) start fresh."""
        for name, st in (state.get("detectors") or {}).items():
            if name in self.detectors:
                self.detectors[name].restore(st)

    def _detections(self, name: str, findings: tuple[Finding, ...] | list[Finding]) -> list[Detection]:
        s = self.settings
        out = []
        for f in findings:
            if f.phase == "clear":
                continue
            code, standard = self.category_of(s.kind, f.kind, component_class(self.component_id))
            d = to_detection(f, device_id=s.device_id, detector=name, detector_version=s.version,
                             grid_code=s.grid_code, category_code=code,
                             category_standard=standard, lat=self.lat, lon=self.lon)
            if self.component_id:
                d = replace(d, evidence={**d.evidence, "component_id": self.component_id})
            out.append(d)
        return out
