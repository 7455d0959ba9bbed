"""Who sees and who may act on a case: centers, scope and queues (issue 16). Pure: no I/O, no clock.

A **center** owns a prefix of the 15-digit grid code (``city:3205``, ``district:320582``,
``street:320582110``, ``community:320582110152``); its parent is the center of the next shorter prefix.
A user (an :class:`Actor`) belongs to one center, or to none (the whole city, as before centers existed).

- **Visible**: a case whose cell lies in the actor's prefix, or that is in the actor's center's hands
  (``case.center``). Everything else is invisible: the API answers 404, not 403, so case ids do not leak.
  A ``department`` user sees the cases dispatched to the department (lead or assisting), in its prefix.
- **In charge**: the center responsible for the case now (``case.center``) is the actor's center or one
  below it. A lower center keeps seeing a case it escalated, read-only; the upper center may act on it.
- **May act** (:func:`check`, :func:`choices`; docs/cases.md has the table by role): viewers act on
  nothing; users of the ladder (dispatcher and up) of a center in charge take the workflow actions;
  ``request_coordination`` only by the center holding the case, ``hand_back`` only by a center above the
  home center; ``department`` users ``start``, ``resolve`` and ``refuse`` the cases dispatched to their
  department (an assisting one may only ``refuse``, which takes it off the joint handling); and four eyes:
  ``false_alarm`` on a machine-found case is confirmed (or ``reject_false_alarm`` ed) only by a different
  user who is a supervisor (or higher) of a center in charge, or a user of a center above the case's.
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
>>> check(li, up, "dispatch")
Traceback (most recent call last):
...
gridsentinel.cases.case.NotAllowed: case c1: district:320582 holds the case now; street:320582110 sees it read-only
>>> [c.action for c in choices(Actor("zhou", "dispatcher", "district:320582"), up) if c.allowed]
['dispatch', 'acknowledge', 'false_alarm', 'duplicate', 'request_coordination', 'hand_back']
"""

from __future__ import annotations

from dataclasses import dataclass, replace  # noqa: F401 (replace: the doctest)
from typing import Literal, NamedTuple

from gridsentinel.cases.case import (  # noqa: F401 (new_case_for_test: the doctest)
    Case,
    NotAllowed,
    available_actions,
    needs_four_eyes,
    new_case_for_test,
)
from gridsentinel.cases.gridcode import LEVELS

Queue = Literal["new", "escalated_in", "refused", "overdue", "escalated_out"]
QUEUES: tuple[Queue, ...] = ("new", "escalated_in", "refused", "overdue", "escalated_out")
_PREFIX_LEN = {"city": 4, "district": 6, "street": 9, "community": 12}
# The role ladder, as gridsentinel.api.auth.LADDER (a unit test keeps them equal; cases cannot import api).
LADDER: tuple[str, ...] = ("viewer", "dispatcher", "supervisor", "engineer", "admin")
# What a department's staff may do, on the cases dispatched to their department.
DEPARTMENT_ACTIONS: frozenset[str] = frozenset({"start", "resolve", "refuse"})


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

    @property
    def log_name(self) -> str:
        """How the case log names this user (``user:<name>``): four eyes compares these."""
        return f"user:{self.name}"

    def at_least(self, role: str) -> bool:
        """Whether the actor's role is ``role`` or higher on the ladder (department and citizen: never)."""
        return self.role in LADDER and LADDER.index(self.role) >= LADDER.index(role)


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


class Choice(NamedTuple):
    """One action on a case for one user: whether it is allowed and, if not, why (the dashboard's tooltip)."""

    action: str
    allowed: bool
    reason: str


def _above(actor: Actor, case: Case) -> bool:
    """Whether the actor's center is strictly above the center holding ``case``."""
    return (actor.center is not None and actor.center != case.center
            and center_prefix(case.center).startswith(actor.prefix))


