"""Scope, route by route (issue 16 "Done when"): users of several centers - two streets of one district, the
district, a department, all made in the real case database (SQLite and PostgreSQL) - call EVERY operation of
the API's OpenAPI document (the desensitised export and the report-quality view included), with the path
parameters filled with the OTHER street's case ids, cells, device, evidence snapshot and Open311 token. No
response may carry the id, grid code or title of a case outside the caller's scope, a direct fetch of another
center's case is 404, and the export lists exactly the caller's cases. The same calls with a city-wide token do
show those ids: the check can fail.

The app runs in-process (its real lifespan: the SQL store, the users store, the device registry) on a copy
of config/ whose grid gains a second street of the district (320582005) and a street of another district
(320583001); cases come from detections applied by the case stage's own dedup code.
"""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
import shutil
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from gridsentinel.api.app import create_app
from gridsentinel.api.config import ApiConfig
from gridsentinel.api.users import UserStore
from gridsentinel.cases.authority import QUEUES
from gridsentinel.cases.case import Case, CaseChange
from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.events import CaseEvent
from gridsentinel.cases.hotline_store import HotlineCall
from gridsentinel.cases.report_store import CitizenReport
from gridsentinel.cases.store_protocol import CaseQuery, IncidentQuery
from gridsentinel.core.records import Detection
from gridsentinel.settings import REPO_ROOT, Settings

from ..conftest import drain_detection
from ..unit.cases.test_scope_queries import compare_stores
from .conftest import Namespace

pytestmark = pytest.mark.integration
STREETS = {"s4": "320582004", "s5": "320582005", "d3": "320583001"}  # d3: a street of district 320583
SHIFT = {"320582004": 0.0, "320582005": 0.01, "320583001": 0.02}  # degrees of longitude east of the demo grid
NOW = time.time()


@dataclass(frozen=True)
class Caller:
    name: str
    role: str
    center: str | None
    department: str | None
    sees: str  # the grid-code prefix it sees ("" for the department user: see ``in_scope``)

    def in_scope(self, case: Case) -> bool:
        """The scope by construction of the test (not through the code under test)."""
        if self.department is not None:
            return case.department == self.department or self.department in case.assisting_departments
        return case.grid_code.startswith(self.sees)


CALLERS = [
    Caller("s4", "admin", "street:320582004", None, "320582004"),  # admin: it passes every role check
    Caller("s5", "dispatcher", "street:320582005", None, "320582005"),
    Caller("dist", "supervisor", "district:320582", None, "320582"),
    Caller("dept", "department", None, "sanitation", ""),
]
OTHER = {"s4": "s5", "s5": "s4", "dist": "d3", "dept": "s4"}  # whose ids fill a caller's path parameters


def grid_with_streets(config_dir: Path) -> None:
    """The demo street copied to street 320582005 and to street 320583001, east of it (names on one)."""
    path = config_dir / "grid.geojson"
    data = json.loads(path.read_text())
    base = [f for f in data["features"] if f["properties"]["code"].startswith("320582004")]
    for street, shift in SHIFT.items():
        if shift == 0.0:
            continue
        for f in base:
            ring = [[x + shift, y] for x, y in f["geometry"]["coordinates"][0]]
            props = {**f["properties"], "code": street + f["properties"]["code"][9:], "street_name": f"Street {street}"}
            data["features"].append({**f, "properties": props, "geometry": {"type": "Polygon", "coordinates": [ring]}})
    path.write_text(json.dumps(data))


def cell(street: str, n: int = 1) -> str:
    return f"{street}001{n:03d}"


def centre(code: str) -> tuple[float, float]:
    """The demo grid's cell geometry (scripts/make-grid.py), moved east by the street's shift."""
    community, seq = int(code[9:12]), int(code[12:]) - 1
    row, col = divmod(seq, 3)
    col += 3 * (community - 1)
    return 31.8727 - (row + 0.5) * 0.0009, 120.5500 + (col + 0.5) * 0.001057 + SHIFT[code[:9]]


