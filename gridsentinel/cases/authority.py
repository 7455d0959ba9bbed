"""Who sees and who may act on a case: centers, scope and queues (issue 16). Pure: no I/O, no clock.

A **center** owns a prefix of the 15-digit grid code (``city:3205``, ``district:320582``,
``street:320582110``, ``community:320582110152``); its parent is the center of the next shorter prefix.
A user (an :class:`Actor`) belongs to one center, or to none (the whole city, as before centers existed).

- **Visible**: a case whose cell lies in the actor's prefix, or that is in the actor's center's hands
  (``case.center``). Everything else is invisible: the API answers 404, not 403, so case ids do not leak.
  A ``department`` user sees the cases dispatched to the department (lead or assisting), in its prefix.
- **In charge**: the center responsible for the case now (``case.center``) is the actor's center or one
  below it. A lower center keeps seeing a case it escalated, read-only; the upper center may act on it.
- **Queues** of a center: ``new`` (open, started here, not refused), ``escalated_in`` (in this center's
  hands, started below it), ``refused`` (open again after a department refused it), ``overdue`` (in this
  center's hands, past its due time) and ``escalated_out`` (a case of this center's cells now in the
  hands of a center above it).

>>> li = Actor("li", "dispatcher", "street:320582110")
>>> case = new_case_for_test(grid_code="320582110152102", center="street:320582110",
...                          home_center="street:320582110")
>>> visible(li, case), in_charge(li, case), queues(case, "street:320582110", now=0.0)
(True, True, ['new'])
>>> up = replace(case, center="district:320582", escalation_level=1)
>>> visible(li, up), in_charge(li, up), queues(up, "street:320582110", now=0.0)
(True, False, ['escalated_out'])
>>> queues(up, "district:320582", now=0.0)
['escalated_in']
>>> visible(Actor("wu", "dispatcher", "street:320582004"), case)
False
"""

from __future__ import annotations

from dataclasses import dataclass, replace  # noqa: F401 (replace: the doctest)
from typing import Literal

from gridsentinel.cases.case import Case, new_case_for_test  # noqa: F401 (new_case_for_test: the doctest)
from gridsentinel.cases.gridcode import LEVELS

Queue = Literal["new", "escalated_in", "refused", "overdue", "escalated_out"]
QUEUES: tuple[Queue, ...] = ("new", "escalated_in", "refused", "overdue", "escalated_out")
_PREFIX_LEN = {"city": 4, "district": 6, "street": 9, "community": 12}


@dataclass(frozen=True, slots=True)
class Actor:
    """A signed-in user as the case rules see it. ``center`` None: the whole city."""

    name: str
    role: str
    center: str | None = None
    department: str | None = None

    @property
    def prefix(self) -> str:
        """The grid-code prefix the actor's center owns ("" for the whole city)."""
        return center_prefix(self.center) if self.center else ""


def is_center_id(text: str) -> bool:
    """Whether ``text`` is a center id: a level and a prefix of that level's length.

    >>> is_center_id("street:320582110"), is_center_id("street:3205"), is_center_id("grid:320582110152102")
    (True, False, False)
    """
    level, _, prefix = text.partition(":")
    return level in _PREFIX_LEN and len(prefix) == _PREFIX_LEN[level] and prefix.isdigit()


def center_prefix(center: str) -> str:
    """``street:320582110`` -> ``320582110``."""
    return center.partition(":")[2]


def center_level(center: str) -> str:
    """``street:320582110`` -> ``street``."""
    return center.partition(":")[0]


def parent_center(center: str) -> str | None:
    """The center one level up (None above the city).

    >>> parent_center("street:320582110"), parent_center("district:320582"), parent_center("city:3205")
    ('district:320582', 'city:3205', None)
    """
    level = center_level(center)
    index = LEVELS.index(level)
    if index + 1 >= len(LEVELS):
        return None
    up = LEVELS[index + 1]
    return f"{up}:{center_prefix(center)[:_PREFIX_LEN[up]]}"


def visible(actor: Actor, case: Case) -> bool:
    """Whether ``actor`` may see ``case`` at all (otherwise: 404)."""
    if actor.role == "citizen":
        return False
    if actor.role == "department":
        ours = actor.department is not None and (
            case.department == actor.department or actor.department in case.assisting_departments)
        return ours and case.grid_code.startswith(actor.prefix)
    return case.grid_code.startswith(actor.prefix) or (actor.center is not None and case.center == actor.center)


def in_charge(actor: Actor, case: Case) -> bool:
    """Whether the center now responsible for ``case`` is the actor's or below it (it may act)."""
    if not visible(actor, case):
        return False
    if actor.role == "department":
        return True  # what a department may do is decided per action
    return center_prefix(case.center).startswith(actor.prefix)


def queues(case: Case, center: str, *, now: float) -> list[Queue]:
    """The queues of ``center`` that ``case`` is in (a case may be overdue and escalated in at once)."""
    found: list[Queue] = []
    if not case.is_active:
        return found
    prefix = center_prefix(center)
    home = case.home_center or case.center
    if case.center == center:
        if case.status == "open" and case.refused_at is None and home == center:
            found.append("new")
        if home != center:
            found.append("escalated_in")
        if case.status == "open" and case.refused_at is not None:
            found.append("refused")
        if case.due_at is not None and case.due_at < now:
            found.append("overdue")
    elif case.grid_code.startswith(prefix) and not center_prefix(case.center).startswith(prefix):
        found.append("escalated_out")
    return found
