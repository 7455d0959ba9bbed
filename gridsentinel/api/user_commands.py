"""``gridsentinel users create|update|list|token|revoke``: API users, their centers, and their bearer tokens
(api/users.py).

Secrets are printed once, when made; ``users list`` shows everything else. The store is the case database
(``GS_DATABASE_URL``); the API reads it on every request, so a change needs no restart.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import TextIO, TypeVar

from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from gridsentinel.api.auth import ROLES
from gridsentinel.api.users import (
    DEFAULT_EXPIRES_S,
    UNSET,
    IssuedToken,
    Unset,
    UserError,
    UserRecord,
    UserStore,
    check_membership,
    parse_duration,
    utc,
)
from gridsentinel.errors import ConfigError
from gridsentinel.settings import Settings

T = TypeVar("T")


def _run(settings: Settings, work: Callable[[UserStore], Awaitable[T]]) -> T:
    async def go() -> T:
        async with UserStore.open(settings.database_url) as store:
            return await work(store)

    try:
        return asyncio.run(go())
    except (SQLAlchemyError, OSError) as exc:
        where = make_url(settings.database_url).render_as_string(hide_password=True)
        raise UserError(f"cannot use the case database {where} ({exc}); check GS_DATABASE_URL "
                        "(and that the database server runs: gridsentinel status)") from None


def show_secret(issued: IssuedToken, *, out: TextIO | None = None) -> None:
    """Print a new token's secret with what it is for (once: it cannot be shown again)."""
    r = issued.record
    stream = out or sys.stdout
    print(f"user {r.user} ({r.role}), token {r.id}, expires {utc(r.expires_at)}\n"
          f"  {issued.secret}\n"
          "  Keep it now: only its hash is stored, it cannot be shown again. Use it as\n"
          "  `Authorization: Bearer <token>`, or paste it into the dashboard's sign-in.", file=stream)


def _expiry(args: argparse.Namespace) -> float:
    return parse_duration(args.expires_in) if args.expires_in else DEFAULT_EXPIRES_S


def _grid_codes(settings: Settings) -> list[str]:
    """The cell codes of config/grid.geojson (read as JSON: the CLI starts fast without shapely)."""
    path = settings.config_dir / "grid.geojson"
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the grid to check --center ({exc})") from None
    return [str((f.get("properties") or {}).get("code", "")) for f in data.get("features", [])]


def _departments(settings: Settings) -> list[str]:
    from gridsentinel.cases.categories import RoutingFile
    from gridsentinel.core.config import load_yaml

    return list(load_yaml(settings.config_dir / "routing.yaml", RoutingFile).departments)


def _check(settings: Settings, role: str, center: str | None, department: str | None) -> None:
    check_membership(role, center, department, grid_codes=_grid_codes(settings) if center else None,
                     departments=_departments(settings) if department else None)


def _create(args: argparse.Namespace, settings: Settings) -> int:
    _check(settings, args.role, args.center, args.department)
    issued = _run(settings, lambda s: s.create_user(args.name, args.role, actor=f"cli:{_who()}",
                                                    expires_in_s=_expiry(args), description=args.description,
                                                    center=args.center, department=args.department))
    show_secret(issued)
    what = f"dispatched to {args.department}" if args.department else ""
    where = f"of {args.center}" if args.center else "of the whole city"
    print(f"  {args.name} sees the cases {what + ' ' if what else ''}{where}")
    return 0


def _update(args: argparse.Namespace, settings: Settings) -> int:
    center: str | None | Unset = UNSET
    department: str | None | Unset = UNSET
    if args.center is not None:
        center = None if args.center in ("", "city-wide", "none") else args.center
    if args.department is not None:
        department = None if args.department in ("", "none") else args.department
    if isinstance(center, Unset) and isinstance(department, Unset):
        raise UserError("nothing to change: give --center (none: the whole city) or --department")

    async def work(store: UserStore) -> UserRecord:
        current = {u.name: u for u in await store.user_records()}.get(args.name)
        if current is None:
            raise UserError(f"no user {args.name!r}; `gridsentinel users list` shows the users")
        _check(settings, current.role, current.center if isinstance(center, Unset) else center,
               current.department if isinstance(department, Unset) else department)
        return await store.update_user(args.name, center=center, department=department)

    user = _run(settings, work)
    print(f"user {user.name} ({user.role}): center {user.center or 'none (the whole city)'}"
          + (f", department {user.department}" if user.department else "")
          + " - its tokens carry it from their next request")
    return 0


def _token(args: argparse.Namespace, settings: Settings) -> int:
    issued = _run(settings, lambda s: s.issue(args.name, actor=f"cli:{_who()}", expires_in_s=_expiry(args),
                                              description=args.description))
    show_secret(issued)
    return 0