def add_devices(config_dir: Path) -> None:
    path = config_dir / "devices.yaml"
    data = yaml.safe_load(path.read_text())
    for key, street in STREETS.items():
        lat, lon = centre(cell(street, 2))
        data["devices"].append({"id": f"drain-{key}", "kind": "drain_level", "location": {"lat": lat, "lon": lon},
                                "grid_code": cell(street, 2), "expected_interval_s": 60,
                                "install": {"depth_m": 3.0, "rim_m": 3.0}})
    path.write_text(yaml.safe_dump(data, sort_keys=False))


def detection(key: str, n: int, what: str, detection_id: str, **extra: Any) -> Detection:
    """A drain overflow (drainage) or a camera's illegal dumping (sanitation) in cell ``n`` of a street,
    with a title of its own."""
    street = STREETS[key]
    lat, lon = centre(cell(street, n))
    fields: dict[str, Any] = {"grid_code": cell(street, n), "observed_at": NOW - 3600, "lat": lat, "lon": lon,
                              "device_id": f"drain-{key}", "message": f"title-{key}-{n}-{what}"}
    if what == "dumping":
        fields.update(source="camera", detector="static_object", kind="illegal_dumping", category_code="0103",
                      category_standard="CJ/T 214-2007", severity="warning", device_id=None)
    return drain_detection(detection_id, **{**fields, **extra})


def hex_id(text: str) -> str:
    """A 32-hex-digit id made from ``text`` (evidence snapshots and Open311 tokens have that shape)."""
    return (text.encode().hex() + "0" * 32)[:32]


@dataclass
class World:
    app: Any
    tokens: dict[str, str]  # caller name (and "city") -> secret
    evidence: dict[str, str]  # street key -> detection id with a snapshot
    open311: dict[str, str]  # street key -> Open311 token of a report there
    events: list[CaseEvent]
    calls: dict[str, str] = field(default_factory=dict)  # street key -> a hotline call placed there
    reports: dict[str, str] = field(default_factory=dict)  # street key -> a citizen report held there
    incidents: dict[str, str] = field(default_factory=dict)  # street key -> the incident of its drains


async def build(tmp_path: Path, settings: Settings, url: str) -> World:
    config_dir = tmp_path / "scope-config"
    shutil.copytree(REPO_ROOT / "config", config_dir)
    grid_with_streets(config_dir)
    add_devices(config_dir)
    tokens: dict[str, str] = {}
    async with UserStore.open(url) as users:
        for c in CALLERS:
            tokens[c.name] = (await users.create_user(c.name, c.role, center=c.center, department=c.department,
                                                      actor="test")).secret
        tokens["city"] = (await users.create_user("city", "admin", actor="test")).secret
    holder: list[Any] = []

    async def case_stage(d: Detection) -> None:
        """What gs.detections leads to: the case stage applies the report (here at once, in-process)."""
        state = holder[0].state.gs
        await apply_detection(d, state.case_store(), state.catalog, state.grid.neighbours(), now=NOW)

    # run_dir: the test's own (evidence snapshots); the stack's InfluxDB token is computed from the stack's
    app = create_app(settings.with_(config_dir=config_dir, run_dir=tmp_path, influx_token_env=settings.influx_token),
                     config=ApiConfig(database_url=url, tokens_path=tmp_path / "none.yaml"),
                     clock=lambda: NOW, detection_sink=case_stage, open311_wait_s=0.0)
    holder.append(app)
    return World(app, tokens, {}, {}, [])


