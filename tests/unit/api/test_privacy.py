"""Citizen pseudonyms: stable per server key, different per key and per kind of identifier, applied to
citizen and hotline evidence only, for every role below dispatcher."""

from __future__ import annotations

import hashlib
import stat
from pathlib import Path
from typing import Any

import pytest

from gridsentinel.api.privacy import load_pseudonym_key, pseudonym, redact_detection, sees_identity
from gridsentinel.settings import Settings

pytestmark = pytest.mark.unit


def test_pseudonyms_are_stable_keyed_and_not_a_plain_hash() -> None:
    key = b"server-key"
    p = pseudonym(key, "account", "13800000000")
    assert p == pseudonym(key, "account", "13800000000") and p.startswith("p-") and len(p) == 18
    assert p != pseudonym(b"other-key", "account", "13800000000")
    assert p != pseudonym(key, "phone", "13800000000")
    assert p[2:] not in hashlib.sha256(b"account:13800000000").hexdigest()  # guessing needs the key


@pytest.mark.parametrize(("role", "sees"), [("viewer", False), ("citizen", False), ("department", False),
                                             ("dispatcher", True), ("supervisor", True), ("admin", True)])
def test_only_dispatcher_and_up_see_identity(role: str, sees: bool) -> None:
    assert sees_identity(role) is sees
    d: dict[str, Any] = {"source": "hotline", "evidence": {"caller_phone": "021-555", "address": "Main St"}}
    shown = redact_detection(d, role, b"k")
    assert (shown["evidence"]["caller_phone"] == "021-555") is sees and shown["evidence"]["address"] == "Main St"
    assert d["evidence"]["caller_phone"] == "021-555"  # the input is not changed


def test_sensor_detections_keep_their_device_ids() -> None:
    d = {"source": "sensor", "device_id": "drain-001", "evidence": {"device_id": "drain-001"}}
    assert redact_detection(d, "viewer", b"k") == d


def test_the_key_comes_from_settings_else_a_file_made_once(tmp_path: Path) -> None:
    given = Settings.model_validate({"run_dir": tmp_path, "citizen_pseudonym_secret": "abc"})
    assert load_pseudonym_key(given) == b"abc"
    settings = Settings.model_validate({"run_dir": tmp_path / "run"})
    first = load_pseudonym_key(settings)
    assert len(first) == 64 and load_pseudonym_key(settings) == first  # the same after a restart
    path = tmp_path / "run" / "citizen-pseudonym.secret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
