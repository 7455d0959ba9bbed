"""A device id cannot take a first topic segment GridSentinel uses itself (gs/v1/alerts/...)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from gridsentinel.alerts.delivery.config import MqttSettings
from gridsentinel.alerts.delivery.mqtt import alert_topic
from gridsentinel.core.devices import DEVICE_TOPIC_ROOT, RESERVED_DEVICE_IDS, Device, Location
from gridsentinel.devices.bulk import parse_import

pytestmark = pytest.mark.unit

HERE = Location(lat=31.87225, lon=120.55053)


@pytest.mark.parametrize("device_id", ["alerts", "Alerts", "ALERTS"])
def test_a_device_may_not_be_named_after_the_alert_topics(device_id: str) -> None:
    with pytest.raises(ValidationError, match=r"reserved: gs/v1/alerts/\.\.\. is GridSentinel's alert topic tree"):
        Device(id=device_id, kind="drain_level", location=HERE)
    assert Device(id="alerts-1", kind="drain_level", location=HERE).id == "alerts-1"  # only the whole segment


def test_the_default_alert_topic_is_under_a_reserved_segment() -> None:
    root, _, rest = alert_topic("320582004001001").partition(DEVICE_TOPIC_ROOT + "/")
    assert root == "" and rest.split("/")[0] in RESERVED_DEVICE_IDS
    assert MqttSettings().topic_prefix == "gs/v1/alerts"


@pytest.mark.parametrize("prefix", ["gs/v1/cases", "gs/v1/drain-001", "gs/v1", "gs/v1/"])
def test_alert_topics_may_not_go_into_device_topics(prefix: str) -> None:
    with pytest.raises(ValidationError, match="inside the device topics gs/v1/"):
        MqttSettings(topic_prefix=prefix)


@pytest.mark.parametrize("prefix", ["gs/v1/alerts", "city/alerts", "gs/v2/alerts"])
def test_alert_topics_outside_device_topics_are_fine(prefix: str) -> None:
    assert MqttSettings(topic_prefix=prefix).topic_prefix == prefix


def test_an_import_names_the_row_with_a_reserved_id() -> None:
    rows, errors = parse_import("id,kind,lat,lon\ndrain-1,drain_level,31.87,120.55\nalerts,drain_level,31.87,120.55\n",
                                "devices.csv")
    assert [d.id for _, d in rows] == ["drain-1"]
    assert len(errors) == 1 and "reserved" in str(errors[0]) and "alert topic tree" in str(errors[0])
