"""Camera detectors: pure OpenCV/NumPy logic on decoded frames (no I/O, no clock, no downloads).

Build a camera's stack from config and feed it frames::

    cameras = load_cameras("config/cameras.yaml")
    catalog = load_catalog("config")    # gridsentinel.cases.categories: categories.yaml owns the category
    stack = CameraStack(cameras.cameras[0], category_of=catalog.category_of, config_version=cameras.version)
    detections = stack.update(frame_bgr, ts)

Snapshots for evidence are de-identified with :func:`gridsentinel.detectors.camera.privacy.snapshot`.
"""

from gridsentinel.detectors.camera.base import CameraDetector, CameraIdentity
from gridsentinel.detectors.camera.config import CameraConfig, CamerasFile, load_cameras, parse_cameras
from gridsentinel.detectors.camera.crowd import CrowdDetector
from gridsentinel.detectors.camera.fire_smoke import FireSmokeDetector
from gridsentinel.detectors.camera.stack import CAMERA_DETECTORS, CameraStack
from gridsentinel.detectors.camera.static_object import StaticObjectDetector
from gridsentinel.detectors.camera.tamper import TamperDetector
from gridsentinel.detectors.camera.waterlogging import WaterloggingDetector

__all__ = [
    "CAMERA_DETECTORS",
    "CameraConfig",
    "CameraDetector",
    "CameraIdentity",
    "CameraStack",
    "CamerasFile",
    "CrowdDetector",
    "FireSmokeDetector",
    "StaticObjectDetector",
    "TamperDetector",
    "WaterloggingDetector",
    "load_cameras",
    "parse_cameras",
]
