"""API users and their bearer tokens, in the case database (SQLite by default, PostgreSQL in production).

Two tables, created by the case store's migration ``0004_api_users``:

- ``api_users``: a name (the actor ``user:<name>`` of the case changes it makes), a role
  (``viewer < dispatcher < supervisor < engineer < admin``; ``citizen``: Open311 only; ``department``: a
  department's staff), the user's center (``street:320582110``; none: the whole city) and, for a
  ``department`` user, its department (migration ``0005``).
- ``api_tokens``: one row per token ever issued: its id (``tok_`` + 12 hex digits, safe to show and log),
  the user, the role it carries (the user's when issued), created / expires / revoked / last used times,
  and the SHA-256 digest of the secret: never the secret itself. A secret is ``gst_`` + 43 URL-safe
  characters (256 random bits), shown once when it is made; nothing can show it again.

The API looks a presented token up here on every request (an indexed lookup by digest joined with the
user's row, then a constant-time comparison), so the user's CURRENT center and department travel with
the request, and a token created or revoked by ``gridsentinel users`` takes effect on the
next request, in every API process that shares the database. ``last_used_at`` is written at most once a
minute per token, so a busy client costs no write per request.

>>> t = TokenRecord(id="tok_0123456789ab", user="li", role="dispatcher", created_at=0.0, created_by="cli",
...                 expires_at=100.0, revoked_at=None, revoked_by=None, last_used_at=None, description="")
>>> t.state(50.0), t.state(100.0), t.rejection(100.0)
('active', 'expired', 'token tok_0123456789ab expired on 1970-01-01 00:01:40 UTC')
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from gridsentinel.api.auth import ROLES, TokenEntry, hash_token
from gridsentinel.cases.authority import center_prefix, is_center_id
from gridsentinel.cases.centers import center_ids
from gridsentinel.cases.store import create_engine, upgrade
from gridsentinel.errors import GridSentinelError

TokenState = Literal["active", "expired", "revoked"]
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
SECRET_PREFIX = "gst_"
DEFAULT_EXPIRES_S = 90 * 86400.0
MAX_EXPIRES_S = 5 * 366 * 86400.0
LAST_USED_EVERY_S = 60.0  # write last_used_at at most this often per token

metadata = sa.MetaData()

api_users = sa.Table(
    "api_users", metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("center", sa.String(32)),
    sa.Column("department", sa.String(64)),
)

api_tokens = sa.Table(
    "api_tokens", metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("user_name", sa.String(64), nullable=False),
    sa.Column("role", sa.String(16), nullable=False),
    sa.Column("hash", sa.String(71), nullable=False),
    sa.Column("created_at", sa.Double, nullable=False),
    sa.Column("created_by", sa.String(128), nullable=False),
    sa.Column("expires_at", sa.Double, nullable=False),
    sa.Column("revoked_at", sa.Double),
    sa.Column("revoked_by", sa.String(128)),
    sa.Column("last_used_at", sa.Double),
    sa.Column("description", sa.String(200), nullable=False),
)


class Unset:
    """The value of an argument not given (``None`` means "none": the whole city, no department)."""


UNSET = Unset()


class UserError(GridSentinelError):
    """A users/tokens operation that cannot be done (unknown user or token, taken name, bad role)."""


class TokenRejected(Exception):
    """A token that was issued but may not be used any more; the message says why (for the 401)."""


def utc(ts: float) -> str:
    """``ts`` as ``YYYY-MM-DD HH:MM:SS UTC``.

    >>> utc(0)
    '1970-01-01 00:00:00 UTC'
    """
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def parse_duration(text: str) -> float:
    """``90d``, ``12h``, ``30m``, ``45s`` or a number of seconds -> seconds.

    >>> parse_duration("90d"), parse_duration("12h"), parse_duration("3600")
    (7776000.0, 43200.0, 3600.0)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([dhms]?)\s*", text)
    if not match:
        raise UserError(f"expiry {text!r}: give a number with d, h, m or s (e.g. 90d, 12h), or seconds")
    value = float(match.group(1)) * {"d": 86400, "h": 3600, "m": 60, "s": 1, "": 1}[match.group(2)]
    if not 0 < value <= MAX_EXPIRES_S:
        raise UserError(f"expiry {text!r}: must be more than 0 and at most 5 years")
    return value


