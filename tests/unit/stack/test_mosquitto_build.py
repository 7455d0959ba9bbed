"""The stack runs its own Mosquitto build: the tool paths, and the BUILD-ID that decides a rebuild."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from gridsentinel.errors import ServiceError
from gridsentinel.settings import Settings
from gridsentinel.stack.services import (
    MOSQUITTO_TOOLS,
    MOSQUITTO_VERSION,
    SCRIPTS,
    Mosquitto,
    mosquitto_build_id,
    mosquitto_tool,
)

pytestmark = pytest.mark.unit


def fake_build(cache: Path, build_id: str) -> Path:
    bindir = cache / "bin" / f"mosquitto-{MOSQUITTO_VERSION}"
    bindir.mkdir(parents=True)
    for tool in MOSQUITTO_TOOLS:
        (bindir / tool).write_text("")
    (bindir / "BUILD-ID").write_text(build_id + "\n")
    return bindir


def test_build_id_matches_the_build_script() -> None:
    script = subprocess.run(["bash", str(SCRIPTS / "build-mosquitto.sh"), "--build-id"], capture_output=True,
                            text=True, check=True)
    assert script.stdout.strip() == mosquitto_build_id()
    assert mosquitto_build_id().startswith(f"{MOSQUITTO_VERSION}+")  # the session-expiry patch is built in


def test_tool_paths_point_into_the_cache(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    bindir = fake_build(tmp_path, mosquitto_build_id())
    assert mosquitto_tool(settings, "mosquitto_pub") == str(bindir / "mosquitto_pub")
    assert Mosquitto(settings).built()
    with pytest.raises(ValueError, match="mosquitto_rr"):
        mosquitto_tool(settings, "mosquitto_rr")


def test_a_missing_or_stale_build_does_not_count_as_built(tmp_path: Path) -> None:
    settings = Settings(cache_dir=tmp_path)
    with pytest.raises(ServiceError, match="gridsentinel up"):
        mosquitto_tool(settings, "mosquitto")
    assert not Mosquitto(settings).built()
    fake_build(tmp_path, f"{MOSQUITTO_VERSION}+000000000000")  # built before the patches changed
    assert not Mosquitto(settings).built()
