"""/api/v1/configs: engineer role, validate, apply (stored; publishing stubbed), history."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from gridsentinel.engineering import configs as ops
from gridsentinel.settings import REPO_ROOT
from tests.unit.api.conftest import Harness, auth

pytestmark = pytest.mark.unit
BASE = (REPO_ROOT / "config" / "detectors.yaml").read_text()


def test_configs_routes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    published = []
    monkeypatch.setattr(ops, "_publish_live", lambda _s, v: published.append(v.number))
    api = Harness(tmp_path)
    api.state.config = dataclasses.replace(api.state.config, max_body_bytes=200_000)

    async def scenario(client):
        r = await client.get("/api/v1/configs", headers=auth("dispatcher"))
        assert r.status_code == 403
        r = await client.get("/api/v1/configs", headers=auth("engineer"))
        assert r.status_code == 200 and r.json()["number"] is None
        bad = BASE.replace("warn_fill: 0.8", "warn_fill: 1.8")
        r = await client.post("/api/v1/configs/validate", json={"yaml": bad}, headers=auth("engineer"))
        assert r.json()["valid"] is False and "warn_fill: got 1.8" in r.json()["problems"][0]
        r = await client.post("/api/v1/configs", json={"yaml": bad}, headers=auth("engineer"))
        assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_config"
        r = await client.post("/api/v1/configs", json={"yaml": BASE}, headers=auth("engineer"))
        assert r.status_code == 201 and r.json()["number"] == 1 and r.json()["author"] == "user:t-engineer"
        r = await client.get("/api/v1/configs/history", headers=auth("engineer"))
        assert [v["number"] for v in r.json()] == [1]
        r = await client.get("/api/v1/configs/history/7", headers=auth("engineer"))
        assert r.status_code == 404

    api.run(scenario)
    assert published == [1]
