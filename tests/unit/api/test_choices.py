"""``choices`` in the case detail (issue 16): per action the case's state allows, whether the CALLER may take
it and why not, so the center page can disable buttons with the reason; the same case offers users of
different centers and roles different choices, and they agree with what the transition route does."""

from __future__ import annotations

import httpx
import pytest

from .conftest import CELL, Harness, assert_error, auth
from .test_scope import member, with_members

pytestmark = pytest.mark.unit


def test_choices_are_the_callers(api: Harness) -> None:
    with_members(api)

    async def scenario(c: httpx.AsyncClient) -> None:
        case_id = (await api.detect("d-choice", grid_code=CELL))[0].case_id

        async def choices(headers: dict[str, str]) -> dict[str, tuple[bool, str]]:
            r = await c.get(f"/api/v1/cases/{case_id}", headers=headers)
            assert r.status_code == 200, r.text
            body = r.json()
            assert [x["action"] for x in body["choices"]] == body["allowed_actions"]  # one per state's action
            return {x["action"]: (x["allowed"], x["reason"]) for x in body["choices"]}

        street = await choices(member("street"))  # the center holding the case (its supervisor)
        assert street["dispatch"] == (True, "") and street["request_coordination"] == (True, "")
        viewer = await choices(auth("viewer"))
        assert not any(allowed for allowed, _ in viewer.values())
        assert viewer["dispatch"][1] == "role viewer may look at cases but not change them"
        below = await choices(member("c1"))  # a community under the street: sees it, may not act on it
        assert below["dispatch"] == (False, "street:320582004 holds the case now; "
                                            "community:320582004001 sees it read-only")
        # the route agrees: what choices disables is refused with the same reason
        r = await c.post(f"/api/v1/cases/{case_id}/transitions", json={"action": "acknowledge"},
                         headers=member("c1"))
        assert assert_error(r, 403)["details"]["reason"] == below["acknowledge"][1]
        # the routed department sees it but may take none of a center's actions; another department: 404
        drain = await choices(member("drain"))
        assert drain["dispatch"] == (False, "department staff may only start, resolve or refuse the cases "
                                            "dispatched to their department")
        assert_error(await c.get(f"/api/v1/cases/{case_id}", headers=member("sanit")), 404)

    api.run(scenario)
