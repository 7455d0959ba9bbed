"""Alert subscribers on SQLite with the broker's files in a temporary run folder (no broker running: the
files are what a reload would load): names, centers, grants, and device ids kept apart both ways."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest

from gridsentinel.core.devices import Device
from gridsentinel.core.grid import GridMap
from gridsentinel.devices.registry import BrokerCredentials, DeviceRegistry
from gridsentinel.devices.store import DeviceConflict, DeviceNotFound, DeviceStore
from gridsentinel.devices.subscribers import SubscriberError, SubscriberRegistry
from gridsentinel.settings import REPO_ROOT, Settings
from gridsentinel.stack.services import mosquitto_hash

pytestmark = pytest.mark.unit

GRID = GridMap.load(REPO_ROOT / "config" / "grid.geojson")  # one street: 320582004, communities 001 and 002
CELLS = [*GRID.cells, "320582005001001", "320583001001001"]  # plus a second street and a second district


def drain(device_id: str) -> Device:
    return Device.model_validate({"id": device_id, "kind": "drain_level",
                                  "location": {"lat": 31.87225, "lon": 120.55053}})


def run(tmp_path: Path, scenario: Callable[[SubscriberRegistry, DeviceRegistry], Awaitable[None]]) -> Settings:
    config = tmp_path / "config"
    config.mkdir()
    (config / "devices.yaml").write_text("devices: []\n")
    settings = Settings(run_dir=tmp_path / "run", config_dir=config)

    async def main() -> None:
        async with DeviceStore.open(f"sqlite:///{tmp_path / 'cases.db'}", GRID) as store:
            credentials = BrokerCredentials(settings)
            await scenario(SubscriberRegistry(store.engine, credentials, CELLS),
                           DeviceRegistry(store, credentials, None))

    asyncio.run(main())
    return settings


def passwd_line(settings: Settings, user: str) -> str | None:
    lines = (settings.run_dir / "mosquitto" / "passwd").read_text().splitlines()
    return next((line for line in lines if line.startswith(f"{user}:")), None)


def acl(settings: Settings) -> str:
    return (settings.run_dir / "mosquitto" / "acl").read_text()


def test_create_rotate_revoke_write_the_password_file_and_the_acl(tmp_path: Path) -> None:
    seen: dict[str, str] = {}

    async def scenario(subs: SubscriberRegistry, _devices: DeviceRegistry) -> None:
        issued = await subs.create("street-320582004", "street:320582004", "user:li", "street center's system")
        assert issued.password and len(issued.password) >= 40
        assert issued.grants == ["gs/v1/alerts/320582/004/#"]
        assert (issued.record.state, issued.record.credential_epoch, issued.record.created_by) == ("active", 1,
                                                                                                    "user:li")
        seen["first"] = issued.password
        line = passwd_line(settings_of(subs), "street-320582004")
        assert line is not None and issued.password not in line  # only the hash is kept
        salt_b64 = line.split("$")[3]
        import base64

        assert line.split(":", 1)[1] == mosquitto_hash(issued.password, base64.b64decode(salt_b64))

        rotated = await subs.rotate("street-320582004", "user:li")
        assert rotated.password != issued.password and rotated.record.credential_epoch == 2
        revoked = await subs.revoke("street-320582004", "user:wang")
        assert (revoked.record.state, revoked.record.actor, revoked.grants) == ("revoked", "user:wang", [])
        assert revoked.record.revoked_at is not None
        assert [r.state for r in await subs.records()] == ["revoked"]

    settings = run(tmp_path, scenario)
    assert passwd_line(settings, "street-320582004") is None
    assert "street-320582004" not in acl(settings)


def settings_of(subs: SubscriberRegistry) -> Settings:
    assert isinstance(subs.credentials, BrokerCredentials)
    return subs.credentials.mosquitto.settings


def test_each_center_level_gets_its_own_grants(tmp_path: Path) -> None:
    async def scenario(subs: SubscriberRegistry, _devices: DeviceRegistry) -> None:
        grants = {c: (await subs.create(c.replace(":", "-"), c, "t")).grants for c in (
            "community:320582004002", "district:320582", "city:3205")}
        assert grants == {"community:320582004002": ["gs/v1/alerts/320582/004/002/#"],
                          "district:320582": ["gs/v1/alerts/320582/#"],
                          "city:3205": ["gs/v1/alerts/320582/#", "gs/v1/alerts/320583/#"]}

    settings = run(tmp_path, scenario)
    text = acl(settings)
    assert "user city-3205\ntopic deny gs/v1/city-3205/#\ntopic read gs/v1/alerts/320582/#\n" \
           "topic read gs/v1/alerts/320583/#\n" in text


@pytest.mark.parametrize(("name", "center", "message"), [
    ("alerts", "street:320582004", "'alerts' is reserved"),
    ("gateway", "street:320582004", "'gateway' is reserved"),
    ("Street-A", "street:320582004", "not a subscriber name"),
    ("street-a", "street:3205820", "a street center's prefix has 9 digits"),
    ("street-a", "block:320582004", "expected <level>:<prefix>"),
    ("street-a", "street:320582999", "center street:320582999 has no cell in config/grid.geojson"),
    ("city-a", "city:1101", "center city:1101 has no cell"),
])
def test_bad_names_and_centers_are_refused_with_the_reason(tmp_path: Path, name: str, center: str,
                                                           message: str) -> None:
    async def scenario(subs: SubscriberRegistry, _devices: DeviceRegistry) -> None:
        with pytest.raises(SubscriberError, match=message):
            await subs.create(name, center, "t")
        assert await subs.records() == []

    run(tmp_path, scenario)


def test_a_name_is_either_a_device_or_a_subscriber(tmp_path: Path) -> None:
    async def scenario(subs: SubscriberRegistry, devices: DeviceRegistry) -> None:
        await devices.create(drain("pipe-1"), "t")
        await devices.create(drain("pipe-2"), "t")
        await devices.retire("pipe-2", "t")
        with pytest.raises(DeviceConflict, match=r"'pipe-1' is a device id \(active\)"):
            await subs.create("pipe-1", "street:320582004", "t")
        with pytest.raises(DeviceConflict, match=r"'pipe-2' is a device id \(retired\)"):
            await subs.create("pipe-2", "street:320582004", "t")

        await subs.create("street-a", "street:320582004", "t")
        with pytest.raises(DeviceConflict, match="alert subscribers' MQTT usernames.*street-a"):
            await devices.create(drain("street-a"), "t")
        report = await devices.import_text("id,kind,lat,lon\nstreet-a,noise,31.87225,120.55053\n", "new.csv", "t",
                                           dry_run=True)
        assert [str(e) for e in report.errors] == [
            "line 2: id: 'street-a' is an alert subscriber's MQTT username; choose another id"]
        with pytest.raises(DeviceConflict, match="exists already"):
            await subs.create("street-a", "district:320582", "t")
        with pytest.raises(DeviceNotFound):
            await subs.rotate("nobody", "t")

    run(tmp_path, scenario)


def test_sync_rewrites_grants_and_removes_revoked_passwords_left_behind(tmp_path: Path) -> None:
    async def scenario(subs: SubscriberRegistry, _devices: DeviceRegistry) -> None:
        await subs.create("city-3205", "city:3205", "t")
        await subs.create("gone", "street:320582004", "t")
        settings = settings_of(subs)
        # as if the revocation's file write had failed: the row says revoked, the broker still has the user
        saved = (settings.run_dir / "mosquitto" / "passwd").read_text()
        await subs.revoke("gone", "t")
        (settings.run_dir / "mosquitto" / "passwd").write_text(saved)
        subs.cells = [*CELLS, "320584001001001"]  # the grid gained a district
        active, removed = await subs.sync()
        assert [r.name for r in active] == ["city-3205"] and removed == ["gone"]
        assert passwd_line(settings, "gone") is None
        assert "topic read gs/v1/alerts/320584/#" in acl(settings)

    run(tmp_path, scenario)
