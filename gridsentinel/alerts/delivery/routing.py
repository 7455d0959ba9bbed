"""Which receivers get a case event (pure).

>>> from gridsentinel.alerts.delivery.config import Match, Receiver
>>> from gridsentinel.cases.events import CaseEvent
>>> ev = CaseEvent(event_id="c1:1", case_id="c1", type="open", at=0.0, actor="system:dedup",
...                grid_code="320582004001001", category_key="event:L005", status="open",
...                severity="alarm", notify=True)
>>> fire = Receiver(name="fire", url="http://h/", secret="x" * 16,
...                 match=Match(categories=("event:L005",), min_severity="alarm"))
>>> other = Receiver(name="other", url="http://h/", secret="x" * 16, match=Match(grid_prefixes=("110101",)))
>>> [r.name for r in receivers_for(ev, [fire, other])]
['fire']

A receiver of a center gets only that center's cells:

>>> street = Receiver(name="street", url="http://h/", secret="x" * 16, center="street:320582004")
>>> elsewhere = Receiver(name="elsewhere", url="http://h/", secret="x" * 16, center="street:320582005")
>>> [r.name for r in receivers_for(ev, [street, elsewhere])]
['street']
"""

from __future__ import annotations

from collections.abc import Sequence

from gridsentinel.alerts.delivery.config import Match, Receiver
from gridsentinel.cases.events import CaseEvent
from gridsentinel.core.records import SEVERITIES


def matches(match: Match, event: CaseEvent) -> bool:
    return (
        (not match.grid_prefixes or any(event.grid_code.startswith(p) for p in match.grid_prefixes))
        and (not match.categories or event.category_key in match.categories)
        and (not match.event_types or event.type in match.event_types)
        and event.severity in SEVERITIES
        and SEVERITIES.index(event.severity) >= SEVERITIES.index(match.min_severity)
    )


def receivers_for(event: CaseEvent, receivers: Sequence[Receiver]) -> list[Receiver]:
    """The receivers that get ``event``: none unless the alert policy set ``notify``."""
    if not event.notify:
        return []
    return [r for r in receivers if in_scope(r, event) and matches(r.match, event)]


def in_scope(receiver: Receiver, event: CaseEvent) -> bool:
    """The event's cell lies under the receiver's center (any cell when it names none)."""
    center = receiver.scope
    return center is None or event.grid_code.startswith(center.prefix)
