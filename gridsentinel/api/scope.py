"""Scope in the API (issue 16): what a token's holder may see, applied by every route that returns cases or
data derived from them. The rule is :func:`gridsentinel.cases.authority.visible`; an invisible case is
answered like a missing one (404, never 403), so ids do not leak. docs/api.md "Scope" lists each route.

>>> narrow("320582004001", "320582004"), narrow(None, "320582004"), narrow("3205", "320582004")
('320582004001', '320582004', '320582004')
>>> narrow("320582005", "320582004") is None
True
>>> event_visible(Actor("li", "dispatcher", "street:320582004"),
...               CaseEvent("c:1", "c", "open", 0.0, "system", "320582005001001", "event:0103", "open", "alarm",
...                         True, case={"center": "street:320582005"}))
False
"""

from __future__ import annotations

from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.errors import ApiError
from gridsentinel.api.state import ApiState
from gridsentinel.cases.authority import Actor, visible
from gridsentinel.cases.case import Case, CaseNotFound
from gridsentinel.cases.events import CaseEvent


def actor_of(entry: TokenEntry) -> Actor:
    """The token's holder as the case rules see it (center None: the whole city)."""
    return Actor(entry.id, entry.role, entry.center, entry.department)


def sees_everything(actor: Actor) -> bool:
    """A city-wide user of the ladder: no filter is needed (and none is added to its queries)."""
    return actor.center is None and actor.role not in ("citizen", "department")


def narrow(requested: str | None, own: str) -> str | None:
    """The grid-code prefix to read when a user whose scope is ``own`` asks for ``requested``: the longer of
    the two when one contains the other; None when they do not overlap (nothing to show)."""
    if requested is None or requested.startswith(own):
        return requested if requested is not None else own
    if own.startswith(requested):
        return own
    return None


async def visible_case(state: ApiState, entry: TokenEntry, case_id: str) -> Case:
    """The case, when the token's holder may see it; 404 (CaseNotFound) when it is missing or invisible."""
    case = await state.case_store().get_case(case_id)
    if case is None or not visible(actor_of(entry), case):
        raise CaseNotFound(f"no case {case_id}")
    return case


def event_visible(actor: Actor, event: CaseEvent) -> bool:
    """:func:`visible` for a case event (its grid code and the case snapshot it carries)."""
    snapshot = event.case or {}
    if actor.role == "citizen":
        return False
    if actor.role == "department":
        assisting = snapshot.get("assisting_departments") or ()
        ours = actor.department is not None and (
            snapshot.get("department") == actor.department or actor.department in assisting)
        return ours and event.grid_code.startswith(actor.prefix)
    return event.grid_code.startswith(actor.prefix) or (
        actor.center is not None and snapshot.get("center") == actor.center)


def in_device_scope(entry: TokenEntry, grid_code: str | None) -> bool:
    """Whether a device in ``grid_code`` is in the holder's scope (a user of a center: its cells only)."""
    if entry.center is None:
        return True
    prefix = actor_of(entry).prefix
    return grid_code is not None and grid_code.startswith(prefix)


def device_not_found(device_id: str) -> ApiError:
    return ApiError(404, f"no device {device_id}")
