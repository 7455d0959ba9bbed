"""The FastAPI app: :func:`create_app` (the API's composition root) and :func:`run_api`.

The lifespan opens the SQL case store (``GS_DATABASE_URL``, default ``sqlite:///<run_dir>/cases.db``)
unless a store is given, optionally starts the Kafka feeder of the SSE hub and the Kafka producer that
hands Open311 reports to the case stage (``gs.detections``), and closes them on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn
from fastapi import FastAPI
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gridsentinel.analytics.model_store import ModelStore, Retrainer
from gridsentinel.analytics.patrol_plan import load_cases
from gridsentinel.analytics.weather import rain_source
from gridsentinel.api.auth import TokenStore
from gridsentinel.api.config import ApiConfig
from gridsentinel.api.device_health import Following, start_following
from gridsentinel.api.errors import error_body, install_error_handlers
from gridsentinel.api.hub import CaseEventHub, DetectionProducer, consume_case_events
from gridsentinel.api.privacy import load_pseudonym_key
from gridsentinel.api.routers import (
    cases,
    centers,
    configs,
    dashboard,
    device_health,
    devices,
    evidence,
    export,
    grid,
    hotline,
    incidents,
    inspector,
    open311,
    ops,
    patrol,
    reports,
    signals,
    stream,
    verification,
)
from gridsentinel.api.state import ApiState, DetectionSink, EventSink
from gridsentinel.api.users import UserStore
from gridsentinel.cases.categories import load_catalog
from gridsentinel.cases.centers import center_names, derive_centers
from gridsentinel.cases.hotline_store import HotlineStore
from gridsentinel.cases.incidents import load_families
from gridsentinel.cases.intake import load_channels
from gridsentinel.cases.quality import QualityConfig
from gridsentinel.cases.report_store import ReportStore
from gridsentinel.cases.store import SqlCaseStore, create_engine, upgrade
from gridsentinel.cases.store_protocol import CaseStore
from gridsentinel.core.config import load_yaml
from gridsentinel.core.devices import Registry
from gridsentinel.core.grid import GridMap
from gridsentinel.core.topics import Topics
from gridsentinel.devices.registry import BrokerCredentials, DeviceRegistry, FeedPublisher
from gridsentinel.devices.store import DeviceConflict, DeviceStore
from gridsentinel.errors import ConfigError
from gridsentinel.liveconfig.appliers import follow_catalog
from gridsentinel.settings import Settings

DESCRIPTION = """GridSentinel's HTTP API: grid-management cases, their live event stream, devices, the unit
grid, Open311 GeoReport v2, health and metrics.

