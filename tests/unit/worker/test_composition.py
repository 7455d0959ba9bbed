"""The composition root: stage names to stage objects with their wiring, and the Faust version check."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from gridsentinel.alerts.stage import AlertsStage
from gridsentinel.cases.stage import CaseStage
from gridsentinel.detectors.stage import DetectionStage
from gridsentinel.engineering.live_config import LiveConfigStage
from gridsentinel.ingest.stage import IngestStage
from gridsentinel.settings import Settings
from gridsentinel.streams.context import WorkerOptions
from gridsentinel.streams.faust_compat import RECHECK, TESTED_VERSIONS, UntestedVersion, check_versions
from gridsentinel.worker.stages import STAGES, app_id_for, build_stages

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[3]
SETTINGS = Settings(config_dir=ROOT / "config")


def test_stages_are_built_in_the_order_asked_and_live_config_drives_the_detect_engine() -> None:
    stages = build_stages(SETTINGS, WorkerOptions(influx_bucket="b1"), ["live-config", "ingest", "detect", "cases"])
    live, ingest, detect, cases, alerts = stages  # the cases worker's alert delivery comes last
    assert isinstance(alerts, AlertsStage)
    assert isinstance(live, LiveConfigStage) and isinstance(detect, DetectionStage)
    assert live.live.engine is detect.engine  # the one engine, whatever the order of the names
    assert isinstance(ingest, IngestStage) and ingest.bucket == "b1"
    assert isinstance(cases, CaseStage)


def test_live_config_without_a_detect_stage_has_no_engine_and_unknown_names_are_refused() -> None:
    [live] = build_stages(SETTINGS, WorkerOptions(), ["live-config"])
    assert isinstance(live, LiveConfigStage) and live.live.engine is None
    with pytest.raises(ValueError, match="unknown stage 'nope'; known: " + ", ".join(STAGES)):
        build_stages(SETTINGS, WorkerOptions(), ["ingest", "nope"])


def test_the_cases_worker_delivers_alerts_itself_unless_told_to_leave_them_to_alerts_workers() -> None:
    cases, alerts = build_stages(SETTINGS, WorkerOptions(app_id="gs"), ["cases"])  # the default: in the worker
    assert isinstance(cases, CaseStage) and isinstance(alerts, AlertsStage)
    separate = SETTINGS.model_copy(update={"cases_alerts": "separate"})
    assert [type(s) for s in build_stages(separate, WorkerOptions(app_id="gs"), ["cases"])] == [CaseStage]
    # asked for by name beside the cases stage: one alerts stage, never two (nothing delivered twice)
    stages = build_stages(SETTINGS, WorkerOptions(app_id="gs"), ["cases", "alerts"])
    assert [type(s) for s in stages] == [CaseStage, AlertsStage]
    # an alerts-only worker's Faust app is a group of its own; with the cases stage, the group is the app id
    assert (app_id_for("gs", ["alerts"]), app_id_for("gs", ["cases", "alerts"])) == ("gs-alerts", "gs")
    # the delivery's consumer group is the same wherever it runs, and starts where either Faust group got to
    [only] = build_stages(separate, WorkerOptions(app_id=app_id_for("gs", ["alerts"])), ["alerts"])
    for stage in (alerts, only):
        assert isinstance(stage, AlertsStage)
        assert (stage.group_id, stage.legacy_groups) == ("gs-alert-delivery", ("gs", "gs-alerts"))


def test_the_tested_faust_versions_are_the_pinned_ones_and_others_stop_the_worker() -> None:
    pins = dict(re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)$", (ROOT / "constraints.txt").read_text(), re.M))
    assert {name: pins.get(name) for name in TESTED_VERSIONS} == TESTED_VERSIONS
    check_versions()  # this environment is the pinned one
    with pytest.raises(UntestedVersion) as info:
        check_versions({**TESTED_VERSIONS, "faust-streaming": "0.16.0"})
    assert "faust-streaming 0.16.0 (tested: 0.15.3)" in str(info.value) and RECHECK in str(info.value)
