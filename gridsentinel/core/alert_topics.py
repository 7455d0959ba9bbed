"""The MQTT alert topics: one topic level per rung of the grid code, so the broker ACL can scope a center.

A cell's alerts go to ``gs/v1/alerts/<district 6>/<street 3>/<community 3>/<grid_code 15>``. MQTT
wildcards match whole levels only, so a center's alerts are the filter of its prefix's levels plus ``#``:

>>> alert_topic("320582110152102")
'gs/v1/alerts/320582/110/152/320582110152102'
>>> center_filters("street", "320582110")
['gs/v1/alerts/320582/110/#']
>>> center_filters("community", "320582110152")
['gs/v1/alerts/320582/110/152/#']

A city center (4 digits) is not a whole level (a district level has 6 digits), so it gets one filter per
district of the grid that starts with its digits:

>>> center_filters("city", "3205", districts=["320582", "320583", "110101"])
['gs/v1/alerts/320582/#', 'gs/v1/alerts/320583/#']
"""

from __future__ import annotations

from collections.abc import Iterable

from gridsentinel.core.grid import valid_grid_code

ALERT_TOPIC_ROOT = "gs/v1/alerts"
# Digits of the grid code in each topic level below the root (district, street, community); the full code
# is the last level, so a subscriber of one cell can name it and a message names its cell on its own.
LEVEL_DIGITS = (6, 3, 3)
# Prefix length of each center level that is a whole number of topic levels.
_LEVEL_PREFIX = {"district": 6, "street": 9, "community": 12}
CITY_DIGITS = 4


class AlertTopicError(ValueError):
    """A grid code or center that has no alert topic."""


def alert_topic(grid_code: str, root: str = ALERT_TOPIC_ROOT) -> str:
    """The topic of one cell's alerts (``root`` is receivers.yaml's ``mqtt.topic_prefix``)."""
    if not valid_grid_code(grid_code):
        raise AlertTopicError(f"an alert topic needs a 15-digit grid code, got {grid_code!r}")
    return "/".join([root.rstrip("/"), *_levels(grid_code), grid_code])


def _levels(digits: str) -> list[str]:
    """``digits`` (a prefix made of whole levels) cut into its topic levels."""
    levels, start = [], 0
    for width in LEVEL_DIGITS:
        if start >= len(digits):
            break
        levels.append(digits[start:start + width])
        start += width
    return levels


def center_filters(level: str, prefix: str, *, districts: Iterable[str] = (),
                   root: str = ALERT_TOPIC_ROOT) -> list[str]:
    """The topic filters that hold exactly the alerts of the center ``level:prefix``.

    ``districts`` (the grid's 6-digit district codes) is used only by a city center. A city with no
    district in ``districts`` has no filter: that is an error, not an empty grant.
    """
    if not prefix.isdigit():
        raise AlertTopicError(f"a center prefix is digits, got {prefix!r}")
    base = root.rstrip("/")
    if level == "city":
        if len(prefix) != CITY_DIGITS:
            raise AlertTopicError(f"a city center has {CITY_DIGITS} digits, got {prefix!r}")
        mine = sorted({d for d in districts if len(d) == 6 and d.isdigit() and d.startswith(prefix)})
        if not mine:
            raise AlertTopicError(f"city {prefix} has no district in the grid: no alert topic to grant")
        return [f"{base}/{d}/#" for d in mine]
    width = _LEVEL_PREFIX.get(level)
    if width is None:
        raise AlertTopicError(f"no alert topics for a {level!r} center; use city, district, street or community")
    if len(prefix) != width:
        raise AlertTopicError(f"a {level} center has {width} digits, got {prefix!r}")
    return ["/".join([base, *_levels(prefix), "#"])]