def _may_confirm(actor: Actor, case: Case) -> bool:
    """The second pair of eyes: a supervisor (or higher) in charge, or a user of a center above the case's."""
    return in_charge(actor, case) and (actor.at_least("supervisor")
                                       or (actor.at_least("dispatcher") and _above(actor, case)))


def why_not(actor: Actor, case: Case, action: str, *, department: str | None = None) -> str | None:
    """Why ``actor`` may not take ``action`` on ``case`` (None: they may). Only who may act is judged
    here; whether the case's state allows the action is the workflow's (InvalidTransition).

    ``department`` is the refusing department of a ``refuse`` (default: the user's own, or the lead).
    """
    if not visible(actor, case):
        return f"{actor.name} cannot see this case"
    if actor.role == "department":
        if action not in DEPARTMENT_ACTIONS:
            return "department staff may only start, resolve or refuse the cases dispatched to their department"
        if action == "refuse":
            refusing = department or actor.department
            if refusing != actor.department:
                return f"{actor.department} staff cannot refuse for {refusing}"
            return None  # lead or assisting: visible() already requires one of them
        if case.department != actor.department:
            return (f"only the lead department ({case.department}) may {action} this case; "
                    f"{actor.department} is assisting")
        return None
    if not actor.at_least("dispatcher"):
        return f"role {actor.role} may look at cases but not change them"
    if not in_charge(actor, case):
        return f"{case.center} holds the case now; {actor.center} sees it read-only"
    if action == "request_coordination" and actor.center is not None and actor.center != case.center:
        return f"only the center holding the case ({case.center}) asks its parent center to step in"
    pending = case.pending_action
    if action == "reject_false_alarm" and pending is not None:
        if pending.get("by") != actor.log_name and not _may_confirm(actor, case):
            return (f"rejecting a false alarm request needs a supervisor of a center in charge, or a user of a "
                    f"center above {case.center}")
    if action == "false_alarm" and needs_four_eyes(case) and pending is not None:
        if pending.get("by") == actor.log_name:
            return "you requested this false alarm; a second user must confirm it"
        if not _may_confirm(actor, case):
            return (f"confirming a false alarm on a machine-found case needs a supervisor of a center in charge, "
                    f"or a user of a center above {case.center}")
    return None


def check(actor: Actor, case: Case, action: str, *, department: str | None = None,
          top_level: str = "city") -> None:
    """Raise :class:`NotAllowed` (the API: 403, code ``not_allowed``) when ``actor`` may not take ``action``.

    An action the case's state does not allow is left to the workflow (InvalidTransition, 409);
    ``top_level`` is routing's ``max_level``, used by :func:`choices` to disable ``request_coordination``
    at the top (the workflow refuses it there with 409).
    """
    reason = why_not(actor, case, action, department=department)
    if reason is not None:
        raise NotAllowed(case.case_id, action, reason)


def choices(actor: Actor, case: Case, *, top_level: str = "city") -> list[Choice]:
    """Every action the case's state allows, each with whether ``actor`` may take it and why not.

    >>> machine = new_case_for_test(center="street:320582110", sources={"camera": 1},
    ...                             pending_action={"action": "false_alarm", "by": "user:li", "at": 0.0})
    >>> [c for c in choices(Actor("li", "dispatcher", "street:320582110"), machine) if c.action == "false_alarm"]
    [Choice(action='false_alarm', allowed=False, reason='you requested this false alarm; a second user must \
confirm it')]
    """
    found: list[Choice] = []
    for action in available_actions(case):
        reason = why_not(actor, case, action)
        if reason is None and action == "request_coordination" and center_level(case.center) == top_level:
            reason = f"{case.center} is the top level: there is no center above to ask"
        if reason is None and action == "false_alarm" and needs_four_eyes(case) and case.pending_action is None:
            found.append(Choice(action, True, "machine-found: a second user confirms the false alarm"))
            continue
        found.append(Choice(action, reason is None, reason or ""))
    return found
