"""The camera config file, ``config/cameras.yaml``: per camera its identity, regions, masks and detectors.

Each camera detector's config model lives beside its detector (``TamperConfig`` in ``tamper.py``, ...);
this module only gathers them: :data:`CameraDetectorConfig` is the union of them, discriminated by each
model's ``detector`` field, and a camera's section for a detector sits under that detector's key
(``tamper:``, ``crowd:``, ...). ``load_cameras`` turns a validation failure into a
:class:`~gridsentinel.errors.ConfigError` naming the file, key path, bad value and expectation.

Adding a detector: its module (detector class and config model with a ``detector`` literal), then its
config in :data:`CameraDetectorConfig` and :class:`CameraConfig`, and its class in
``stack.DETECTORS``; ``tests/unit/camera/test_config.py`` checks that the three agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, get_args

from pydantic import Field, ValidationError, field_validator, model_validator

from gridsentinel.core.config import StrictModel, format_validation_error, read_yaml
from gridsentinel.detectors.camera.base import Polygon
from gridsentinel.detectors.camera.crowd import CrowdConfig
from gridsentinel.detectors.camera.fire_smoke import FireSmokeConfig
from gridsentinel.detectors.camera.privacy import PrivacyConfig
from gridsentinel.detectors.camera.static_object import StaticObjectConfig
from gridsentinel.detectors.camera.tamper import TamperConfig
from gridsentinel.detectors.camera.waterlogging import WaterloggingConfig
from gridsentinel.errors import ConfigError

CameraDetectorConfig = Annotated[
    TamperConfig | StaticObjectConfig | CrowdConfig | FireSmokeConfig | WaterloggingConfig,
    Field(discriminator="detector"),
]
"""Any camera detector's config; its ``detector`` field says which detector (and which key it sits under)."""

# The detector keys, in the order a camera's detectors are built and fed.
DETECTOR_KEYS: tuple[str, ...] = tuple(
    model.model_fields["detector"].default for model in get_args(get_args(CameraDetectorConfig)[0])
)


class CameraConfig(StrictModel):
    """One camera: identity, where it is, what to ignore, and its detectors."""

    camera_id: str = Field(..., min_length=1, max_length=128, description="Device id of the camera.")
    grid_code: str = Field("", pattern=r"^(\d{15})?$", description="15-digit unit-grid code it watches.")
    lat: float | None = Field(None, ge=-90.0, le=90.0, description="Latitude (WGS 84).")
    lon: float | None = Field(None, ge=-180.0, le=180.0, description="Longitude (WGS 84).")
    ignore: list[Polygon] = Field(
        default_factory=list, description="Areas excluded from every detector (trees, sky, screens)."
    )
    analysis_fps: float | None = Field(
        None,
        gt=0.0,
        le=60.0,
        description="Frames/s the live frames stage decodes for this camera; faster frames are dropped "
        "before decoding. null: the highest analysis_fps of its enabled detectors.",
    )
    tamper: TamperConfig = Field(default_factory=TamperConfig, description="Camera tamper detector.")
    static_object: StaticObjectConfig = Field(
        default_factory=StaticObjectConfig, description="Left-object detector."
    )
    crowd: CrowdConfig = Field(default_factory=CrowdConfig, description="Crowd level detector.")
    fire_smoke: FireSmokeConfig = Field(default_factory=FireSmokeConfig, description="Fire/smoke detector.")
    waterlogging: WaterloggingConfig = Field(
        default_factory=WaterloggingConfig, description="Road waterlogging detector."
    )

    def detector_configs(self) -> list[CameraDetectorConfig]:
        """This camera's detector configs (enabled or not), in :data:`DETECTOR_KEYS` order."""
        return [getattr(self, key) for key in DETECTOR_KEYS]

    @field_validator("camera_id")
    @classmethod
    def _no_slash(cls, v: str) -> str:
        if "/" in v or "+" in v or "#" in v:
            raise ValueError("camera_id must not contain '/', '+' or '#'")
        return v


class CamerasFile(StrictModel):
    """The whole ``config/cameras.yaml``."""

    version: str = Field(
        "1",
        min_length=1,
        max_length=64,
        description="Config version, stamped on every detection as detector_version.",
    )
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig, description="Snapshot de-identification.")
    state_every_s: float = Field(
        10.0,
        ge=0.0,
        le=3600.0,
        description="The live frames stage saves a camera's detector state at most this often (event "
        "seconds), and always after a detection; a restarted worker continues from it.",
    )
    cameras: list[CameraConfig] = Field(default_factory=list, description="The cameras.")

    @model_validator(mode="after")
    def _unique(self) -> CamerasFile:
        ids = [c.camera_id for c in self.cameras]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(f"duplicate camera_id: {', '.join(dup)}")
        return self


def parse_cameras(data: Any, source: str = "<cameras>") -> CamerasFile:
    """Validate already-parsed YAML/JSON data; errors become ConfigError with key paths."""
    try:
        return CamerasFile.model_validate(data if data is not None else {})
    except ValidationError as exc:
        raise ConfigError("\n".join(format_validation_error(exc, source, what="camera config"))) from None


def load_cameras(path: str | Path) -> CamerasFile:
    """Read and validate a cameras YAML file."""
    return parse_cameras(read_yaml(path), str(path))