def check_name(name: str) -> str:
    if not NAME_PATTERN.match(name):
        raise UserError(f"user name {name!r}: use 1-64 of a-z 0-9 _ . - (starting with a letter or digit)")
    return name


def check_role(role: str) -> str:
    if role not in ROLES:
        raise UserError(f"role {role!r}: expected one of {', '.join(ROLES)}")
    return role


def check_membership(role: str, center: str | None, department: str | None, *,
                     grid_codes: Iterable[str] | None = None, departments: Iterable[str] | None = None) -> None:
    """Whether a user of ``role`` may belong to ``center`` and ``department``. The shape always; with
    ``grid_codes`` the center must own at least one cell of the grid, with ``departments`` the department
    must be one of routing's.

    >>> check_membership("dispatcher", "street:320582004", None, grid_codes=["320582004001001"])
    >>> check_membership("dispatcher", "street:320582009", None, grid_codes=["320582004001001"])
    ... # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    gridsentinel.api.users.UserError: center 'street:320582009' owns no cell of the grid ...: city:3205, ...
    >>> check_membership("department", None, None)
    Traceback (most recent call last):
    ...
    gridsentinel.api.users.UserError: a department user needs --department (one of routing's departments)
    """
    if center is not None:
        if not is_center_id(center):
            raise UserError(f"center {center!r}: expected LEVEL:PREFIX with a prefix of the level's length - "
                            "city:3205, district:320582, street:320582110 or community:320582110152")
        if grid_codes is not None:
            codes = sorted(set(grid_codes))
            if not any(c.startswith(center_prefix(center)) for c in codes):
                ids = center_ids(codes)
                shown = ", ".join(ids[:12]) + (" ..." if len(ids) > 12 else "")
                raise UserError(f"center {center!r} owns no cell of the grid (config/grid.geojson); "
                                f"its centers: {shown}")
    if role == "department" and department is None:
        raise UserError("a department user needs --department (one of routing's departments)")
    if department is not None:
        if role != "department":
            raise UserError(f"--department is for users of role department, not {role}")
        if departments is not None and department not in set(departments):
            raise UserError(f"department {department!r} is not in config/routing.yaml; known: "
                            f"{', '.join(sorted(departments))}")
    if role == "citizen" and center is not None:
        raise UserError("a citizen user belongs to no center (Open311 only)")


@dataclass(frozen=True, slots=True)
class UserRecord:
    """A user: name, role, center (None: the whole city) and department (department users)."""

    name: str
    role: str
    center: str | None
    department: str | None
    created_at: float
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "role": self.role, "center": self.center, "department": self.department,
                "created_at": self.created_at, "created_by": self.created_by}


@dataclass(frozen=True, slots=True)
class TokenRecord:
    """A token as the store holds it: everything but the secret (which is not stored)."""

    id: str
    user: str
    role: str
    created_at: float
    created_by: str
    expires_at: float
    revoked_at: float | None
    revoked_by: str | None
    last_used_at: float | None
    description: str

    def state(self, now: float) -> TokenState:
        if self.revoked_at is not None:
            return "revoked"
        return "expired" if now >= self.expires_at else "active"

    def rejection(self, now: float) -> str | None:
        """Why the token may not be used at ``now`` (None: it may)."""
        state = self.state(now)
        if state == "revoked":
            assert self.revoked_at is not None
            return f"token {self.id} was revoked on {utc(self.revoked_at)}"
        if state == "expired":
            return f"token {self.id} expired on {utc(self.expires_at)}"
        return None

    def to_dict(self, now: float) -> dict[str, Any]:
        return {"id": self.id, "user": self.user, "role": self.role, "created_at": self.created_at,
                "created_by": self.created_by, "expires_at": self.expires_at, "revoked_at": self.revoked_at,
                "revoked_by": self.revoked_by, "last_used_at": self.last_used_at,
                "description": self.description, "state": self.state(now)}


@dataclass(frozen=True, slots=True)
class IssuedToken:
    """A new token: ``secret`` is its plain text, which exists only here (show it once)."""

    record: TokenRecord
    secret: str


