"""/api/v1/evidence/{detection_id}.jpg: de-identified snapshots from <run dir>/evidence, and nothing else."""

from __future__ import annotations

import os
import time

import httpx
import pytest

from .conftest import Harness, assert_error, auth

pytestmark = pytest.mark.unit
DET = "0123456789abcdef0123456789abcdef"
JPEG = b"\xff\xd8\xff\xe0 a de-identified snapshot \xff\xd9"


def _store(api: Harness, name: str, body: bytes, age_s: float = 0.0) -> None:
    root = api.tmp_path / "evidence"
    root.mkdir(exist_ok=True)
    path = root / name
    path.write_bytes(body)
    then = time.time() - age_s
    os.utime(path, (then, then))


def test_a_viewer_gets_the_stored_snapshot(api: Harness) -> None:
    _store(api, f"{DET}.jpg", JPEG)

    async def scenario(c: httpx.AsyncClient) -> None:
        r = await c.get(f"/api/v1/evidence/{DET}.jpg", headers=auth("viewer"))
        assert r.status_code == 200 and r.content == JPEG
        assert r.headers["content-type"] == "image/jpeg"
        assert_error(await c.get(f"/api/v1/evidence/{DET}.jpg"), 401, "unauthorized")
        assert_error(await c.get(f"/api/v1/evidence/{DET}.jpg", headers=auth("citizen")), 403, "forbidden")

    api.run(scenario)


def test_missing_and_expired_snapshots_are_404(api: Harness) -> None:
    old = "f" * 32
    _store(api, f"{old}.jpg", JPEG, age_s=31 * 86400)  # config/cameras.yaml keeps 30 days

    async def scenario(c: httpx.AsyncClient) -> None:
        assert_error(await c.get(f"/api/v1/evidence/{DET}.jpg", headers=auth("viewer")), 404, "not_found")
        assert_error(await c.get(f"/api/v1/evidence/{old}.jpg", headers=auth("viewer")), 404, "not_found")

    api.run(scenario)


@pytest.mark.parametrize("attempt", [
    "..%2F..%2Fcases.db%00",
    "..%2Fsecret",
    "%2E%2E%2Fsecret",
    "..",
    "0123456789ABCDEF0123456789ABCDEF",  # not the id shape (lowercase hex only)
    "0123456789abcdef0123456789abcdef.jpg%2F..%2F..%2Fsecret",
    "secret",
])
def test_anything_but_a_detection_id_is_refused(api: Harness, attempt: str) -> None:
    (api.tmp_path / "secret.jpg").write_bytes(b"SECRET-OUTSIDE")  # just outside the evidence folder
    _store(api, "secret.jpg", b"SECRET-INSIDE")

    async def scenario(c: httpx.AsyncClient) -> None:
        r = await c.get(f"/api/v1/evidence/{attempt}.jpg", headers=auth("viewer"))
        assert r.status_code in (400, 404), r.text
        assert b"SECRET" not in r.content
        assert_error(r, r.status_code)

    api.run(scenario)
