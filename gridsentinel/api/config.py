"""The API's own settings (read once at start-up, beside :class:`~gridsentinel.settings.Settings`).

>>> from gridsentinel.settings import Settings
>>> cfg = ApiConfig.from_env(Settings(run_dir=Path("/tmp/gs")), env={})
>>> cfg.database_url
'sqlite:////tmp/gs/cases.db'
>>> ApiConfig.from_env(Settings(), env={"GS_DATABASE_URL": "postgresql://gs@db/gs"}).database_url
'postgresql://gs@db/gs'
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from gridsentinel.cases.store import database_url
from gridsentinel.settings import Settings


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Where the API finds its case store and its token file, and its request limits."""

    database_url: str  # sqlite:///… or postgresql://… (async drivers are chosen by the store)
    tokens_path: Path  # config/tokens.yaml: hashed bearer tokens with roles
    max_body_bytes: int = 64 * 1024  # larger request bodies get 413
    sse_keepalive_s: float = 15.0  # comment line sent on an idle event stream

    @classmethod
    def from_env(cls, settings: Settings, env: Mapping[str, str] | None = None) -> ApiConfig:
        """``GS_DATABASE_URL`` (default ``sqlite:///<run_dir>/cases.db``), ``GS_API_TOKENS`` (default
        ``<config_dir>/tokens.yaml``), ``GS_API_MAX_BODY_BYTES``."""
        env = os.environ if env is None else env
        return cls(
            database_url=database_url(settings, env),
            tokens_path=Path(env.get("GS_API_TOKENS") or settings.config_dir / "tokens.yaml"),
            max_body_bytes=int(env.get("GS_API_MAX_BODY_BYTES") or 64 * 1024),
        )
