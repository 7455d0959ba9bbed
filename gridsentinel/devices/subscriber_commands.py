"""CLI: ``gridsentinel centers subscriber create|rotate|revoke|list|sync`` (devices/subscribers.py).

``register_cli(sub)`` adds ``centers`` to the top-level subparsers; ``add_subscriber_commands(csub)`` adds
``subscriber`` to an existing ``centers`` parser's subparsers (for when ``centers`` gains other actions).
Passwords are printed once, when issued; ``list`` shows everything else.
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TypeVar

from gridsentinel.devices.commands import default_actor, load_grid
from gridsentinel.devices.registry import BrokerCredentials
from gridsentinel.devices.store import DeviceStore
from gridsentinel.devices.subscribers import Issued, SubscriberRegistry
from gridsentinel.settings import Settings

T = TypeVar("T")


@asynccontextmanager
async def open_subscribers(settings: Settings) -> AsyncIterator[SubscriberRegistry]:
    """The subscribers of ``settings.database_url`` (migrated), the broker of ``settings.run_dir`` and the
    cells of ``<config_dir>/grid.geojson``."""
    grid = load_grid(settings)
    async with DeviceStore.open(settings.database_url, grid) as store:
        yield SubscriberRegistry(store.engine, BrokerCredentials(settings), list(grid.cells) if grid else [])


def _run(settings: Settings, action: Callable[[SubscriberRegistry], Awaitable[T]]) -> T:
    async def main() -> T:
        async with open_subscribers(settings) as registry:
            return await action(registry)

    return asyncio.run(main())


def _show(issued: Issued, verb: str, settings: Settings) -> None:
    r = issued.record
    print(f"{verb} alert subscriber {r.name} of {r.center}: {r.state}, credential epoch {r.credential_epoch}")
    if issued.grants:
        print(f"  may read (nothing else): {', '.join(issued.grants)}")
    if issued.password is not None:
        print(f"  MQTT username {r.name}, password (shown once; the broker keeps only its hash):\n"
              f"  {issued.password}\n"
              f"  Broker: mqtt://{settings.mqtt_host}:{settings.mqtt_port}; subscribe to the filter(s) above, "
              "or to gs/v1/alerts/# (the broker delivers only the granted ones).")


def cmd_create(args: argparse.Namespace, settings: Settings) -> int:
    issued = _run(settings, lambda r: r.create(args.name or _default_name(args.center), args.center,
                                               args.actor or default_actor(), args.description))
    _show(issued, "created", settings)
    return 0


def _default_name(center: str) -> str:
    """``street:320582004`` -> ``street-320582004`` (a valid MQTT username and subscriber name)."""
    return center.replace(":", "-")


def cmd_rotate(args: argparse.Namespace, settings: Settings) -> int:
    _show(_run(settings, lambda r: r.rotate(args.name, args.actor or default_actor())), "rotated", settings)
    return 0


def cmd_revoke(args: argparse.Namespace, settings: Settings) -> int:
    issued = _run(settings, lambda r: r.revoke(args.name, args.actor or default_actor()))
    _show(issued, "revoked", settings)
    print("  its password and grants are gone from the broker; a connected client was cut at the reload")
    return 0


def cmd_list(args: argparse.Namespace, settings: Settings) -> int:
    async def act(registry: SubscriberRegistry) -> list[tuple[dict[str, object], list[str]]]:
        records = await registry.records(center=args.center, state=None if args.state == "all" else args.state)
        return [(r.to_dict(), registry.grants(r)) for r in records]

    rows = _run(settings, act)
    if args.json:
        print(json.dumps([{**r, "grants": g} for r, g in rows], indent=1))
        return 0
    for r, grants in rows:
        print(f"{r['name']:<28} {r['center']:<24} {r['state']:<8} epoch {r['credential_epoch']:<3} "
              f"{', '.join(grants) or '-'}")
    print(f"{len(rows)} subscriber(s)")
    return 0


def cmd_sync(args: argparse.Namespace, settings: Settings) -> int:
    active, removed = _run(settings, lambda r: r.sync())
    print(f"wrote the grants of {len(active)} active subscriber(s) from config/grid.geojson"
          + (f"; removed the passwords of {len(removed)} revoked one(s): {', '.join(removed)}" if removed else ""))
    return 0


def _actor(p: argparse.ArgumentParser) -> None:
    p.add_argument("--actor", default=None, help="who makes the change (default user:<login>)")


def add_subscriber_commands(csub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``subscriber create|rotate|revoke|list|sync`` under ``centers``."""
    p = csub.add_parser(
        "subscriber", help="MQTT credentials that read one center's alerts and nothing else",
        description="Alert subscribers: MQTT accounts of a dispatch center that may read only "
                    "gs/v1/alerts/<the center's prefix as topic levels>/# (no write, no device telemetry, no "
                    "other center). The password is printed once; the broker keeps its hash. Each change is "
                    "one write of the broker's password file and ACL and one batched reload.")
    ssub = p.add_subparsers(dest="subscriber_command", metavar="ACTION", required=True)

    a = ssub.add_parser("create", help="a new subscriber of a center; prints its password once")
    a.add_argument("--center", required=True,
                   help="the center, <level>:<prefix>: city:3205, district:320582, street:320582004, "
                        "community:320582004001 (it must have cells in config/grid.geojson)")
    a.add_argument("--name", default=None,
                   help="MQTT username (lower-case letters, digits, _ . -; default <level>-<prefix>); not a "
                        "device id, not alerts or gateway")
    a.add_argument("--description", default="", help="who uses it (shown by list)")
    _actor(a)
    a.set_defaults(func=cmd_create)

    a = ssub.add_parser("rotate", help="a new password (printed once); the old one stops working at once")
    a.add_argument("name", help="the subscriber")
    _actor(a)
    a.set_defaults(func=cmd_rotate)

    a = ssub.add_parser("revoke", help="remove its password and grants; a connected client is cut")
    a.add_argument("name", help="the subscriber")
    _actor(a)
    a.set_defaults(func=cmd_revoke)

    a = ssub.add_parser("list", help="subscribers with their center, state and what they may read (no secrets)")
    a.add_argument("--center", default=None, help="only this center's, e.g. street:320582004")
    a.add_argument("--state", choices=["active", "revoked", "all"], default="all", help="filter (default all)")
    a.add_argument("--json", action="store_true", help="print JSON")
    a.set_defaults(func=cmd_list)

    a = ssub.add_parser("sync", help="write every subscriber's grants again (after config/grid.geojson changed)")
    a.set_defaults(func=cmd_sync)


def register_cli(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``centers`` (with ``subscriber``) to the top-level subparsers."""
    p = sub.add_parser("centers", help="dispatch centers: their alert subscribers' MQTT credentials",
                       description="Dispatch centers (city, district, street, community: a grid-code prefix).")
    csub = p.add_subparsers(dest="centers_command", metavar="ACTION", required=True)
    add_subscriber_commands(csub)
