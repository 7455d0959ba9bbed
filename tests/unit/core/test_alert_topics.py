"""Alert topics carry the grid code's levels, so a center's filters hold its alerts and no other center's.

Matching is checked with paho's own topic matcher (the MQTT rules a broker applies to a subscription)."""

from __future__ import annotations

import pytest
from paho.mqtt.client import topic_matches_sub

from gridsentinel.core.alert_topics import AlertTopicError, alert_topic, center_filters

pytestmark = pytest.mark.unit

CELL = "320582110152102"
SAME_COMMUNITY = "320582110152001"
OTHER_COMMUNITY = "320582110153001"
OTHER_STREET = "320582111152102"
OTHER_DISTRICT = "320583110152102"
OTHER_CITY = "110101110152102"


def readable(filters: list[str], code: str) -> bool:
    return any(topic_matches_sub(f, alert_topic(code)) for f in filters)


def test_the_topic_has_one_level_per_rung_and_ends_with_the_code() -> None:
    assert alert_topic(CELL) == "gs/v1/alerts/320582/110/152/320582110152102"
    assert alert_topic(CELL, "city/alerts/") == "city/alerts/320582/110/152/320582110152102"
    assert topic_matches_sub("gs/v1/alerts/#", alert_topic(CELL))  # the whole tree still works


@pytest.mark.parametrize("code", ["32058211015210", "3205821101521020", "32058211015210x", ""])
def test_a_bad_grid_code_has_no_topic(code: str) -> None:
    with pytest.raises(AlertTopicError, match="15-digit grid code"):
        alert_topic(code)


@pytest.mark.parametrize(("level", "prefix", "inside", "outside"), [
    ("community", "320582110152", [CELL, SAME_COMMUNITY], [OTHER_COMMUNITY, OTHER_STREET]),
    ("street", "320582110", [CELL, OTHER_COMMUNITY], [OTHER_STREET, OTHER_DISTRICT]),
    ("district", "320582", [CELL, OTHER_STREET], [OTHER_DISTRICT, OTHER_CITY]),
])
def test_a_center_reads_its_cells_and_no_other(level: str, prefix: str, inside: list[str],
                                              outside: list[str]) -> None:
    filters = center_filters(level, prefix)
    assert len(filters) == 1 and filters[0].endswith("/#")
    assert all(readable(filters, c) for c in inside)
    assert not any(readable(filters, c) for c in outside)


def test_a_city_reads_the_grids_districts_under_its_digits() -> None:
    filters = center_filters("city", "3205", districts=["320582", "320583", "110101", "320582"])
    assert filters == ["gs/v1/alerts/320582/#", "gs/v1/alerts/320583/#"]
    assert readable(filters, CELL) and readable(filters, OTHER_DISTRICT)
    assert not readable(filters, OTHER_CITY)
    with pytest.raises(AlertTopicError, match="no district in the grid"):
        center_filters("city", "3206", districts=["320582"])


@pytest.mark.parametrize(("level", "prefix", "message"), [
    ("street", "32058211", "a street center has 9 digits"),
    ("district", "3205a2", "digits"),
    ("grid", CELL, "no alert topics for a 'grid' center"),
    ("city", "320", "a city center has 4 digits"),
])
def test_a_malformed_center_has_no_filter(level: str, prefix: str, message: str) -> None:
    with pytest.raises(AlertTopicError, match=message):
        center_filters(level, prefix, districts=["320582"])