def _revoke(args: argparse.Namespace, settings: Settings) -> int:
    record = _run(settings, lambda s: s.revoke(args.token_id, actor=f"cli:{_who()}"))
    assert record.revoked_at is not None
    print(f"token {record.id} of {record.user}: revoked on {utc(record.revoked_at)} (the API refuses it from "
          "its next request)")
    return 0


def _list(args: argparse.Namespace, settings: Settings) -> int:
    async def work(store: UserStore) -> tuple[list[UserRecord], list[dict[str, object]]]:
        now = store.clock()
        return await store.user_records(), [t.to_dict(now) for t in await store.tokens(user=args.user)]

    records, tokens = _run(settings, work)
    users = {u.name: u.role for u in records}
    if not args.all:
        tokens = [t for t in tokens if t["state"] == "active"]
    if args.json:
        print(json.dumps({"users": users, "members": {u.name: u.to_dict() for u in records}, "tokens": tokens},
                         indent=2))
        return 0
    where = {u.name: (u.center or "city-wide") + (f" / {u.department}" if u.department else "") for u in records}
    rows = [("TOKEN", "USER", "ROLE", "CENTER", "CREATED", "EXPIRES", "LAST USED", "STATE")]
    for t in tokens:
        rows.append((str(t["id"]), str(t["user"]), str(t["role"]), where.get(str(t["user"]), "-"),
                     _day(t["created_at"]), _day(t["expires_at"]), _day(t["last_used_at"]), str(t["state"])))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    holders = {str(t["user"]) for t in tokens}
    without = sorted(u for u in users if u not in holders and (args.user is None or u == args.user))
    if without:
        print(f"users without {'a' if args.all else 'an active'} token: {', '.join(without)} "
              "(gridsentinel users token NAME gives one)")
    return 0


def _day(value: object) -> str:
    return utc(float(value))[:16] if isinstance(value, int | float) else "-"


def _who() -> str:
    import getpass

    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def register_cli(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser(
        "users", help="API users and bearer tokens: create, update, list, token, revoke (docs/operations.md)",
        description="API users and their bearer tokens, in the case database (GS_DATABASE_URL). A token's "
                    "secret is printed once, when it is made; only its SHA-256 is stored. The API reads the "
                    "store on every request: new and revoked tokens take effect without a restart.")
    usub = p.add_subparsers(dest="users", metavar="ACTION", required=True)
    expires = {"default": None, "metavar": "DURATION",
               "help": "how long the token is valid: 90d, 12h, 30m or seconds (default 90d, at most 5 years)"}

    c = usub.add_parser("create", help="a new user with a first token (prints the token once)")
    c.add_argument("name", metavar="NAME", help="user name: a-z 0-9 _ . - (the actor user:NAME in case logs)")
    c.add_argument("--role", required=True, choices=ROLES,
                   help="viewer < dispatcher < supervisor < engineer < admin; citizen: Open311 only; department: "
                        "a department's staff (needs --department)")
    c.add_argument("--center", default=None, metavar="LEVEL:PREFIX",
                   help="the user's center, e.g. street:320582004 (city:4, district:6, street:9, community:12 "
                        "digits; must own cells of config/grid.geojson); default: the whole city")
    c.add_argument("--department", default=None, metavar="KEY",
                   help="a department user's department (a key of config/routing.yaml, e.g. drainage)")
    c.add_argument("--expires-in", **expires)
    c.add_argument("--description", default="", help="what the token is for (shown by list --json)")
    c.set_defaults(func=_create)

    u = usub.add_parser("update", help="move a user to another center or department (its tokens follow at once)")
    u.add_argument("name", metavar="NAME", help="the user")
    u.add_argument("--center", default=None, metavar="LEVEL:PREFIX",
                   help="the new center; none: the whole city")
    u.add_argument("--department", default=None, metavar="KEY", help="the new department (department users)")
    u.set_defaults(func=_update)

    t = usub.add_parser("token", help="a new token for an existing user (prints it once)")
    t.add_argument("name", metavar="NAME", help="the user")
    t.add_argument("--expires-in", **expires)
    t.add_argument("--description", default="", help="what the token is for")
    t.set_defaults(func=_token)

    ls = usub.add_parser("list", help="users and tokens, without secrets (id, user, role, times, state)")
    ls.add_argument("--user", help="only this user's tokens")
    ls.add_argument("--all", action="store_true", help="also expired and revoked tokens")
    ls.add_argument("--json", action="store_true", help="print one JSON object")
    ls.set_defaults(func=_list)

    r = usub.add_parser("revoke", help="revoke a token by its id (from users list); takes effect at once")
    r.add_argument("token_id", metavar="TOKEN_ID", help="e.g. tok_3f9a1c2b7d4e")
    r.set_defaults(func=_revoke)