Every route except `/healthz` needs `Authorization: Bearer <token>`; roles are
viewer < dispatcher < supervisor < engineer < admin (plus `citizen`, Open311 only, and `department`, the cases
dispatched to a department). A user of a center sees only its center's cases: any other case is answered 404.
Every error has the shape `{"error": {"code": ..., "message": ..., "details": ...}}`."""


UPLOAD_PREFIX = "/api/v1/inspector/"


REPORT_PATH = "/open311/v2/requests.json"


class _Edge:
    """Pure ASGI middleware: 413 for declared bodies over the limit, and request counts for /metrics
    (by route template, so ids do not explode the label set). Pure ASGI keeps SSE streaming intact."""

    def __init__(self, app: ASGIApp, state: ApiState) -> None:
        self.app = app
        self.state = state

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        length = dict(scope.get("headers") or []).get(b"content-length", b"")
        limit = self.state.config.max_body_bytes
        if str(scope.get("path", "")).startswith(UPLOAD_PREFIX):  # inspectors' reports carry photos
            limit = self.state.config.max_upload_bytes
        if scope.get("path") == REPORT_PATH and scope.get("method") == "POST":  # a report may carry a photo
            limit = max(limit, self.state.config.max_report_bytes)
        if length.isdigit() and int(length) > limit:
            body = json.dumps(
                error_body("payload_too_large", f"request body larger than {limit} bytes")
            ).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 413,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
            self._count(scope, 413)
            return
        status = 500

        async def counting_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            self._count(scope, status)

    def _count(self, scope: Scope, status: int) -> None:
        route = scope.get("route")
        path = getattr(route, "path", None) or "unmatched"
        self.state.requests[(str(scope.get("method", "")), path, status)] += 1


def _load_quality(settings: Settings) -> QualityConfig:
    """config/quality.yaml (the report-quality thresholds); the defaults when the file is absent."""
    path = settings.config_dir / "quality.yaml"
    return load_yaml(path, QualityConfig) if path.exists() else QualityConfig()


def _load_geojson(settings: Settings) -> dict[str, Any]:
    path = settings.config_dir / "grid.geojson"
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot load the grid ({exc})") from None
    return data


def create_app(
    settings: Settings,
    *,
    store: CaseStore | None = None,
    config: ApiConfig | None = None,
    tokens: TokenStore | None = None,
    hub: CaseEventHub | None = None,
    clock: Callable[[], float] = time.time,
    event_sink: EventSink | None = None,
    consume_kafka: bool = False,
    detection_sink: DetectionSink | None = None,
    produce_detections: bool = False,
    open311_wait_s: float = 2.0,
    publish_devices: bool = False,
    follow_devices: bool = False,
) -> FastAPI:
    """Build the API.

    ``store``: use this case store (the caller closes it) instead of opening ``config.database_url``.
    ``hub``: the SSE hub (give one to publish into it from elsewhere in the process; else a new one,
    available as ``app.state.gs.hub``). ``event_sink``: called with the events of every change the API
    itself makes (transitions), e.g. to produce them to ``gs.case-events``.
    ``consume_kafka``: feed the hub from ``gs.case-events`` while the app runs.
    ``produce_detections``: send Open311 reports to ``gs.detections`` (keyed by dedup region) for the
    case stage; or give ``detection_sink`` to route them elsewhere. With neither, Open311 POST answers 503.
    ``open311_wait_s``: how long a POST waits for the case stage to apply its report before it answers
    with the token alone.
    ``publish_devices``: publish device-registry changes on ``gs.devices`` (else they wait in the outbox for
    ``gridsentinel devices sync``). The registry lives in ``config.database_url``; an empty one is seeded from
    config/devices.yaml (the dev/demo path; the broker's password file is left to ``gridsentinel up``).
    ``follow_devices``: follow the registry's feed (``gs.devices``) and device health and status
    (``gs.device-health``, ``gs.device-status``) while the app runs (api/device_health.py).
    """
    config = config or ApiConfig.from_settings(settings)
    grid_map = GridMap.load(settings.config_dir / "grid.geojson")
    geojson = _load_geojson(settings)
    catalog = load_catalog(settings.config_dir)
    state = ApiState(
        settings=settings,
        config=config,
        catalog=catalog,
        grid=grid_map,
        grid_geojson=geojson,
        registry=Registry.load(settings.config_dir),
        tokens=tokens or TokenStore.load(config.tokens_path),
        hub=hub or CaseEventHub(),
        clock=clock,
        event_sink=event_sink,
        detection_sink=detection_sink,
        open311_wait_s=open311_wait_s,
        store=store,
        centers=derive_centers(grid_map.cells, center_names(geojson.get("features", []))),
        channels=load_channels(settings.config_dir, grid_map, set(catalog.policies)),
        quality=_load_quality(settings),
        pseudonym_key=load_pseudonym_key(settings),
        families=load_families(settings.config_dir, catalog),
    )

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        opened: SqlCaseStore | None = None
        if state.store is None:
            opened = await SqlCaseStore.open(config.database_url)
            state.store = opened
        state.device_registry = await open_device_registry(settings, config.database_url, grid_map,
                                                           publish=publish_devices)
        # API users and tokens (gridsentinel users ...): read on every request, so no restart is needed
        state.users = UserStore(create_engine(config.database_url), clock=state.clock)
        await upgrade(state.users.engine)
        state.hotline = HotlineStore(state.users.engine)  # same database, same engine
        state.reports = ReportStore(state.users.engine)  # same database, migrated together
        state.models = ModelStore(state.users.engine)  # the hotspot forecast's models, likewise
        retrainer = None
        if consume_kafka and settings.forecast_retrain_at:  # a running API (not a test's app) retrains nightly
            store = state.case_store()
            calendar = state.catalog.calendar
            state.retrainer = Retrainer(
                state.models, lambda since: load_cases(store, since, state.clock()), grid_map.cells,
                tz=calendar.timezone, at=settings.forecast_retrain_at, clock=state.clock,
                is_working_day=lambda day: state.catalog.calendar.is_working_day(day),  # live config may replace it
                rain=rain_source(settings, calendar.timezone))
            retrainer = asyncio.create_task(state.retrainer.run())
        feeder = asyncio.create_task(consume_case_events(state.hub, settings)) if consume_kafka else None
        # live categories / routing / calendar versions (gs.config) replace the catalogue without a restart
        catalog_follower = asyncio.create_task(follow_catalog(
            settings, state.catalog, lambda c: setattr(state, "catalog", c))) if consume_kafka else None
        following: Following | None = None
        if follow_devices:
            following = start_following(settings, state.registry, state.device_health)
        producer = None
        if produce_detections:
            producer = DetectionProducer(settings, Topics(settings.topic_prefix).detections)
            state.detection_sink = producer
        try:
            yield
        finally:
            state.hub.close()
            if following is not None:
                following.stop()
            if producer is not None:
                state.detection_sink = detection_sink
                await producer.stop()
            for task in (feeder, catalog_follower, retrainer):
                if task is not None:
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await task
            if opened is not None:
                await opened.close()
                state.store = None
            await state.device_registry.store.close()
            state.device_registry = None
            await state.users.engine.dispose()
            state.users = None
            state.hotline = None
            state.reports = None
            state.models = state.retrainer = None

    app = FastAPI(
        title="GridSentinel API",
        version="1.0.0",
        description=DESCRIPTION,
        lifespan=lifespan,
        openapi_tags=[
            {"name": "cases", "description": "Grid-management cases and their workflow."},
            {"name": "centers", "description": "The user, its center, and the centers' queues."},
            {"name": "stream", "description": "Live case events (server-sent events)."},
            {"name": "devices", "description": "The device registry."},
            {"name": "grid", "description": "Unit grid cells with open-case counts."},
            {"name": "open311", "description": "Open311 GeoReport v2 (JSON)."},
            {"name": "ops", "description": "Health and Prometheus metrics."},
            {"name": "export", "description": "Desensitised case exports (CSV, GeoJSON) for other departments."},
        ],
    )
    app.state.gs = state
    install_error_handlers(app)
    # The stream router first: /api/v1/cases/stream must not be taken for a case id.
    for module in (stream, cases, centers, device_health, devices, grid, open311, ops, signals, evidence, dashboard,
                    configs, reports, patrol, inspector, hotline, verification, incidents, export):
        app.include_router(module.router)
    app.include_router(hotline.page_router)
    app.add_middleware(_Edge, state=state)
    _add_open311_body_schema(app)
    return app


async def open_device_registry(settings: Settings, url: str, grid: GridMap, *, publish: bool) -> DeviceRegistry:
    """The device registry on ``url``; seeded from config/devices.yaml when it has no device yet."""
    store = await DeviceStore.open(url, grid)
    registry = DeviceRegistry(store, BrokerCredentials(settings), FeedPublisher(settings) if publish else None)
    try:
        if await store.count() == 0 and (settings.config_dir / "devices.yaml").exists():
            seed = Registry.load(settings.config_dir)
            with contextlib.suppress(DeviceConflict):  # another API process seeded it meanwhile
                await registry.seed(list(seed.devices.values()), broker=False)
    except BaseException:
        await store.close()
        raise
    return registry


def _add_open311_body_schema(app: FastAPI) -> None:
    """The Open311 POST body is parsed by hand (form or JSON), so put its schema in the document."""
    from fastapi.openapi.utils import get_openapi

    from gridsentinel.api.schemas.requests import Open311RequestIn

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title,
                version=app.version,
                description=app.description,
                routes=app.routes,
                tags=app.openapi_tags,
            )
            components = schema.setdefault("components", {}).setdefault("schemas", {})
            components["Open311RequestIn"] = Open311RequestIn.model_json_schema(
                ref_template="#/components/schemas/{model}"
            )
            # FastAPI documents 422 with its own shape; ours is the one error shape.
            for ops in schema.get("paths", {}).values():
                for op in ops.values():
                    if "422" in op.get("responses", {}):
                        op["responses"]["422"] = {
                            "description": "Invalid parameters or body",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/ErrorResponse"}}
                            },
                        }
            components.pop("HTTPValidationError", None)
            components.pop("ValidationError", None)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]


GRACEFUL_SHUTDOWN_S = 10  # then uvicorn cancels what still runs (a backstop: SSE streams end first)


def run_api(
    settings: Settings, host: str = "127.0.0.1", port: int = 8080, *, consume_kafka: bool = True
) -> int:
    """Serve the API with uvicorn in the foreground (what ``gridsentinel api`` runs) until SIGINT/SIGTERM."""
    app = create_app(settings, consume_kafka=consume_kafka, produce_detections=consume_kafka,
                     publish_devices=consume_kafka, follow_devices=consume_kafka)
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level="info",
        # JSON log lines: uvicorn's loggers go through the root's JSON handler instead of its own set-up
        log_config=None if settings.log_format == "json" else uvicorn.config.LOGGING_CONFIG,
        proxy_headers=False,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
    )
    ApiServer(config, app.state.gs.hub).run()
    return 0


class ApiServer(uvicorn.Server):
    """uvicorn's server that ends the SSE streams when it shuts down.

    uvicorn's graceful shutdown waits for every open response to finish, and an SSE response never does
    on its own: with a dashboard open, SIGTERM left the API running. Closing the hub ends each stream
    (after what it still holds), so its connection closes and the shutdown goes on.
    """

    def __init__(self, config: uvicorn.Config, hub: CaseEventHub) -> None:
        super().__init__(config)
        self._hub = hub

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self._hub.close()
        await super().shutdown(sockets)
