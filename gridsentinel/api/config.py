"""The API's own settings (taken once at start-up from :class:`~gridsentinel.settings.Settings`).

>>> from gridsentinel.settings import Settings
>>> cfg = ApiConfig.from_settings(Settings.model_validate({"run_dir": "/tmp/gs", "config_dir": "/tmp/c"}))
>>> cfg.database_url, cfg.tokens_path, cfg.max_body_bytes
('sqlite:////tmp/gs/cases.db', PosixPath('/tmp/c/tokens.yaml'), 65536)
>>> ApiConfig.from_settings(Settings.model_validate({"database_url": "postgresql://gs@db/gs"})).database_url
'postgresql://gs@db/gs'
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gridsentinel.settings import Settings


@dataclass(frozen=True, slots=True)
class ApiConfig:
    """Where the API finds its case store and its token file, and its request limits."""

    database_url: str  # sqlite:///… or postgresql://… (async drivers are chosen by the store)
    tokens_path: Path  # config/tokens.yaml: hashed bearer tokens with roles
    max_body_bytes: int = 64 * 1024  # larger request bodies get 413
    max_upload_bytes: int = 16 * 1024 * 1024  # the limit instead for /api/v1/inspector/ (photos, base64)
    max_report_bytes: int = 16 * 1024 * 1024  # an Open311 POST with its photo (multipart) may be this large
    sse_keepalive_s: float = 15.0  # comment line sent on an idle event stream

    @classmethod
    def from_settings(cls, settings: Settings) -> ApiConfig:
        """``database_url`` (``GS_DATABASE_URL``, default ``sqlite:///<run_dir>/cases.db``), ``api_tokens``
        (``GS_API_TOKENS``, default ``<config_dir>/tokens.yaml``), ``api_max_body_bytes``
        (``GS_API_MAX_BODY_BYTES``), ``api_max_upload_bytes`` (``GS_API_MAX_UPLOAD_BYTES``), ``api_max_report_bytes``
        (``GS_API_MAX_REPORT_BYTES``)."""
        return cls(
            database_url=settings.database_url,
            tokens_path=settings.api_tokens,
            max_body_bytes=settings.api_max_body_bytes,
            max_upload_bytes=settings.api_max_upload_bytes,
            max_report_bytes=settings.api_max_report_bytes,
        )
