"""Hand-overs counted per center, from case log entries (issue 16: "every hand-over is counted"). Pure.

A hand-over is a log entry that moves a case between centers, or back into a center's queue:

- ``escalate`` (overdue, or after a refusal): ``from_center`` counts one ``escalated_out``, ``to_center``
  one ``escalated_in``;
- ``request_coordination``: the asking center ``coordination_requested``, its parent
  ``coordination_received``;
- ``hand_back``: the upper center ``handed_back``, the lower one ``handed_back_in``;
- ``refuse``: the center holding the case when a department refused it counts one ``refusals``.

Entries written before issue 16 name the receiving center ``center`` rather than ``to_center``; both are read.
The API serves these counts for a center (and its period: filter the entries by ``at`` first).

>>> from gridsentinel.cases.case import LogEntry
>>> up = LogEntry("c1", 2, 10.0, "system:escalation", "escalate", "open", "open",
...               data={"from_center": "street:320582110", "to_center": "district:320582"})
>>> back = LogEntry("c1", 3, 20.0, "user:zhou", "hand_back", "open", "open",
...                 data={"from_center": "district:320582", "to_center": "street:320582110"})
>>> counts = count_handovers([up, back])
>>> counts["street:320582110"].escalated_out, counts["street:320582110"].handed_back_in
(1, 1)
>>> counts["district:320582"].to_dict()["handed_back"]
1
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from gridsentinel.cases.case import LogEntry

HANDOVER_ACTIONS: frozenset[str] = frozenset({"escalate", "request_coordination", "hand_back", "refuse"})
# action -> (count of the sending center, count of the receiving center)
_COUNTED: dict[str, tuple[str, str]] = {
    "escalate": ("escalated_out", "escalated_in"),
    "request_coordination": ("coordination_requested", "coordination_received"),
    "hand_back": ("handed_back", "handed_back_in"),
}


@dataclass(slots=True)
class HandoverCounts:
    """One center's hand-overs."""

    escalated_in: int = 0
    escalated_out: int = 0
    coordination_requested: int = 0
    coordination_received: int = 0
    handed_back: int = 0
    handed_back_in: int = 0
    refusals: int = 0

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def count_handovers(entries: Iterable[LogEntry]) -> dict[str, HandoverCounts]:
    """Hand-overs per center id (centers without any are absent), in center-id order."""
    counts: dict[str, HandoverCounts] = {}

    def bump(center: object, name: str) -> None:
        if isinstance(center, str) and center:
            found = counts.setdefault(center, HandoverCounts())
            setattr(found, name, getattr(found, name) + 1)

    for entry in entries:
        if entry.action == "refuse":
            bump(entry.data.get("center"), "refusals")
        elif entry.action in _COUNTED:
            sent, received = _COUNTED[entry.action]
            bump(entry.data.get("from_center"), sent)
            bump(entry.data.get("to_center") or entry.data.get("center"), received)
    return dict(sorted(counts.items()))
