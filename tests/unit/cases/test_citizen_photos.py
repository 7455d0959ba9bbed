"""Citizens' photos: faces blurred by the cameras' de-identifier before a role without identity rights sees them
(a real photo with a labelled face), and the retention sweep deleting photos, blurred copies and leftovers by
age while keeping younger ones; the CLI reports what it did."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest

from gridsentinel.cases.citizen_photos import UnreadablePhoto, blur, blurred_copy, blurred_path, deidentifier, sweep
from gridsentinel.cli import main

from ...photos import VISION

pytestmark = pytest.mark.unit
DAY = 86400.0


def _face_box() -> tuple[int, int, int, int]:
    [box] = json.loads((VISION / "faces.json").read_text())["images"]["messi5.jpg"]
    x, y, w, h = box
    return int(x), int(y), int(w), int(h)


def test_the_face_in_a_real_photo_is_blurred_and_the_rest_kept() -> None:
    data = (VISION / "messi5.jpg").read_bytes()
    jpeg, regions = blur(data, deidentifier())
    assert regions >= 1
    before = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_GRAYSCALE)
    after = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_GRAYSCALE)
    assert before is not None and after is not None
    assert before.shape == after.shape  # full size: an inspector needs the detail
    x, y, w, h = _face_box()
    face_before, face_after = before[y:y + h, x:x + w], after[y:y + h, x:x + w]
    # the face's detail (high-frequency energy) is gone; far from it the picture is unchanged
    assert cv2.Laplacian(face_after, cv2.CV_64F).var() < 0.2 * cv2.Laplacian(face_before, cv2.CV_64F).var()
    corner = (slice(before.shape[0] - 60, None), slice(0, 60))
    assert np.abs(before[corner].astype(int) - after[corner].astype(int)).mean() < 4


def test_the_blurred_copy_is_made_once_and_an_unreadable_photo_is_not_shown(tmp_path: Path) -> None:
    photo = tmp_path / ("a" * 32 + ".photo")
    photo.write_bytes((VISION / "messi5.jpg").read_bytes())
    deid = deidentifier()
    copy = blurred_copy(photo, deid)
    assert copy == blurred_path(photo) and copy.name == "a" * 32 + ".blurred.jpg"
    made = copy.stat().st_mtime_ns
    assert blurred_copy(photo, deid).stat().st_mtime_ns == made  # reused, not made again
    bad = tmp_path / ("b" * 32 + ".photo")
    bad.write_bytes(b"not a picture")
    with pytest.raises(UnreadablePhoto):
        blurred_copy(bad, deid)
    assert not blurred_path(bad).exists()


def _file(path: Path, age_days: float, now: float, size: int = 100) -> Path:
    path.write_bytes(b"x" * size)
    os.utime(path, (now - age_days * DAY, now - age_days * DAY))
    return path


def test_the_sweep_deletes_photos_older_than_the_retention_with_their_copies(tmp_path: Path) -> None:
    now = 1_800_000_000.0
    old = _file(tmp_path / ("1" * 32 + ".photo"), 31, now)
    old_copy = _file(tmp_path / ("1" * 32 + ".blurred.jpg"), 2, now)
    young = _file(tmp_path / ("2" * 32 + ".photo"), 29, now)
    young_copy = _file(tmp_path / ("2" * 32 + ".blurred.jpg"), 1, now)
    orphan = _file(tmp_path / ("3" * 32 + ".blurred.jpg"), 1, now)  # its photo is already gone
    part = _file(tmp_path / ("2" * 32 + ".blurred.jpg.123.part"), 1, now)  # a blur that crashed midway
    dry = sweep(tmp_path, 30, now, dry_run=True)
    assert (dry.removed, dry.kept, dry.orphans) == (1, 1, 2) and old.exists() and orphan.exists()
    done = sweep(tmp_path, 30, now)
    assert (done.removed, done.kept, done.orphans, done.freed_bytes) == (1, 1, 2, 400)
    assert not old.exists() and not old_copy.exists() and not orphan.exists() and not part.exists()
    assert young.exists() and young_copy.exists()
    assert sweep(tmp_path, 30, now) == type(done)(0, 1, 0, 0)  # idempotent
    assert sweep(tmp_path / "missing", 30, now).removed == 0


def test_the_cli_sweeps_the_run_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    folder = tmp_path / "citizen-photos"
    folder.mkdir()
    import time

    now = time.time()
    _file(folder / ("1" * 32 + ".photo"), 40, now)
    _file(folder / ("2" * 32 + ".photo"), 10, now)
    monkeypatch.setenv("GS_RUN_DIR", str(tmp_path))
    assert main(["photos", "sweep", "--json"]) == 0  # config/quality.yaml: 30 days
    out = json.loads(capsys.readouterr().out)
    assert (out["removed"], out["kept"], out["retention_days"]) == (1, 1, 30)
    assert main(["photos", "sweep", "--days", "5"]) == 0
    assert "deleted 1 photos older than 5 days" in capsys.readouterr().out
    assert main(["photos", "sweep", "--days", "0"]) == 2
    assert "--days 0" in capsys.readouterr().err
