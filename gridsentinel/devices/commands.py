"""CLI: ``gridsentinel devices list|show|create|update|move|retire|rotate|revoke|import|export|seed|sync``.

Wire it into ``gridsentinel/cli.py`` with one call: ``register_cli(sub)`` (sub: the top-level subparsers).
Every handler has the CLI's signature ``func(args, settings) -> exit code``.
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gridsentinel.core.config import read_text
from gridsentinel.core.devices import Device, Location
from gridsentinel.core.grid import GridMap
from gridsentinel.devices.bulk import export_yaml, parse_import
from gridsentinel.devices.registry import BrokerCredentials, DeviceRegistry, FeedPublisher, Outcome
from gridsentinel.devices.store import DeviceError, DeviceRecord, DeviceStore
from gridsentinel.errors import ConfigError
from gridsentinel.settings import Settings


def default_actor() -> str:
    try:
        return f"user:{getpass.getuser()}"
    except (KeyError, OSError):
        return "user:unknown"


def load_grid(settings: Settings) -> GridMap | None:
    path = settings.config_dir / "grid.geojson"
    return GridMap.load(path) if path.exists() else None


@asynccontextmanager
async def open_registry(settings: Settings, *, publish: bool = True) -> AsyncIterator[DeviceRegistry]:
    """The registry on ``settings.database_url``, the broker's password file of ``settings.run_dir`` and
    (with ``publish``) ``gs.devices``."""
    async with DeviceStore.open(settings.database_url, load_grid(settings)) as store:
        yield DeviceRegistry(store, BrokerCredentials(settings), FeedPublisher(settings) if publish else None)


def _run(settings: Settings, action: Callable[[DeviceRegistry], Awaitable[int]]) -> int:
    async def main() -> int:
        async with open_registry(settings) as registry:
            return await action(registry)

    return asyncio.run(main())


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _report_feed(outcome: Outcome) -> None:
    if outcome.publish_error:
        _say(f"warning: committed, but {outcome.pending} change(s) are not on gs.devices yet "
             f"({outcome.publish_error}); run `gridsentinel devices sync` once Kafka is reachable")


def _when(t: float | None) -> str:
    return "-" if t is None else datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%SZ")


def _line(r: DeviceRecord) -> str:
    d = r.device
    return (f"{d.id:<24} {d.kind:<12} {r.state:<8} {d.grid_code or '-':<16} "
            f"{d.location.lat:>10.5f} {d.location.lon:>11.5f}  rev {r.revision:<4} cred {r.credential}"
            f"/{r.credential_epoch}")


def _print_changed(outcome: Outcome, verb: str) -> None:
    for r in outcome.records:
        print(f"{verb} {r.id}: revision {r.revision}, state {r.state}, grid {r.device.grid_code or '-'}, "
              f"credential {r.credential} (epoch {r.credential_epoch})")
    for device_id, password in outcome.passwords.items():
        print(f"password for {device_id} (shown once; the broker keeps only its hash): {password}")
    _report_feed(outcome)


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{what}: not valid JSON ({exc}); e.g. '{{\"depth_m\": 3.0}}'") from None


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def act(registry: DeviceRegistry) -> int:
        records = await registry.store.list_devices(state=None if args.state == "all" else args.state, kind=args.kind,
                                            grid_prefix=args.grid_prefix)
        if args.json:
            print(json.dumps([r.to_dict() for r in records], indent=1))
        else:
            for r in records:
                print(_line(r))
            _say(f"{len(records)} device(s)")
        return 0

    return _run(settings, act)


def cmd_show(args: argparse.Namespace, settings: Settings) -> int:
    async def act(registry: DeviceRegistry) -> int:
        record = await registry.store.require(args.id)
        history = await registry.store.history(args.id)
        if args.json:
            print(json.dumps({**record.to_dict(), "history": [asdict(h) for h in history]}, indent=1))
            return 0
        print(json.dumps(record.to_dict(), indent=1))
        print("history:")
        for h in history:
            published = "published" if h.published_at is not None else "NOT on gs.devices yet"
            print(f"  rev {h.revision:<4} {_when(h.at)} {h.action:<7} by {h.actor}  {json.dumps(h.detail)}  "
                  f"({published})")
        return 0

    return _run(settings, act)


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    device = _device_from_args(args)

    async def act(registry: DeviceRegistry) -> int:
        _print_changed(await registry.create(device, args.actor or default_actor()), "created")
        return 0

    return _run(settings, act)


def _device_from_args(args: argparse.Namespace) -> Device:
    from pydantic import ValidationError

    doc: dict[str, Any] = {"id": args.id, "kind": args.kind, "location": {"lat": args.lat, "lon": args.lon}}
    for name, value in (("grid_code", args.grid_code), ("component_id", args.component_id),
                        ("expected_interval_s", args.interval), ("install", _json_arg(args.install, "--install"))):
        if value is not None:
            doc[name] = value
    try:
        return Device.model_validate(doc)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
        raise DeviceError(f"device {args.id!r}: {problems}") from None


def cmd_update(args: argparse.Namespace, settings: Settings) -> int:
    changes: dict[str, Any] = {}
    for name, value in (("kind", args.kind), ("component_id", args.component_id),
                        ("expected_interval_s", args.interval), ("grid_code", args.grid_code),
                        ("install", _json_arg(args.install, "--install"))):
        if value is not None:
            changes[name] = value
    if not changes:
        raise DeviceError("nothing to update: give --kind, --component-id, --interval, --grid-code or --install")

    async def act(registry: DeviceRegistry) -> int:
        _print_changed(await registry.update(args.id, changes, args.actor or default_actor()), "updated")
        return 0

    return _run(settings, act)


def cmd_move(args: argparse.Namespace, settings: Settings) -> int:
    from pydantic import ValidationError

    try:
        location = Location(lat=args.lat, lon=args.lon)
    except ValidationError as exc:
        raise DeviceError(f"--lat/--lon: {exc.errors()[0]['msg']}") from None

    async def act(registry: DeviceRegistry) -> int:
        outcome = await registry.move(args.id, location, args.actor or default_actor(), args.grid_code)
        _print_changed(outcome, "moved")
        return 0

    return _run(settings, act)


def _simple(method: str, verb: str) -> Callable[[argparse.Namespace, Settings], int]:
    def handler(args: argparse.Namespace, settings: Settings) -> int:
        async def act(registry: DeviceRegistry) -> int:
            op = getattr(registry, method)
            extra = {"reason": args.reason} if method == "retire" else {}
            _print_changed(await op(args.id, args.actor or default_actor(), **extra), verb)
            return 0

        return _run(settings, act)

    return handler


def _write_secrets(path: Path, passwords: dict[str, str]) -> None:
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError(f"--secrets-out {path}: exists; give a new file (passwords are never overwritten)") from None
    with os.fdopen(fd, "w") as fh:
        fh.write("id,password\n")
        fh.writelines(f"{d},{p}\n" for d, p in passwords.items())


def cmd_import(args: argparse.Namespace, settings: Settings) -> int:
    text = read_text(args.file)
    if args.secrets_out is not None and args.secrets_out.exists():
        raise ConfigError(f"--secrets-out {args.secrets_out}: exists; give a new file")

    async def act(registry: DeviceRegistry) -> int:
        _say(f"{args.file}: checking {'(dry run) ' if args.dry_run else ''}...")
        report = await registry.import_text(text, str(args.file), args.actor or default_actor(),
                                            dry_run=args.dry_run)
        if args.json:
            print(json.dumps({"devices": report.devices, "dry_run": report.dry_run,
                              "errors": [e.to_dict() for e in report.errors],
                              "created": len(report.outcome.records) if report.outcome else 0}, indent=1))
        for e in report.errors:
            _say(f"{args.file}: {e}")
        if report.errors:
            _say(f"{args.file}: {len(report.errors)} error(s) in {report.devices} valid row(s); nothing imported")
            return 1
        if report.dry_run:
            _say(f"{args.file}: {report.devices} device(s) would be created; no errors (dry run: nothing changed)")
            return 0
        outcome = report.outcome
        assert outcome is not None
        _say(f"{args.file}: created {len(outcome.records)} device(s), one password-file write and one broker "
             f"reload; {outcome.published} change(s) published on gs.devices")
        if args.secrets_out is not None:
            _write_secrets(args.secrets_out, outcome.passwords)
            _say(f"passwords written to {args.secrets_out} (mode 0600; shown nowhere else)")
        elif not args.json:
            print("id,password  (shown once; the broker keeps only their hashes)")
            for device_id, password in outcome.passwords.items():
                print(f"{device_id},{password}")
        _report_feed(outcome)
        return 0

    return _run(settings, act)


def cmd_export(args: argparse.Namespace, settings: Settings) -> int:
    async def act(registry: DeviceRegistry) -> int:
        records = await registry.store.list_devices(state="active")
        text = export_yaml(r.device for r in records)
        if args.out is None:
            sys.stdout.write(text)
        else:
            args.out.write_text(text)
            _say(f"{len(records)} active device(s) written to {args.out}")
        return 0

    return _run(settings, act)


def cmd_seed(args: argparse.Namespace, settings: Settings) -> int:
    path = args.file or settings.config_dir / "devices.yaml"
    rows, errors = parse_import(read_text(path), str(path))
    if errors:
        raise ConfigError(f"{path}: " + "; ".join(str(e) for e in errors))

    async def act(registry: DeviceRegistry) -> int:
        outcome = await registry.seed([d for _, d in rows], args.actor or "seed", broker=not args.no_broker)
        _say(f"{path}: {len(outcome.records)} device(s) added, {len(rows) - len(outcome.records)} already "
             f"in the registry (left untouched); seeded devices use the stack-derived password (dev/demo)")
        _report_feed(outcome)
        return 0

    return _run(settings, act)


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    async def act(registry: DeviceRegistry) -> int:
        outcome, removed = await registry.sync()
        if removed:
            print(f"removed the password lines of {len(removed)} revoked/retired device(s): {', '.join(removed)}")
        print(f"published {outcome.published} pending change(s) on gs.devices; {outcome.pending} still pending")
        if outcome.publish_error:
            _say(f"error: {outcome.publish_error}")
            return 1
        return 0

    return _run(settings, act)


def _actor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--actor", default=None, help="who makes the change, for the history (default user:<login>)")


def _record_args(p: argparse.ArgumentParser, *, required: bool) -> None:
    p.add_argument("--kind", required=required, default=None,
                   help="drain_level, rain_gauge, cover_tilt, air_quality, noise or camera")
    p.add_argument("--component-id", default=None, help="16-digit city component id (e.g. the manhole cover)")
    p.add_argument("--interval", type=float, default=None, help="expected reporting interval, seconds")
    p.add_argument("--grid-code", default=None, help="15-digit unit grid (default: found from the location)")
    p.add_argument("--install", default=None, help='install parameters as JSON, e.g. \'{"depth_m": 3.0}\'')


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``devices`` to the top-level subparsers."""
    p = sub.add_parser("devices", help="the device registry: create, update, move, retire, credentials, import",
                       description="The device registry in the case database (GS_DATABASE_URL). Each change is "
                                   "committed, its credential written (hashed) to the broker's password file "
                                   "with one batched reload, and published on gs.devices.")
    dsub = p.add_subparsers(dest="devices_command", metavar="ACTION", required=True)

    a = dsub.add_parser("list", help="registered devices, one per line (or --json)")
    a.add_argument("--state", choices=["active", "retired", "all"], default="all", help="filter (default all)")
    a.add_argument("--kind", default=None, help="only this kind")
    a.add_argument("--grid-prefix", default=None, help="only devices in cells under this grid-code prefix")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=cmd_list)

    a = dsub.add_parser("show", help="one device with its change history")
    a.add_argument("id", help="device id")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=cmd_show)

    a = dsub.add_parser("create", help="register a device and issue its password (printed once)")
    a.add_argument("id", help="device id = MQTT username (letters, digits, '_', '.', '-')")
    a.add_argument("--lat", type=float, required=True, help="latitude, WGS 84")
    a.add_argument("--lon", type=float, required=True, help="longitude, WGS 84")
    _record_args(a, required=True)
    _actor(a)
    a.set_defaults(func=cmd_create)

    a = dsub.add_parser("update", help="change a device's record fields (not its id or location)")
    a.add_argument("id", help="device id")
    _record_args(a, required=False)
    _actor(a)
    a.set_defaults(func=cmd_update)

    a = dsub.add_parser("move", help="a new location; the grid code is found again from config/grid.geojson")
    a.add_argument("id", help="device id")
    a.add_argument("--lat", type=float, required=True, help="latitude, WGS 84")
    a.add_argument("--lon", type=float, required=True, help="longitude, WGS 84")
    a.add_argument("--grid-code", default=None, help="give the grid code instead of finding it")
    _actor(a)
    a.set_defaults(func=cmd_move)

    a = dsub.add_parser("retire", help="retire a device for good: credential removed, messages rejected")
    a.add_argument("id", help="device id")
    a.add_argument("--reason", default="", help="why (kept in the history)")
    _actor(a)
    a.set_defaults(func=_simple("retire", "retired"))

    a = dsub.add_parser("rotate", help="issue a new password (printed once); the old one stops working at once")
    a.add_argument("id", help="device id")
    _actor(a)
    a.set_defaults(func=_simple("rotate", "rotated"))

    a = dsub.add_parser("revoke", help="remove the device's password (it stays registered; rotate issues a new one)")
    a.add_argument("id", help="device id")
    _actor(a)
    a.set_defaults(func=_simple("revoke", "revoked"))

    a = dsub.add_parser("import", help="bulk create from CSV or YAML; all or nothing; --dry-run lists every error",
                        description="Create every device of a CSV (columns id,kind,lat,lon[,grid_code,"
                                    "component_id,expected_interval_s,install]) or YAML (devices.yaml format) "
                                    "file in one transaction, one password-file write and one broker reload. "
                                    "Any error (each is listed by row and field) imports nothing.")
    a.add_argument("file", type=Path, help="a .csv file, or a YAML file")
    a.add_argument("--dry-run", action="store_true", help="check only: list every error, change nothing")
    a.add_argument("--secrets-out", type=Path, default=None,
                   help="write the issued passwords to this new file (CSV, mode 0600) instead of printing them")
    a.add_argument("--json", action="store_true", help="print a JSON summary")
    _actor(a)
    a.set_defaults(func=cmd_import)

    a = dsub.add_parser("export", help="the active devices in the devices.yaml format")
    a.add_argument("--out", type=Path, default=None, help="write to this file (default stdout)")
    a.set_defaults(func=cmd_export)

    a = dsub.add_parser("seed", help="add config/devices.yaml's devices the registry lacks (dev/demo path)",
                        description="Add the devices of a devices.yaml that the registry does not have; "
                                    "existing ids (retired ones too) are left untouched. Seeded devices keep "
                                    "the password derived from the stack's device secret: a dev/demo path.")
    a.add_argument("file", nargs="?", type=Path, default=None, help="default config/devices.yaml")
    a.add_argument("--no-broker", action="store_true", help="do not touch the broker's password file")
    _actor(a)
    a.set_defaults(func=cmd_seed)

    a = dsub.add_parser("sync", help="publish changes not on gs.devices yet; remove revoked passwords left behind")
    a.set_defaults(func=cmd_sync)
