"""The Telegraf peer's configuration (bench/telegraf_peer.py): valid TOML with the guarantees the comparison
rests on, and a clear error when there is no binary."""

from __future__ import annotations

import tomllib
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from gridsentinel.bench.telegraf_peer import config, telegraf_binary
from gridsentinel.errors import GridSentinelError
from gridsentinel.settings import Settings

pytestmark = pytest.mark.unit


def bench(tmp_path: Path) -> Any:
    run = tmp_path / "run"
    (run / "mosquitto").mkdir(parents=True)
    (run / "mosquitto" / "gateway.secret").write_text("pw-\"quoted\"\n")
    return SimpleNamespace(settings=Settings.model_validate({"run_dir": run, "mqtt_port": 18830}))


def test_the_configuration_is_toml_with_the_gateways_guarantees(tmp_path: Path) -> None:
    kafka: dict[str, object] = {"brokers": ["127.0.0.1:19092"], "topic": "b1.telegraf", "required_acks": -1,
                                "idempotent_writes": True, "compression_codec": 3, "data_format": "json"}
    conf = tomllib.loads(config(cast(Any, bench(tmp_path)), "b1-telegraf", {"kafka": kafka}))
    [mqtt] = conf["inputs"]["mqtt_consumer"]
    assert mqtt["servers"] == ["tcp://127.0.0.1:18830"] and mqtt["topics"] == ["gs/v1/+/telemetry"]
    assert (mqtt["qos"], mqtt["persistent_session"], mqtt["client_id"]) == (1, True, "b1-telegraf")
    assert mqtt["password"] == 'pw-"quoted"'  # escaped, not cut at the quote
    assert (mqtt["json_time_key"], mqtt["json_time_format"]) == ("ts", "unix")
    assert conf["outputs"]["kafka"] == [kafka]
    assert conf["agent"]["metric_batch_size"] == 5000


def test_a_missing_binary_says_how_to_build_it(tmp_path: Path) -> None:
    settings = Settings.model_validate({"cache_dir": tmp_path})
    with pytest.raises(GridSentinelError, match="scripts/telegraf.sh"):
        telegraf_binary(settings)
    built = tmp_path / "bin" / "telegraf-1.37.2"
    built.parent.mkdir()
    built.write_text("#!/bin/sh\n")
    built.chmod(0o755)
    assert telegraf_binary(settings) == built
    with pytest.raises(GridSentinelError, match="GS_TELEGRAF"):  # a given path wins, even when it is wrong
        telegraf_binary(settings.with_(telegraf=str(tmp_path / "nope")))
