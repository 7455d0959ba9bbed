"""API test harness: the real app (lifespan included) on a real SQLite file, driven through httpx's
ASGI transport. Tokens are known plain texts; the clock is a settable number."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from gridsentinel.api.app import create_app
from gridsentinel.api.auth import TokenEntry, TokenStore, hash_token
from gridsentinel.api.config import ApiConfig
from gridsentinel.api.state import ApiState
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.events import CaseEvent
from gridsentinel.core.records import Detection
from gridsentinel.settings import REPO_ROOT, Settings

from ...conftest import drain_detection

CONFIG_DIR = REPO_ROOT / "config"
CELL = "320582004001001"  # in config/grid.geojson
NEIGHBOUR = "320582004001002"
FAR_CELL = "320582004001018"
MONDAY_10H = 1749434400.0  # 2025-06-09 10:00 Asia/Shanghai
TOKENS = {role: f"test-{role}-token" for role in ("viewer", "dispatcher", "engineer", "admin", "citizen",
                                                  "inspector")}


def auth(role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKENS[role]}"}


def detection(detection_id: str, **overrides: Any) -> Detection:
    return drain_detection(detection_id, **{"grid_code": CELL, "observed_at": MONDAY_10H, "device_id": "drain-001",
                                            "lat": 31.87225, "lon": 120.55053, **overrides})


Scenario = Callable[[httpx.AsyncClient], Awaitable[None]]


@dataclass
class Harness:
    tmp_path: Path
    now: float = MONDAY_10H
    sink: list[CaseEvent] = field(default_factory=list)  # events of changes the API made itself
    hold: bool = False  # keep Open311 detections from the case stage until release()
    held: list[Detection] = field(default_factory=list)
    stage_events: list[CaseEvent] = field(default_factory=list)  # what the case stage made of them

    def __post_init__(self) -> None:
        tokens = TokenStore(
            [
                TokenEntry(id=f"t-{role}", role=role, hash=hash_token(plain))  # type: ignore[arg-type]
                for role, plain in TOKENS.items()
            ]
        )
        config = ApiConfig(
            database_url=f"sqlite:///{self.tmp_path / 'cases.db'}",
            tokens_path=self.tmp_path / "none.yaml",
            max_body_bytes=4096,
            sse_keepalive_s=0.2,
        )

        async def sink(events: list[CaseEvent]) -> None:
            self.sink.extend(events)

        self.app = create_app(
            Settings(config_dir=CONFIG_DIR, run_dir=self.tmp_path),
            config=config,
            tokens=tokens,
            clock=lambda: self.now,
            event_sink=sink,
            detection_sink=self.case_stage,
            open311_wait_s=0.2,
        )
        self.state: ApiState = self.app.state.gs

    async def case_stage(self, d: Detection) -> None:
        """The API's route to the case stage (gs.detections in production): the detection is applied
        as the stage applies it, at once, or once released when ``hold`` is set."""
        self.held.append(d)
        if not self.hold:
            await self.release()

    async def release(self) -> None:
        held, self.held = self.held, []
        for d in held:
            self.stage_events += await apply_detection(
                d, self.state.case_store(), self.state.catalog, self.state.grid.neighbours(), now=self.now
            )

    async def detect(self, detection_id: str, **overrides: Any) -> list[CaseEvent]:
        """Apply a detection to the app's store, as the Faust case stage would."""
        return await apply_detection(
            detection(detection_id, **overrides),
            self.state.case_store(),
            self.state.catalog,
            self.state.grid.neighbours(),
            now=self.now,
        )

    def run(self, scenario: Scenario) -> None:
        async def main() -> None:
            async with self.app.router.lifespan_context(self.app):
                transport = httpx.ASGITransport(app=self.app)
                async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
                    await scenario(client)

        asyncio.run(main())


@pytest.fixture
def api(tmp_path: Path) -> Harness:
    return Harness(tmp_path)


def assert_error(response: httpx.Response, status: int, code: str | None = None) -> dict[str, Any]:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}, body
    if code is not None:
        assert body["error"]["code"] == code, body
    return body["error"]
