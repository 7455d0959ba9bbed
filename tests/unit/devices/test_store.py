"""The device registry's store on SQLite: operations, revisions, history/outbox, import and export."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from gridsentinel.core.device_feed import DeviceChange
from gridsentinel.core.devices import Device, Location, Registry
from gridsentinel.core.grid import GridMap
from gridsentinel.devices.bulk import export_yaml, parse_import
from gridsentinel.devices.store import DeviceConflict, DeviceError, DeviceNotFound, DeviceStore
from gridsentinel.settings import REPO_ROOT

pytestmark = pytest.mark.unit

CONFIG = REPO_ROOT / "config"
GRID = GridMap.load(CONFIG / "grid.geojson")
CELL = "320582004001001"  # holds (31.87225, 120.55053)
CELL_7 = "320582004001007"  # holds (31.87055, 120.55073)


def drain(device_id: str, lat: float = 31.87225, lon: float = 120.55053, **extra: Any) -> Device:
    return Device.model_validate({"id": device_id, "kind": "drain_level", "location": {"lat": lat, "lon": lon},
                                  **extra})


def run(tmp_path: Path, scenario: Callable[[DeviceStore], Awaitable[None]]) -> None:
    async def main() -> None:
        async with DeviceStore.open(f"sqlite:///{tmp_path / 'cases.db'}", GRID) as store:
            await scenario(store)

    asyncio.run(main())


def test_changes_grow_the_revision_and_keep_a_history(tmp_path: Path) -> None:
    async def scenario(store: DeviceStore) -> None:
        [created] = await store.create([drain("d-1", install={"depth_m": 3.0})], "user:li")
        assert (created.revision, created.credential_epoch, created.credential) == (1, 1, "issued")
        assert created.device.grid_code == CELL  # found from the location
        updated = await store.update("d-1", {"expected_interval_s": 30, "install": {"depth_m": 2.5}}, "user:li")
        assert updated.revision == 2 and updated.device.expected_interval_s == 30
        assert updated.device.install == {"depth_m": 2.5}
        moved = await store.move("d-1", Location(lat=31.87055, lon=120.55073), "user:wang")
        assert moved.revision == 3 and moved.device.grid_code == CELL_7 and moved.actor == "user:wang"
        rotated = await store.rotate("d-1", "user:li")
        assert (rotated.revision, rotated.credential_epoch) == (4, 2)
        revoked = await store.revoke("d-1", "user:li")
        assert (revoked.credential, revoked.credential_epoch) == ("revoked", 3)
        retired = await store.retire("d-1", "user:li", reason="replaced")
        assert (retired.state, retired.revision, retired.credential_epoch) == ("retired", 6, 4)
        assert retired.retired_at is not None

        history = await store.history("d-1")
        assert [h.action for h in history] == ["create", "update", "move", "rotate", "revoke", "retire"]
        assert [h.revision for h in history] == [1, 2, 3, 4, 5, 6]
        assert history[1].detail["changed"]["expected_interval_s"] == {"from": 300.0, "to": 30.0}
        assert history[2].detail["to"]["grid_code"] == CELL_7
        assert history[5].detail == {"reason": "replaced"}
        assert (await store.get("d-1")) == retired

    run(tmp_path, scenario)


def test_refusals_name_the_reason(tmp_path: Path) -> None:
    async def scenario(store: DeviceStore) -> None:
        await store.create([drain("d-1")], "user:li")
        with pytest.raises(DeviceConflict, match="exist already"):
            await store.create([drain("d-2"), drain("d-1")], "user:li")
        assert await store.get("d-2") is None  # all or nothing
        with pytest.raises(DeviceConflict, match="more than once"):
            await store.create([drain("d-3"), drain("d-3")], "user:li")
        with pytest.raises(DeviceNotFound):
            await store.update("ghost", {"expected_interval_s": 10}, "user:li")
        with pytest.raises(DeviceError, match="expected_interval_s"):
            await store.update("d-1", {"expected_interval_s": -1}, "user:li")
        with pytest.raises(DeviceError, match="updatable fields"):
            await store.update("d-1", {"id": "d-9"}, "user:li")
        await store.retire("d-1", "user:li")
        for attempt in (store.rotate("d-1", "x"), store.move("d-1", Location(lat=31.87, lon=120.55), "x"),
                        store.retire("d-1", "x")):
            with pytest.raises(DeviceConflict, match="retired"):
                await attempt
        with pytest.raises(DeviceConflict, match="exist already"):  # retired ids are never reused
            await store.create([drain("d-1")], "user:li")

    run(tmp_path, scenario)


def test_outbox_holds_each_change_until_it_is_published_in_order(tmp_path: Path) -> None:
    sent: list[DeviceChange] = []

    async def scenario(store: DeviceStore) -> None:
        await store.create([drain("d-1"), drain("d-2")], "user:li")
        await store.rotate("d-1", "user:li")
        assert await store.pending_count() == 3

        async def failing(_: list[DeviceChange]) -> None:
            raise OSError("kafka down")

        with pytest.raises(OSError):
            await store.publish_pending(failing)
        assert await store.pending_count() == 3  # nothing marked

        async def send(changes: list[DeviceChange]) -> None:
            sent.extend(changes)

        assert await store.publish_pending(send, batch=2) == 3
        assert await store.pending_count() == 0
        assert await store.publish_pending(send) == 0
        assert all(h.published_at is not None for h in await store.history("d-1"))

    run(tmp_path, scenario)
    assert [(c.device_id, c.revision, c.credential_epoch) for c in sent] == [("d-1", 1, 1), ("d-2", 1, 1),
                                                                          ("d-1", 2, 2)]
    assert sent[0].actor == "user:li" and sent[0].state == "active"


def test_seed_adds_only_missing_ids_and_export_round_trips(tmp_path: Path) -> None:
    seed = list(Registry.load(CONFIG).devices.values())

    async def scenario(store: DeviceStore) -> None:
        first = await store.seed(seed)
        assert len(first) == len(seed) and {r.credential for r in first} == {"seed"}
        assert {r.credential_epoch for r in first} == {0}
        await store.retire(seed[0].id, "user:li")
        assert await store.seed(seed) == []  # idempotent; the retired one stays retired
        assert (await store.require(seed[0].id)).state == "retired"
        active = await store.list_devices(state="active")
        text = export_yaml(r.device for r in active)
        rows, errors = parse_import(text, "export.yaml")
        assert errors == []
        assert [d for _, d in rows] == [r.device for r in active]
        (tmp_path / "cfg").mkdir()
        (tmp_path / "cfg" / "devices.yaml").write_text(text)
        assert list(Registry.load(tmp_path / "cfg").devices.values()) == [r.device for r in active]

    run(tmp_path, scenario)


def test_list_filters_by_state_kind_and_grid(tmp_path: Path) -> None:
    async def scenario(store: DeviceStore) -> None:
        await store.create([drain("d-1"), drain("d-2", lat=31.87055, lon=120.55073),
                            Device(id="n-1", kind="noise", location=Location(lat=31.872, lon=120.555))], "x")
        await store.retire("d-2", "x")
        assert [r.id for r in await store.list_devices()] == ["d-1", "d-2", "n-1"]
        assert [r.id for r in await store.list_devices(state="retired")] == ["d-2"]
        assert [r.id for r in await store.list_devices(kind="noise")] == ["n-1"]
        assert [r.id for r in await store.list_devices(grid_prefix=CELL_7)] == ["d-2"]

    run(tmp_path, scenario)


def test_import_lists_every_error_by_row_and_field() -> None:
    text = ("id,kind,lat,lon,component_id,expected_interval_s,install\n"
            "ok-1,drain_level,31.87,120.55,3205820103000001,60,\"{\"\"depth_m\"\": 3}\"\n"
            "bad id!,drain_level,31.87,120.55,,,\n"
            "ok-2,toaster,95,120.55,,,\n"
            "ok-3,noise,31.87,120.55,12,abc,\n"
            "ok-4,noise,31.87,120.55,,,{not json\n"
            "ok-1,noise,31.87,120.55,,,\n")
    rows, errors = parse_import(text, "devices.csv")
    assert [d.id for _, d in rows] == ["ok-1"]
    assert rows[0][1].install == {"depth_m": 3}
    found = {(e.row, e.field) for e in errors}
    assert found == {("line 3", "id"), ("line 4", "kind"), ("line 4", "location.lat"), ("line 5", "component_id"),
                     ("line 5", "expected_interval_s"), ("line 6", "install"), ("line 7", "id")}
    assert any("appears twice (first at line 2)" in e.message for e in errors)


def test_import_yaml_and_header_errors() -> None:
    rows, errors = parse_import("devices:\n  - {id: y-1, kind: noise, location: {lat: 1, lon: 2}}\n"
                                "  - {id: y-2, kind: noise}\n  - 7\n", "d.yaml")
    assert [d.id for _, d in rows] == ["y-1"]
    assert [(e.row, e.field) for e in errors] == [("devices[2]", ""), ("devices[1]", "location")]
    _, errors = parse_import("id,kind,latitude\n", "d.csv")
    assert {(e.row, e.field) for e in errors} == {("line 1", "lat"), ("line 1", "lon"), ("line 1", "latitude")}
    _, errors = parse_import("devices: [\n", "d.yaml")
    assert errors and "not valid YAML" in errors[0].message
