"""Bearer tokens with roles: hashing, the role ladder, and the optional file of hashed tokens
(``GS_API_TOKENS``, ``config/tokens.yaml``, which ships empty). Users and their expiring, revocable
tokens live in the case database: :mod:`gridsentinel.api.users` (``gridsentinel users``).

Roles form a ladder, ``viewer < dispatcher < supervisor < engineer < admin``; ``citizen`` is a separate
scope that may only use Open311 (read services and requests, post requests). Tokens are random strings of at
least 128 bits, so an unsalted SHA-256 of the token is enough to store them (as with API keys: there is
nothing to brute-force a dictionary of); lookups compare digests.

>>> digest = hash_token("s3cret-token-value")
>>> digest.startswith("sha256:") and len(digest) == 7 + 64
True
>>> store = TokenStore([TokenEntry(id="ops", role="dispatcher", hash=digest)])
>>> store.authenticate("s3cret-token-value").role, store.authenticate("nope")
('dispatcher', None)
>>> allows("engineer", "dispatcher"), allows("viewer", "dispatcher"), allows("citizen", "viewer")
(True, False, False)
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from pathlib import Path
from typing import Literal

import yaml
from pydantic import Field

from gridsentinel.core.config import StrictModel, load_yaml
from gridsentinel.errors import ConfigError

Role = Literal["viewer", "dispatcher", "supervisor", "engineer", "admin", "citizen", "department"]
LADDER: tuple[str, ...] = ("viewer", "dispatcher", "supervisor", "engineer", "admin")
# Off the ladder: ``citizen`` (Open311 only) and ``department`` (a department's staff: the cases dispatched
# to their department, which they start, resolve or refuse).
ROLES: tuple[str, ...] = (*LADDER, "citizen", "department")


def hash_token(plain: str) -> str:
    """The stored form of a token: ``sha256:<hex>``."""
    return "sha256:" + hashlib.sha256(plain.encode()).hexdigest()


def allows(role: str, minimum: str) -> bool:
    """Whether ``role`` is at least ``minimum`` on the ladder (``citizen`` is on no ladder)."""
    return role in LADDER and minimum in LADDER and LADDER.index(role) >= LADDER.index(minimum)


class TokenEntry(StrictModel):
    """One API token."""

    id: str = Field(
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$",
        description="Who holds the token; recorded as the actor (user:<id>) of case changes.",
    )
    role: Role = Field(description="viewer < dispatcher < supervisor < engineer < admin; citizen: Open311 only; "
                      "department: the cases dispatched to the user's department.")
    hash: str = Field(
        pattern=r"^sha256:[0-9a-f]{64}$", description="hash_token(plain); never the plain text."
    )
    description: str = Field("", max_length=200, description="Free text: what the token is for.")
    center: str | None = Field(
        None, pattern=r"^(city:[0-9]{4}|district:[0-9]{6}|street:[0-9]{9}|community:[0-9]{12})$",
        description="The holder's center (its cases only; docs/api.md 'Scope'); none: the whole city.")
    department: str | None = Field(
        None, pattern=r"^[a-z][a-z0-9_]{0,63}$",
        description="A department user's department (a key of config/routing.yaml).")


class TokensFile(StrictModel):
    """``config/tokens.yaml``."""

    tokens: list[TokenEntry] = Field(default_factory=list, description="The API tokens.")


class TokenStore:
    """Tokens by digest."""

    def __init__(self, entries: list[TokenEntry]) -> None:
        ids = [e.id for e in entries]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ConfigError(f"tokens: ids listed twice: {', '.join(dupes)}")
        self._by_hash = {e.hash: e for e in entries}

    @classmethod
    def load(cls, path: Path) -> TokenStore:
        if not path.exists():
            return cls([])  # no tokens: every protected route answers 401
        return cls(load_yaml(path, TokensFile).tokens)

    def authenticate(self, plain: str) -> TokenEntry | None:
        digest = hash_token(plain)
        for stored, entry in self._by_hash.items():
            if hmac.compare_digest(stored, digest):
                return entry
        return None


def add_token(
    path: Path | str, token_id: str, role: str, *, plain: str | None = None, description: str = ""
) -> str:
    """Add a token to the token file (created if missing) and return its plain text (shown once).

    Comments in an existing file are not kept. Raises ConfigError for an unknown role or a taken id.
    """
    path = Path(path)
    current = load_yaml(path, TokensFile).tokens if path.exists() else []
    if any(e.id == token_id for e in current):
        raise ConfigError(f"{path}: token id {token_id!r} already exists")
    plain = plain or secrets.token_urlsafe(32)
    try:
        # Validated, not constructed: ``role`` is a caller's string, and an unknown one is a ConfigError.
        entry = TokenEntry.model_validate(
            {"id": token_id, "role": role, "hash": hash_token(plain), "description": description}
        )
    except ValueError as exc:
        raise ConfigError(f"{path}: invalid token {token_id!r}: {exc}") from None
    data = TokensFile(tokens=[*current, entry]).model_dump(mode="json")
    path.write_text(
        "# API bearer tokens (hashed). Add with gridsentinel.api.auth.add_token.\n"
        + yaml.safe_dump(data, sort_keys=False),
        encoding="utf-8",
    )
    return plain
