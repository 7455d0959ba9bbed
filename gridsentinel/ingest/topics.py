"""Kafka topic names: defined here once. A prefix gives tests and shadow runs their own topics."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str = ""

    def _name(self, base: str) -> str:
        return f"{self.prefix}{base}"

    @property
    def readings(self) -> str:
        return self._name("gs.readings")

    @property
    def frames(self) -> str:
        return self._name("gs.frames")

    @property
    def device_status(self) -> str:
        return self._name("gs.device-status")

    @property
    def detections(self) -> str:
        return self._name("gs.detections")

    @property
    def case_events(self) -> str:
        return self._name("gs.case-events")

    @property
    def deadletter(self) -> str:
        return self._name("gs.deadletter")

    @property
    def config(self) -> str:
        return self._name("gs.config")

    def all(self) -> list[str]:
        return [self.readings, self.frames, self.device_status, self.detections, self.case_events,
                self.deadletter, self.config]
