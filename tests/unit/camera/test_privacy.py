from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from gridsentinel.detectors.camera.config import PrivacyConfig
from gridsentinel.detectors.camera.privacy import Deidentifier, snapshot

pytestmark = pytest.mark.unit

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "vision"


@pytest.fixture(scope="module")
def messi():
    return cv2.imread(str(FIXTURES / "messi5.jpg"))


@pytest.fixture(scope="module")
def face_box():
    return json.loads((FIXTURES / "faces.json").read_text())["images"]["messi5.jpg"][0]


@pytest.fixture(scope="module")
def deid():
    return Deidentifier(PrivacyConfig(face_model_path=""))  # Haar + heads only: works on any install


def test_labelled_face_is_inside_a_blurred_region(messi, face_box, deid):
    out, regions = deid.deidentify(messi)
    x, y, w, h = face_box
    covered = np.zeros(messi.shape[:2], bool)
    for r in regions:
        covered[r.y : r.y + r.h, r.x : r.x + r.w] = True
    assert covered[y : y + h, x : x + w].mean() >= 0.9
    # The face is really destroyed: fine detail (Laplacian energy) drops sharply.
    before = cv2.Laplacian(cv2.cvtColor(messi[y : y + h, x : x + w], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    after = cv2.Laplacian(cv2.cvtColor(out[y : y + h, x : x + w], cv2.COLOR_BGR2GRAY), cv2.CV_64F).var()
    assert after < 0.1 * before
    assert out.shape == messi.shape and not np.shares_memory(out, messi)


def test_snapshot_is_a_downscaled_deidentified_jpeg(messi, face_box):
    deid = Deidentifier(PrivacyConfig(face_model_path="", max_width=320, blur_people_heads=False))
    raw = snapshot(messi, deid)
    assert raw[:2] == b"\xff\xd8"
    img = cv2.imdecode(np.frombuffer(raw, np.uint8), cv2.IMREAD_COLOR)
    assert img.shape[1] == 320
    s = 320 / messi.shape[1]
    x, y, w, h = (int(v * s) for v in face_box)
    original = cv2.resize(messi, (img.shape[1], img.shape[0]), interpolation=cv2.INTER_AREA)
    diff = np.abs(img[y : y + h, x : x + w].astype(int) - original[y : y + h, x : x + w].astype(int)).mean()
    assert diff > 8  # the face area changed, not just re-encoded


def test_plain_image_is_left_alone(deid):
    img = np.full((100, 100, 3), 200, np.uint8)
    out, regions = deid.deidentify(img)
    assert regions == [] and np.array_equal(out, img)


def test_missing_face_model_file_is_an_error():
    with pytest.raises(cv2.error):
        Deidentifier(PrivacyConfig(face_model_path="/nonexistent/centerface.onnx"))
