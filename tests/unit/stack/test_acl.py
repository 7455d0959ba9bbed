"""The broker's ACL file: alert subscribers' read-only grants beside the gateway and the device pattern,
written with their password lines in one step, kept across `up` (prepare), removed at a revocation."""

from __future__ import annotations

from pathlib import Path

import pytest

from gridsentinel.settings import Settings
from gridsentinel.stack.services import BASE_ACL, Mosquitto, render_acl

pytestmark = pytest.mark.unit

STREET = ["gs/v1/alerts/320582/004/#"]
CITY = ["gs/v1/alerts/320582/#", "gs/v1/alerts/320583/#"]


def user_block(acl: str, user: str) -> list[str]:
    """The lines of ``user``'s block (up to the next blank line)."""
    lines = acl.splitlines()
    start = lines.index(f"user {user}")
    end = next((i for i in range(start, len(lines)) if not lines[i]), len(lines))
    return lines[start:end]


def test_a_subscriber_block_reads_its_filters_and_denies_its_device_namespace() -> None:
    acl = render_acl({"street-a": STREET, "city-3205": CITY})
    assert acl.startswith(BASE_ACL)  # the gateway and the device pattern are untouched
    assert user_block(acl, "street-a") == ["user street-a", "topic deny gs/v1/street-a/#",
                                           "topic read gs/v1/alerts/320582/004/#"]
    assert user_block(acl, "city-3205")[2:] == [f"topic read {f}" for f in CITY]
    # no subscriber line grants write (or readwrite): only the gateway may publish alerts
    subscriber_lines = acl[len(BASE_ACL):].splitlines()
    assert not [line for line in subscriber_lines if line.startswith("topic ") and "write" in line]
    assert acl.index("user city-3205") < acl.index("user street-a")  # stable order: diffs stay small
    assert render_acl({}) == BASE_ACL


def mosquitto(tmp_path: Path) -> Mosquitto:
    config = tmp_path / "config"
    config.mkdir(exist_ok=True)
    (config / "devices.yaml").write_text("devices: []\n")
    return Mosquitto(Settings(run_dir=tmp_path / "run", config_dir=config))


def test_grants_and_passwords_are_written_together_and_revoked_together(tmp_path: Path) -> None:
    broker = mosquitto(tmp_path)  # not running: the files are written, no reload is needed
    broker.set_credentials({"street-a": "pw-a" * 8}, grants={"street-a": STREET})
    broker.set_credentials({"dev-1": "pw-d" * 8})  # a device change keeps the subscriber's grants
    acl = (broker.dir / "acl").read_text()
    assert "topic read gs/v1/alerts/320582/004/#" in user_block(acl, "street-a")
    assert {"street-a", "dev-1"} <= broker.known_users()
    assert oct((broker.dir / "acl").stat().st_mode & 0o777) == "0o600"

    broker.set_credentials({}, revoke=["street-a"])
    assert "user street-a" not in (broker.dir / "acl").read_text()
    assert "street-a" not in broker.known_users() and "dev-1" in broker.known_users()
    assert broker.subscriber_acl() == {}


def test_prepare_keeps_the_subscribers_grants(tmp_path: Path) -> None:
    broker = mosquitto(tmp_path)
    broker.set_credentials({"district-320582": "pw" * 16}, grants={"district-320582": ["gs/v1/alerts/320582/#"]})
    (broker.dir / "acl").write_text(BASE_ACL)  # e.g. an older `up` wrote it without them
    broker.prepare()
    assert user_block((broker.dir / "acl").read_text(), "district-320582")[-1] == "topic read gs/v1/alerts/320582/#"


def test_prepare_adds_the_gateway_to_a_password_file_a_command_started(tmp_path: Path) -> None:
    broker = mosquitto(tmp_path)
    broker.set_credentials({"street-a": "pw-a" * 8}, grants={"street-a": STREET})  # before the first `up`
    assert "gateway" not in broker.known_users()
    broker.prepare()
    assert {"gateway", "street-a"} <= broker.known_users()
