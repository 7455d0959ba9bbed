"""The device registry (config/devices.yaml): who may publish, what they are, and where."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, field_validator

from gridsentinel.core.config import StrictModel, load_yaml
from gridsentinel.core.grid import GridMap, valid_grid_code
from gridsentinel.errors import ConfigError

if TYPE_CHECKING:
    from gridsentinel.core.device_feed import DeviceChange

DeviceKind = Literal["drain_level", "rain_gauge", "cover_tilt", "air_quality", "noise", "camera"]
# Device topics are gs/v1/{device_id}/...; these first segments under gs/v1 are GridSentinel's own
# (gs/v1/alerts/...: core/alert_topics.py), so no device may take them as its id (compared without case, so
# that "Alerts" cannot pass for it either); nor may a device take the gateway's MQTT user name.
DEVICE_TOPIC_ROOT = "gs/v1"
RESERVED_DEVICE_IDS = frozenset({"alerts", "gateway"})


def reserved_id_problem(device_id: str) -> str | None:
    """Why ``device_id`` may not be used (None: it may).

    >>> reserved_id_problem("drain-1") is None
    True
    >>> print(reserved_id_problem("Alerts"))  # doctest: +NORMALIZE_WHITESPACE
    device id 'Alerts' is reserved: gs/v1/alerts/... is GridSentinel's alert topic tree, and a device named
    so would publish into it; choose another id
    """
    if device_id.lower() == "gateway":
        return (f"device id {device_id!r} is reserved: it is the MQTT user of GridSentinel's gateway, and a device "
                "named so would take over its credentials; choose another id")
    if device_id.lower() in RESERVED_DEVICE_IDS:
        return (f"device id {device_id!r} is reserved: {DEVICE_TOPIC_ROOT}/{device_id.lower()}/... is GridSentinel's "
                "alert topic tree, and a device named so would publish into it; choose another id")
    return None


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

    @field_validator("id")
    @classmethod
    def _not_reserved(cls, value: str) -> str:
        problem = reserved_id_problem(value)
        if problem:
            raise ValueError(problem)
        return value


class _RegistryFile(StrictModel):
    devices: list[Device] = Field(default_factory=list, description="Every device that may publish")


@dataclass(frozen=True, slots=True)
class Retirement:
    """A retired device: its last record, when it was retired, and the feed revision that retired it."""

    device: Device
    retired_at: float
    revision: int


class Registry:
    """Devices by id, each with its grid code resolved.

    ``devices`` holds the active devices (what may publish), ``retired`` the retired ones (whose messages
    are rejected with a reason). The YAML file is the seed (revision 0 for every device); the change feed
    (core/device_feed.py, followed by core/device_follow.py) overrides it one change at a time through
    ``apply``, which is O(1) and thread-safe: one thread applies while others read. Readers use ``get``
    (a dict lookup) or ``ids``/``active`` (copies made under the lock) and never iterate ``devices``
    while a follower may change it. ``version`` grows with every applied change, so a reader that caches
    what it derived from a device (the gateway's routes) knows when to drop its cache; a changed device
    is always a new ``Device`` object, so ``registry.get(id) is cached_device`` says it is unchanged.
    """

    def __init__(self, devices: list[Device], grid: GridMap | None = None) -> None:
        self.grid = grid
        self.devices: dict[str, Device] = {}
        self.retired: dict[str, Retirement] = {}
        self.revisions: dict[str, int] = {}  # device id -> the feed revision held (absent: the seed's, 0)
        self.version = 0  # grows with every applied change
        self._lock = threading.Lock()
        for device in devices:
            device = self._resolve(device)
            self.devices[device.id] = device

    def _resolve(self, device: Device) -> Device:
        if device.grid_code is None and self.grid is not None:
            code = self.grid.locate(device.location.lat, device.location.lon)
            if code is not None:
                device = device.model_copy(update={"grid_code": code})
        return device

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
        """The active device with this id (None: unknown or retired)."""
        return self.devices.get(device_id)

    def retirement(self, device_id: str) -> Retirement | None:
        """Why a device that is not active is rejected: its retirement, or None (never registered)."""
        return self.retired.get(device_id)

    def ids(self) -> list[str]:
        """The active devices' ids, sorted (a copy: safe while a follower applies changes)."""
        with self._lock:
            ids = list(self.devices)
        return sorted(ids)

    def active(self) -> list[Device]:
        """The active devices, sorted by id (a copy)."""
        with self._lock:
            devices = list(self.devices.values())
        return sorted(devices, key=lambda d: d.id)

    def add(self, device: Device) -> Device:
        """Register a device at run time (tests, the simulator); resolves its grid code."""
        device = self._resolve(device)
        with self._lock:
            self.retired.pop(device.id, None)
            self.devices[device.id] = device
            self.version += 1
        return device

    def apply(self, change: DeviceChange) -> bool:
        """Apply one change of the feed; False when it is not newer than the revision held (ignored).

        An active change (re)registers the device as it is after the change (a new kind, place, grid or
        interval takes effect at once); a retired one moves it to ``retired``. O(1), thread-safe.
        """
        device_id = change.device.id
        device = self._resolve(change.device)  # outside the lock: the grid lookup is the slow part
        with self._lock:
            if change.revision <= self.revisions.get(device_id, 0):
                return False
            self.revisions[device_id] = change.revision
            if change.state == "retired":
                self.devices.pop(device_id, None)
                self.retired[device_id] = Retirement(device, change.changed_at, change.revision)
            else:
                self.retired.pop(device_id, None)
                self.devices[device_id] = device
            self.version += 1
        return True
