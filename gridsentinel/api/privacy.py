"""Citizen identity in API answers: dispatchers and up see it, everyone else a stable pseudonym.

A citizen's account, device id and phone number are personal data (issue 17, "Privacy"). Dispatchers need
them (to call back, to judge a gaming account); a viewer, a department user or a citizen token does not.
They see ``p-`` and 16 hex digits of HMAC-SHA256 over the value, keyed with a server secret
(``GS_CITIZEN_PSEUDONYM_SECRET``, else a random key kept in ``<run_dir>/citizen-pseudonym.secret``): the
same account is the same pseudonym everywhere, so "these five reports come from one person" stays visible,
while the id cannot be recovered or guessed by hashing candidates without the key.

>>> key = b"k" * 32
>>> pseudonym(key, "account", "alice") == pseudonym(key, "account", "alice")
True
>>> pseudonym(key, "account", "alice") != pseudonym(key, "device", "alice")
True
>>> d = {"source": "citizen", "evidence": {"account_id": "alice", "media_url": "https://x/p.jpg"}}
>>> shown = redact_detection(d, "viewer", key)
>>> shown["evidence"]["account_id"] == pseudonym(key, "account", "alice"), shown["evidence"]["media_url"]
(True, 'https://x/p.jpg')
>>> redact_detection(d, "dispatcher", key)["evidence"]["account_id"]
'alice'
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
from pathlib import Path
from typing import Any

from gridsentinel.api.auth import allows
from gridsentinel.errors import ConfigError
from gridsentinel.settings import Settings

# Detection sources whose evidence can name a member of the public.
PEOPLE_SOURCES = frozenset({"citizen", "hotline"})
# evidence key -> the kind of identifier (part of the HMAC input, so an account and a device with the same
# text do not share a pseudonym)
IDENTITY_KEYS = {"account_id": "account", "device_id": "device", "phone": "phone", "caller_phone": "phone"}
SECRET_FILE = "citizen-pseudonym.secret"


def sees_identity(role: str) -> bool:
    """Whether ``role`` may see citizens' account, device and phone (dispatcher and up)."""
    return allows(role, "dispatcher")


def pseudonym(key: bytes, kind: str, value: str) -> str:
    """The stable pseudonym of one identifier: ``p-`` + 16 hex digits of HMAC-SHA256(key, kind:value)."""
    return "p-" + hmac.new(key, f"{kind}:{value}".encode(), hashlib.sha256).hexdigest()[:16]


def show_identity(value: str | None, kind: str, role: str, key: bytes) -> str | None:
    """``value`` for a role that may see it, else its pseudonym (None stays None)."""
    if value is None or sees_identity(role):
        return value
    return pseudonym(key, kind, value)


def redact_detection(detection: dict[str, Any], role: str, key: bytes) -> dict[str, Any]:
    """A detection (as the case store returns it) fit for ``role``: the identifiers in a citizen's or
    caller's evidence replaced by pseudonyms unless the role may see them. The input is not changed."""
    if sees_identity(role) or detection.get("source") not in PEOPLE_SOURCES:
        return detection
    evidence = detection.get("evidence")
    if not isinstance(evidence, dict):
        return detection
    shown = {k: pseudonym(key, IDENTITY_KEYS[k], str(v)) if k in IDENTITY_KEYS and v is not None else v
             for k, v in evidence.items()}
    return {**detection, "evidence": shown}


def load_pseudonym_key(settings: Settings) -> bytes:
    """The pseudonym key: ``GS_CITIZEN_PSEUDONYM_SECRET``, else ``<run_dir>/citizen-pseudonym.secret``
    (made with 32 random bytes on first use, readable by the owner only; every API process of one run
    directory shares it)."""
    if settings.citizen_pseudonym_secret:
        return settings.citizen_pseudonym_secret.encode()
    path = Path(settings.run_dir) / SECRET_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it meanwhile: use theirs
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_hex(32))
    key = path.read_text().strip()
    if not key:  # caught between the other process's create and write
        raise ConfigError(f"{path} is empty: delete it and start the API again, or set "
                           "GS_CITIZEN_PSEUDONYM_SECRET")
    return key.encode()
