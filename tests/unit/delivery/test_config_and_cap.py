"""receivers.yaml validation, routing rules, and CAP 1.2 structure."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from gridsentinel.alerts.delivery.cap import CAP_NS, build_cap, cap_time
from gridsentinel.alerts.delivery.config import CapSettings, Match, load_receivers
from gridsentinel.alerts.delivery.config import Receiver as ReceiverConfig
from gridsentinel.alerts.delivery.routing import matches, receivers_for
from gridsentinel.errors import ConfigError
from gridsentinel.settings import REPO_ROOT

from .conftest import case_event

pytestmark = pytest.mark.unit
NS = {"cap": CAP_NS}
CAP_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d\d:\d\d$")


def test_repository_receivers_file_is_valid() -> None:
    cfg = load_receivers(REPO_ROOT / "config" / "receivers.yaml")
    assert cfg.mqtt.qos == 1 and cfg.mqtt.topic_prefix == "gs/v1/alerts"
    assert "event:L005" in cfg.cap.emergency_categories
    assert all(r.secret_env for r in cfg.receivers)  # no secrets in the repository


def test_bad_receivers_file_names_the_key(tmp_path: Path) -> None:
    path = tmp_path / "receivers.yaml"
    path.write_text("version: '1'\nreceivers:\n  - {name: a, url: 'ftp://x', secret_env: S, colour: red}\n")
    with pytest.raises(ConfigError) as info:
        load_receivers(path)
    assert "receivers.0.url" in str(info.value) and "receivers.0.colour" in str(info.value)
    with pytest.raises(ValueError, match="exactly one"):
        ReceiverConfig(name="a", url="http://x/")
    with pytest.raises(ConfigError, match="GS_NOPE"):
        ReceiverConfig(name="a", url="http://x/", secret_env="GS_NOPE").resolve_secret(env={})


def test_routing_by_prefix_category_severity_and_type() -> None:
    ev = case_event(severity="warning", type="escalate")
    assert matches(Match(grid_prefixes=("320582004",)), ev)
    assert not matches(Match(grid_prefixes=("320583",)), ev)
    assert not matches(Match(categories=("event:0103",)), ev)
    assert not matches(Match(min_severity="alarm"), ev)
    assert matches(Match(event_types=("escalate", "open")), ev)
    assert not matches(Match(event_types=("open",)), ev)
    everyone = ReceiverConfig(name="all", url="http://x/", secret="s" * 16)
    assert receivers_for(ev, [everyone]) == [everyone]
    assert receivers_for(case_event(notify=False), [everyone]) == []


def _text(root: ET.Element, path: str) -> str:
    el = root.find(path, NS)
    assert el is not None and el.text, path
    return el.text


def test_cap_alert_has_the_required_elements_in_order() -> None:
    settings = CapSettings(sender="gs@city.example", emergency_categories={"event:L005": "Fire"})
    root = ET.fromstring(build_cap(case_event(), settings, event_name="fire or smoke"))
    assert root.tag == f"{{{CAP_NS}}}alert"
    names = [child.tag.split("}")[1] for child in root]
    assert names[:7] == ["identifier", "sender", "sent", "status", "msgType", "scope", "restriction"]
    assert _text(root, "cap:identifier") == "gridsentinel-c1:1"
    assert not re.search(r"[\s,<&]", _text(root, "cap:identifier"))
    assert CAP_TIME.match(_text(root, "cap:sent")) and not _text(root, "cap:sent").endswith("Z")
    assert _text(root, "cap:status") in {"Actual", "Exercise", "System", "Test", "Draft"}
    assert _text(root, "cap:msgType") == "Alert" and root.find("cap:references", NS) is None
    assert _text(root, "cap:scope") == "Restricted" and _text(root, "cap:restriction")
    info = root.find("cap:info", NS)
    assert info is not None
    info_names = [child.tag.split("}")[1] for child in info]
    order = ["language", "category", "event", "responseType", "urgency", "severity", "certainty"]
    assert info_names[:7] == order
    assert _text(info, "cap:category") == "Fire" and _text(info, "cap:event") == "fire or smoke"
    assert _text(info, "cap:urgency") == "Immediate" and _text(info, "cap:severity") == "Extreme"
    assert _text(info, "cap:certainty") == "Observed"
    area = info.find("cap:area", NS)
    assert area is not None and _text(area, "cap:areaDesc")
    assert re.match(r"^-?\d+(\.\d+)?,-?\d+(\.\d+)? \d+(\.\d+)?$", _text(area, "cap:circle"))
    assert _text(area, "cap:geocode/cap:value") == "320582004001001"


def test_cap_updates_and_cancels_reference_the_opening_alert() -> None:
    settings = CapSettings(sender="gs@city.example", scope="Public")
    update = ET.fromstring(build_cap(case_event("c1:3", type="escalate", at=1749438000.0), settings))
    assert _text(update, "cap:msgType") == "Update" and update.find("cap:restriction", NS) is None
    assert _text(update, "cap:references") == f"gs@city.example,gridsentinel-c1:1,{cap_time(1749434400.0)}"
    cancel = ET.fromstring(build_cap(case_event("c1:5", type="false_alarm", status="closed"), settings))
    assert _text(cancel, "cap:msgType") == "Cancel"
    assert _text(cancel, "cap:info/cap:responseType") == "AllClear"
    assert _text(cancel, "cap:info/cap:urgency") == "Past"
    citizen = ET.fromstring(build_cap(case_event(case={"sources": {"citizen": 2}}), settings))
    assert _text(citizen, "cap:info/cap:certainty") == "Likely"
    assert cap_time(0.0) == "1970-01-01T00:00:00-00:00"