def _record(row: sa.Row[Any]) -> TokenRecord:
    m = row._mapping
    return TokenRecord(id=m["id"], user=m["user_name"], role=m["role"], created_at=m["created_at"],
                       created_by=m["created_by"], expires_at=m["expires_at"], revoked_at=m["revoked_at"],
                       revoked_by=m["revoked_by"], last_used_at=m["last_used_at"], description=m["description"])


class UserStore:
    """Users and tokens. Open with ``async with UserStore.open(url) as store`` (migrates the database)."""

    def __init__(self, engine: AsyncEngine, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock

    @classmethod
    @asynccontextmanager
    async def open(cls, url: str, *, migrate: bool = True,
                   clock: Callable[[], float] = time.time) -> AsyncIterator[UserStore]:
        engine = create_engine(url)
        try:
            if migrate:
                await upgrade(engine)
            yield cls(engine, clock)
        finally:
            await engine.dispose()

    # -- users -------------------------------------------------------------------------------------------

    async def create_user(self, name: str, role: str, *, actor: str = "cli",
                          expires_in_s: float = DEFAULT_EXPIRES_S, description: str = "",
                          center: str | None = None, department: str | None = None) -> IssuedToken:
        """A new user with a first token (whose secret is returned once). ``center``: the user's center
        (None: the whole city); ``department``: a department user's department. Their shape is checked here;
        that they exist in the grid and routing is :func:`check_membership`'s job with the config at hand."""
        check_name(name)
        check_role(role)
        check_membership(role, center, department)
        now = self.clock()
        try:
            async with self.engine.begin() as conn:
                await conn.execute(sa.insert(api_users).values(name=name, role=role, created_at=now,
                                                               created_by=actor, center=center,
                                                               department=department))
                return await self._issue(conn, name, role, actor, expires_in_s, description, now)
        except IntegrityError:
            raise UserError(f"user {name!r} exists already; `gridsentinel users token {name}` gives it "
                            "a new token") from None

    async def users(self) -> dict[str, str]:
        """Every user's name -> role."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(api_users.c.name, api_users.c.role).order_by(api_users.c.name))
            return {r.name: r.role for r in rows}

    async def user_records(self) -> list[UserRecord]:
        """Every user with its center and department, by name."""
        async with self.engine.connect() as conn:
            rows = await conn.execute(sa.select(api_users).order_by(api_users.c.name))
            return [UserRecord(r.name, r.role, r.center, r.department, r.created_at, r.created_by) for r in rows]

    async def update_user(self, name: str, *, center: str | None | Unset = UNSET,
                          department: str | None | Unset = UNSET) -> UserRecord:
        """Move a user to another center (None: the whole city) or department; its tokens follow at once
        (the API reads the user's row on every request)."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(api_users).where(api_users.c.name == name))).first()
            if row is None:
                raise UserError(f"no user {name!r}; `gridsentinel users list` shows the users")
            new_center = row.center if isinstance(center, Unset) else center
            new_department = row.department if isinstance(department, Unset) else department
            check_membership(row.role, new_center, new_department)
            await conn.execute(sa.update(api_users).where(api_users.c.name == name)
                               .values(center=new_center, department=new_department))
        return UserRecord(row.name, row.role, new_center, new_department, row.created_at, row.created_by)

    async def has_admin(self) -> bool:
        async with self.engine.connect() as conn:
            found = await conn.scalar(sa.select(api_users.c.name).where(api_users.c.role == "admin").limit(1))
        return found is not None

    # -- tokens ------------------------------------------------------------------------------------------

    async def issue(self, name: str, *, actor: str = "cli", expires_in_s: float = DEFAULT_EXPIRES_S,
                    description: str = "") -> IssuedToken:
        """A new token for an existing user, with the user's role."""
        async with self.engine.begin() as conn:
            role = await conn.scalar(sa.select(api_users.c.role).where(api_users.c.name == name))
            if role is None:
                raise UserError(f"no user {name!r}; create it with `gridsentinel users create {name} --role ROLE`")
            return await self._issue(conn, name, role, actor, expires_in_s, description, self.clock())

    async def _issue(self, conn: Any, name: str, role: str, actor: str, expires_in_s: float,
                     description: str, now: float) -> IssuedToken:
        if not 0 < expires_in_s <= MAX_EXPIRES_S:
            raise UserError("a token expires after more than 0 s and at most 5 years")
        if len(description) > 200:
            raise UserError("a token's description is at most 200 characters")
        secret = SECRET_PREFIX + secrets.token_urlsafe(32)  # 256 random bits
        record = TokenRecord(id="tok_" + secrets.token_hex(6), user=name, role=role, created_at=now,
                             created_by=actor, expires_at=now + expires_in_s, revoked_at=None, revoked_by=None,
                             last_used_at=None, description=description)
        await conn.execute(sa.insert(api_tokens).values(
            id=record.id, user_name=name, role=role, hash=hash_token(secret), created_at=now, created_by=actor,
            expires_at=record.expires_at, description=description))
        return IssuedToken(record, secret)

    async def tokens(self, *, user: str | None = None) -> list[TokenRecord]:
        stmt = sa.select(api_tokens).order_by(api_tokens.c.user_name, api_tokens.c.created_at)
        if user is not None:
            stmt = stmt.where(api_tokens.c.user_name == user)
        async with self.engine.connect() as conn:
            return [_record(r) for r in await conn.execute(stmt)]

    async def revoke(self, token_id: str, *, actor: str = "cli") -> TokenRecord:
        """Revoke a token (at once: the next request with it gets 401). Revoking it again changes nothing."""
        async with self.engine.begin() as conn:
            row = (await conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id))).first()
            if row is None:
                raise UserError(f"no token {token_id!r}; `gridsentinel users list` shows the token ids")
            if row.revoked_at is None:
                await conn.execute(sa.update(api_tokens).where(api_tokens.c.id == token_id)
                                   .values(revoked_at=self.clock(), revoked_by=actor))
                row = (await conn.execute(sa.select(api_tokens).where(api_tokens.c.id == token_id))).one()
        return _record(row)

    async def authenticate(self, plain: str, now: float | None = None) -> TokenEntry | None:
        """The holder of ``plain``: None for a token never issued, :class:`TokenRejected` (saying why) for
        one expired or revoked."""
        now = self.clock() if now is None else now
        digest = hash_token(plain)
        async with self.engine.connect() as conn:
            row = (await conn.execute(
                sa.select(api_tokens, api_users.c.center, api_users.c.department)
                .join(api_users, api_users.c.name == api_tokens.c.user_name, isouter=True)
                .where(api_tokens.c.hash == digest))).first()
        if row is None or not hmac.compare_digest(row.hash, digest):
            return None
        record = _record(row)
        why = record.rejection(now)
        if why is not None:
            raise TokenRejected(why)
        if record.last_used_at is None or now - record.last_used_at >= LAST_USED_EVERY_S:
            await self._touch(record.id, now)
        return TokenEntry.model_validate({"id": record.user, "role": record.role, "hash": digest,
                                          "description": record.id, "center": row.center,
                                          "department": row.department})

    async def _touch(self, token_id: str, now: float) -> None:
        try:
            async with self.engine.begin() as conn:
                await conn.execute(sa.update(api_tokens).where(api_tokens.c.id == token_id)
                                   .values(last_used_at=now))
        except OperationalError:
            pass  # the database is busy: last use is a hint, the request goes on


def ensure_first_admin(url: str, *, name: str = "admin") -> IssuedToken | None:
    """Create the first admin (user ``name`` with a token) when the database has no admin; None when it has
    one (nothing secret to show). From synchronous code (the CLI)."""
    import asyncio

    async def run() -> IssuedToken | None:
        async with UserStore.open(url) as store:
            if await store.has_admin():
                return None
            taken = await store.users()
            candidate, n = name, 1
            while candidate in taken:
                n += 1
                candidate = f"{name}{n}"
            return await store.create_user(candidate, "admin", actor="gridsentinel up",
                                           description="first admin, made by gridsentinel up")

    return asyncio.run(run())


__all__ = ["UNSET", "IssuedToken", "TokenRecord", "TokenRejected", "UserError", "UserRecord", "UserStore",
           "check_membership", "ensure_first_admin", "parse_duration"]