async def seed(world: World) -> None:
    state = world.app.state.gs
    store = state.case_store()
    snapshots = state.settings.run_dir / "evidence"
    snapshots.mkdir(exist_ok=True)
    events: list[CaseEvent] = []
    for key in STREETS:
        for n, kind in ((1, "drain"), (3, "dumping"), (5, "drain")):
            detection_id = hex_id(f"{key}-{n}") if kind == "dumping" else f"{key}-{n}-{kind}"
            if kind == "dumping":  # the frames stage's de-identified snapshot of it
                world.evidence[key] = detection_id
                (snapshots / f"{detection_id}.jpg").write_bytes(b"\xff\xd8\xff\xd9")
            events += await apply_detection(detection(key, n, kind, detection_id), store, state.catalog,
                                            state.grid.neighbours(), now=NOW - 3000, families=state.families)
        # a citizen's report in the street: its Open311 token resolves to the case it opened
        token = hex_id(f"citizen-{key}")
        report = detection(key, 7, "report", f"citizen:{token}", source="citizen", detector="open311",
                           kind="citizen_report", device_id=None)
        events += await apply_detection(report, store, state.catalog, state.grid.neighbours(), now=NOW - 2000,
                                        families=state.families)
        world.open311[key] = token
        # the drains in cells 1 and 5 and the report in cell 7 are one flood: an incident of the street
        [incident] = [i for i in await store.list_incidents(IncidentQuery(limit=100))
                      if i.incident_id not in world.incidents.values()]
        world.incidents[key] = incident.incident_id
        # a hotline call placed in the street, and a citizen report held there for verification
        lat, lon = centre(cell(STREETS[key], 1))
        call = HotlineCall(call_id=str(uuid.uuid5(uuid.NAMESPACE_URL, f"call-{key}")), text=f"title-{key}-call",
                           address="x", called_at=NOW - 900,
                           received_at=NOW - 890, taken_by="city", status="pending", candidates=[],
                           suggestions=[], grid_code=cell(STREETS[key], 1), lat=lat, lon=lon)
        await state.hotline_store().add(call)
        world.calls[key] = call.call_id
        held = hex_id(f"held-{key}")
        await state.reports.add(CitizenReport(
            report_id=held, detection_id=f"citizen:{held}", received_at=NOW - 800, reporter="city", lat=lat, lon=lon,
            grid_code=cell(STREETS[key], 1), category_key="event:0103", decision="verify", state="held",
            gaming_score=0.0, quality={"reasons": [{"code": "no_photo", "detail": "no photo"}]}, detection={},
            description=f"title-{key}-held"))
        world.reports[key] = held
    # a case of street 5 escalated to the district, overdue (queues, and the "in its hands" rule)
    [case] = await store.list_cases(CaseQuery(grid_prefix=cell(STREETS["s5"], 5)))
    async with store.transaction() as tx:
        await tx.save(CaseChange(replace(case, center="district:320582", escalation_level=1, due_at=NOW - 60), ()),
                      case.version)
    world.events = events
    state.hub.publish_many(events)


def secrets_of(case: Case) -> set[str]:
    return {case.case_id, case.grid_code, case.title}


async def all_cases(world: World) -> list[Case]:
    return await world.app.state.gs.case_store().list_cases(CaseQuery(limit=10_000))


def fill(path: str, other: str, world: World, cases: list[Case]) -> list[str]:
    """Concrete paths for a template, its parameters taken from the ``other`` street."""
    street = STREETS[other]
    theirs = [c for c in cases if c.grid_code.startswith(street)]
    values: dict[str, list[str]] = {
        "case_id": [c.case_id for c in theirs],
        "service_request_id": [c.case_id for c in theirs],
        "device_id": [f"drain-{other}"],
        "detection_id": [world.evidence[other]],
        "token": [world.open311[other]],
        "service_code": ["event:0103"],
        "number": ["1"],
        "call_id": [world.calls[other]],
        "report_id": [world.reports[other]],
        "incident_id": [world.incidents[other]],
        "name": ["0" * 64 + ".jpg"],  # inspectors' photos are named by their content's hash: none here
    }
    names = re.findall(r"{([^}]+)}", path)
    if not names:
        return [path]
    [name] = names
    return [path.replace(f"{{{name}}}", v) for v in values[name]]


