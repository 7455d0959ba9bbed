"""What the routes share: the objects the lifespan created, handed over through ``app.state.gs``."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from fastapi import Request

from gridsentinel.analytics.model_store import ModelStore, Retrainer
from gridsentinel.api.auth import TokenStore
from gridsentinel.api.config import ApiConfig
from gridsentinel.api.device_health import HealthBoard
from gridsentinel.api.hub import CaseEventHub
from gridsentinel.api.users import UserStore
from gridsentinel.cases.categories import Catalog
from gridsentinel.cases.centers import CenterInfo
from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.hotline_store import HotlineStore
from gridsentinel.cases.incidents import IncidentFamilies
from gridsentinel.cases.intake import Channels
from gridsentinel.cases.quality import QualityConfig
from gridsentinel.cases.report_store import ReportStore
from gridsentinel.cases.store_protocol import CaseStore
from gridsentinel.core.devices import Registry
from gridsentinel.core.grid import GridMap
from gridsentinel.core.records import Detection
from gridsentinel.devices.registry import DeviceRegistry
from gridsentinel.settings import Settings

# Called with the events of every change the API makes (transitions), after the hub.
EventSink = Callable[[list[CaseEvent]], Awaitable[None]]
# Hands a detection (an Open311 report) to the case stage: returns once it is durably queued there
# (produced to gs.detections and acked by Kafka).
DetectionSink = Callable[[Detection], Awaitable[None]]


@dataclass
class ApiState:
    settings: Settings
    config: ApiConfig
    catalog: Catalog
    grid: GridMap
    grid_geojson: dict[str, Any]
    registry: Registry
    tokens: TokenStore
    hub: CaseEventHub
    clock: Callable[[], float]
    event_sink: EventSink | None = None
    detection_sink: DetectionSink | None = None  # set by the lifespan (or given to create_app)
    open311_wait_s: float = 2.0  # how long a POST waits for the case stage before answering a token
    store: CaseStore | None = None  # set by the lifespan (or given to create_app)
    device_registry: DeviceRegistry | None = None  # the device registry in the case DB, set by the lifespan
    users: UserStore | None = None  # API users and tokens in the case DB (api/users.py), set by the lifespan
    reports: ReportStore | None = None  # citizen reports as the intake decided them, set by the lifespan
    models: ModelStore | None = None  # the hotspot forecast's stored models, set by the lifespan
    retrainer: Retrainer | None = None  # trains one daily (GS_FORECAST_RETRAIN_AT), set by the lifespan
    quality: QualityConfig = field(default_factory=QualityConfig)  # config/quality.yaml
    pseudonym_key: bytes = b""  # HMAC key of the citizen pseudonyms viewers see (api/privacy.py)
    requests: Counter[tuple[str, str, int]] = field(default_factory=Counter)  # (method, route, status)
    open311_posts: Counter[str] = field(default_factory=Counter)  # dedup outcome -> count
    device_health: HealthBoard = field(default_factory=HealthBoard)  # gs.device-health and gs.device-status
    centers: dict[str, CenterInfo] = field(default_factory=dict)  # the grid's centers (cases/centers.py)
    channels: Channels | None = None  # inspector and hotline config, gazetteer, keyword model (create_app)
    hotline: HotlineStore | None = None  # the hotline's calls in the case DB, set by the lifespan
    families: IncidentFamilies = field(default_factory=IncidentFamilies.empty)  # incident_families.yaml
    # the de-identifier for citizens' photos shown to roles without identity rights (made on first use: it loads
    # OpenCV models) and the lock that runs one blur at a time
    photo_deidentifier: Any = None
    photo_blur_lock: asyncio.Lock | None = None

    def hotline_store(self) -> HotlineStore:
        if self.hotline is None:
            raise RuntimeError("the hotline store is not open (the app's lifespan has not run)")
        return self.hotline

    def case_store(self) -> CaseStore:
        if self.store is None:
            raise RuntimeError("the case store is not open (the app's lifespan has not run)")
        return self.store

    async def emit(self, events: list[CaseEvent]) -> None:
        """Publish the events of a change this process made: SSE first, then the configured sink."""
        self.hub.publish_many(events)
        if self.event_sink is not None and events:
            await self.event_sink(events)


def get_state(request: Request) -> ApiState:
    state: ApiState = request.app.state.gs
    return state
