"""The device registry (config/devices.yaml): who may publish, what they are, and where."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from gridsentinel.core.config import StrictModel, load_yaml
from gridsentinel.core.grid import GridMap, valid_grid_code
from gridsentinel.errors import ConfigError

DeviceKind = Literal["drain_level", "rain_gauge", "cover_tilt", "air_quality", "noise", "camera"]


class Location(StrictModel):
    lat: float = Field(ge=-90, le=90, description="Latitude, WGS 84 degrees")
    lon: float = Field(ge=-180, le=180, description="Longitude, WGS 84 degrees")


class Device(StrictModel):
    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$",
                    description="Device id; also its MQTT username. Letters, digits, '_', '.', '-'.")
    kind: DeviceKind = Field(description="What the device measures; selects its detectors")
    location: Location = Field(description="Where the device is installed")
    grid_code: str | None = Field(default=None, pattern=r"^\d{15}$",
                                  description="15-digit unit grid; found from the location when absent")
    component_id: str | None = Field(default=None, pattern=r"^\d{16}$",
                                     description="16-digit city component id (e.g. the manhole cover)")
    expected_interval_s: float = Field(default=300, gt=0, le=86400,
                                       description="How often the device reports; drives offline detection")
    install: dict[str, Any] = Field(default_factory=dict,
                                    description="Install parameters, e.g. depth_m and rim_m for a manhole")


class _RegistryFile(StrictModel):
    devices: list[Device] = Field(default_factory=list, description="Every device that may publish")


class Registry:
    """Devices by id, each with its grid code resolved."""

    def __init__(self, devices: list[Device], grid: GridMap | None = None) -> None:
        self.grid = grid
        self.devices: dict[str, Device] = {}
        for device in devices:
            if device.grid_code is None and grid is not None:
                code = grid.locate(device.location.lat, device.location.lon)
                if code is not None:
                    device = device.model_copy(update={"grid_code": code})
            self.devices[device.id] = device

    @classmethod
    def load(cls, config_dir: Path) -> Registry:
        grid_path = config_dir / "grid.geojson"
        grid = GridMap.load(grid_path) if grid_path.exists() else None
        path = config_dir / "devices.yaml"
        if not path.exists():
            raise ConfigError(f"{path}: device registry not found")
        parsed = load_yaml(path, _RegistryFile)
        seen: set[str] = set()
        for i, d in enumerate(parsed.devices):
            if d.id in seen:
                raise ConfigError(f"{path}: devices[{i}].id = {d.id!r} appears twice; ids must be unique")
            seen.add(d.id)
            if d.grid_code is not None and not valid_grid_code(d.grid_code):
                raise ConfigError(f"{path}: devices[{i}].grid_code = {d.grid_code!r}; expected 15 digits")
        return cls(parsed.devices, grid)

    def get(self, device_id: str) -> Device | None:
        return self.devices.get(device_id)

    def add(self, device: Device) -> Device:
        """Register a device at run time (tests, the simulator); resolves its grid code."""
        self.__init__([*self.devices.values(), device], self.grid)  # type: ignore[misc]
        return self.devices[device.id]