def queries(path: str, params: list[dict[str, Any]], other: str, theirs: list[Case]) -> list[dict[str, Any]]:
    """Query strings to try: the required ones filled, plus each filter pointed at the other street."""
    street = STREETS[other]
    base: dict[str, Any] = {}
    for p in params:
        if p["in"] == "query" and p.get("required"):
            base[p["name"]] = {"start": NOW - 86400, "end": NOW}[p["name"]]
    names = {p["name"] for p in params if p["in"] == "query"}
    out = [base]
    if "grid_prefix" in names:
        out.append({**base, "grid_prefix": street})
    if "center" in names and path == "/api/v1/reports/weekly":
        out.append({**base, "center": street, "forecast": "false"})
        out[0] = {**base, "forecast": "false"}
    if "queue" in names:
        out += [{**base, "queue": q, "center": f"street:{street}"} for q in QUEUES]
        out += [{**base, "queue": q} for q in QUEUES]
    if "service_request_id" in names:
        out.append({**base, "service_request_id": ",".join(c.case_id for c in theirs)})
    return out


BODIES: dict[tuple[str, str], Any] = {
    ("post", "/api/v1/cases/{case_id}/transitions"): {"action": "acknowledge"},
    ("post", "/api/v1/incidents/{incident_id}/dispatch"): {"note": "x"},
}


async def call_everything(world: World, client: httpx.AsyncClient, caller: str, other: str, *,
                          reads_only: bool = False) -> list[tuple[str, int, str]]:
    """Every operation with ``caller``'s token, parameters from ``other``'s street: (what, status, body).
    ``reads_only``: GET only (the city-wide admin could change devices and configs)."""
    schema = world.app.openapi()
    cases = await all_cases(world)
    theirs = [c for c in cases if c.grid_code.startswith(STREETS[other])]
    headers = {"Authorization": f"Bearer {world.tokens[caller]}"}
    out: list[tuple[str, int, str]] = []
    for template, ops in schema["paths"].items():
        for method, op in ops.items():
            if reads_only and method != "get":
                continue
            params = op.get("parameters", [])
            for path in fill(template, other, world, cases):
                for query in queries(template, params, other, theirs):
                    what = f"{method.upper()} {path} {query}"
                    if template == "/api/v1/cases/stream":
                        body = await read_stream(world, client, headers, caller, query)
                        out.append((what, 200, body))
                        continue
                    kwargs: dict[str, Any] = {"params": query, "headers": headers}
                    if method in ("post", "patch", "put"):
                        if template == "/open311/v2/requests.json":
                            lat, lon = centre(cell(STREETS[other], 1))
                            kwargs["json"] = {"service_code": "component:0103", "lat": lat, "long": lon,
                                              "description": f"title-{other}-1-drain"}
                        else:
                            kwargs["json"] = BODIES.get((method, template), {})
                    r = await client.request(method.upper(), path, **kwargs)
                    assert r.status_code < 500, f"{what}: {r.status_code} {r.text[:300]}"
                    out.append((what, r.status_code, r.text))
    return out


async def read_stream(world: World, client: httpx.AsyncClient, headers: dict[str, str], caller: str,
                      query: dict[str, Any]) -> str:
    """The replay of every event the hub keeps (Last-Event-ID unknown), ended by a fresh event of one of the
    caller's own cases: as many frames as the caller may see plus that one, so a leaked event, wherever it
    sits in the history, is among the frames read."""
    prefix = query.get("grid_prefix", "")
    cases = {c.case_id: c for c in await all_cases(world)}
    by_name = {c.name: c for c in CALLERS}
    sees: Callable[[Case], bool] = (lambda _: True) if caller == "city" else by_name[caller].in_scope
    mine = [e for e in world.events if sees(cases[e.case_id]) and e.grid_code.startswith(prefix)]
    if not mine:
        return ""  # nothing of its own to end the replay with (a prefix outside its scope): the call without
        # a prefix reads the whole history
    sentinel = replace(mine[-1], event_id=f"{mine[-1].case_id}:sentinel-{len(world.events)}")
    world.events.append(sentinel)
    world.app.state.gs.hub.publish(sentinel)
    r = await asyncio.wait_for(client.get("/api/v1/cases/stream", params={**query, "limit": len(mine) + 1},
                                          headers={**headers, "Last-Event-ID": "unknown"}), 60)
    assert r.status_code == 200, r.text
    return r.text


def test_no_route_leaks_across_centers(case_store_url: str, ns: Namespace, tmp_path: Path) -> None:
    async def scenario() -> None:
        world = await build(tmp_path, ns.settings, case_store_url)  # ns: an InfluxDB bucket of its own
        app = world.app
        async with app.router.lifespan_context(app):
            await seed(world)
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://test", timeout=60) as client:
                operations = sum(len(ops) for ops in app.openapi()["paths"].values())
                assert operations >= 35
                for caller in CALLERS:
                    other = OTHER[caller.name]
                    cases = await all_cases(world)
                    forbidden = set().union(*(secrets_of(c) for c in cases if not caller.in_scope(c)))
                    for key, street in STREETS.items():  # the hotline calls and held reports of streets it cannot see
                        if not any(caller.in_scope(c) for c in cases if c.grid_code.startswith(street)):
                            forbidden |= {world.calls[key], world.reports[key], f"title-{key}-call",
                                          f"title-{key}-held"}
                    own = [c for c in cases if caller.in_scope(c)]
                    assert forbidden and own, caller
                    calls = await call_everything(world, client, caller.name, other)
                    assert len(calls) >= operations  # every operation, some several times
                    for what, status, body in calls:
                        # a 404's message may repeat what was asked ("no case <id>", as for a missing one)
                        asked = set(re.findall(r"[0-9a-f-]{8,}|[0-9]{15}|title-[a-z0-9-]+", what))
                        leaked = sorted(s for s in forbidden - asked if s in body)
                        assert not leaked, f"{caller.name}: {what} -> {status} leaks {leaked[:3]}: {body[:300]}"
                        if what.startswith("GET /api/v1/cases/stream") and body:  # read to the history's end
                            assert ":sentinel-" in body, f"{caller.name}: {what}: {body[-300:]}"
                    # direct fetches of the other street's cases are 404, as for an id that does not exist
                    headers = {"Authorization": f"Bearer {world.tokens[caller.name]}"}
                    for case in (c for c in cases if not caller.in_scope(c)):
                        for path in (f"/api/v1/cases/{case.case_id}", f"/open311/v2/requests/{case.case_id}.json"):
                            r = await client.get(path, headers=headers)
                            expected = 404 if caller.role != "department" or path.startswith("/api") else 403
                            assert r.status_code == expected, (caller.name, path, r.text)
                    # and its own cases are there (the scope is not simply empty)
                    listed = (await client.get("/api/v1/cases", params={"limit": 500}, headers=headers)).json()
                    assert {i["case_id"] for i in listed["items"]} == {c.case_id for c in own}
                    # the desensitised export lists the same cases, no more
                    exported = (await client.get("/api/v1/export/cases.csv", headers=headers)).text
                    rows = list(csv.DictReader(io.StringIO(exported.removeprefix("\ufeff"))))
                    assert {r["case_id"] for r in rows} == {c.case_id for c in own}, caller.name
                # the check can fail: a city-wide token's answers to the same calls carry those ids
                city = await call_everything(world, client, "city", "s5", reads_only=True)
                shown = "".join(body for _, _, body in city)
                for case in await all_cases(world):
                    assert case.case_id in shown and case.grid_code in shown and case.title in shown, case
                # and the hotline call and held citizen report it was pointed at (the held reports of every street)
                assert world.calls["s5"] in shown and "title-s5-call" in shown
                assert all(world.reports[key] in shown for key in STREETS)

    asyncio.run(scenario())


def test_scope_and_queue_queries_match_authority_on_postgresql(postgres_url: Callable[[], str]) -> None:
    """The unit test's store comparison (tests/unit/cases/test_scope_queries.py) on PostgreSQL, whose JSON
    text and LIKE are not SQLite's."""
    asyncio.run(compare_stores(postgres_url()))
