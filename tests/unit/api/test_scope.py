"""Scope through the API (issue 16): a user of a center sees its center's cases and nothing else (404, not
403), queues per center, /api/v1/me and /api/v1/centers, the SSE stream filtered per connection, and a
department user's cases."""

from __future__ import annotations

import httpx
import pytest

from gridsentinel.api.auth import TokenEntry, TokenStore, hash_token
from gridsentinel.cases.case import log
from gridsentinel.cases.store_protocol import CaseQuery

from .conftest import CELL, TOKENS, Harness, assert_error, auth
from .test_stream import parse_sse, stream_while

pytestmark = pytest.mark.unit
OTHER_CELL = "320582004002001"  # community 002; CELL is in community 001
MEMBERS = {  # name -> (role, center, department)
    "c1": ("dispatcher", "community:320582004001", None),
    "c2": ("dispatcher", "community:320582004002", None),
    "street": ("supervisor", "street:320582004", None),
    "district": ("dispatcher", "district:320582", None),
    "drain": ("department", None, "drainage"),
    "sanit": ("department", None, "sanitation"),
}


def member(name: str) -> dict[str, str]:
    return {"Authorization": f"Bearer member-{name}"}


def with_members(api: Harness) -> Harness:
    entries = [TokenEntry(id=f"t-{role}", role=role, hash=hash_token(plain))  # type: ignore[arg-type]
               for role, plain in TOKENS.items()]
    entries += [TokenEntry(id=name, role=role, hash=hash_token(f"member-{name}"), center=center,  # type: ignore[arg-type]
                           department=department) for name, (role, center, department) in MEMBERS.items()]
    api.state.tokens = TokenStore(entries)
    return api


async def two_cases(api: Harness) -> tuple[str, str]:
    mine = (await api.detect("d-mine", grid_code=CELL))[0].case_id
    other = (await api.detect("d-other", grid_code=OTHER_CELL, lat=31.8722, lon=120.5537))[0].case_id
    return mine, other


async def ids(c: httpx.AsyncClient, headers: dict[str, str], **params: object) -> set[str]:
    r = await c.get("/api/v1/cases", params=params, headers=headers)  # type: ignore[arg-type]
    assert r.status_code == 200, r.text
    return {i["case_id"] for i in r.json()["items"]}


def test_a_center_sees_its_cases_and_nothing_else(api: Harness) -> None:
    with_members(api)

    async def scenario(c: httpx.AsyncClient) -> None:
        mine, other = await two_cases(api)
        assert await ids(c, member("c1")) == {mine}
        assert await ids(c, member("c2")) == {other}
        assert await ids(c, member("street")) == await ids(c, auth("viewer")) == {mine, other}
        assert await ids(c, member("c1"), grid_prefix="320582004002") == set()  # asking does not widen it
        assert (await c.get(f"/api/v1/cases/{mine}", headers=member("c1"))).status_code == 200
        # another center's case is answered like a missing one: same status, same shape, no hint
        hidden = assert_error(await c.get(f"/api/v1/cases/{other}", headers=member("c1")), 404)
        missing = assert_error(await c.get("/api/v1/cases/no-such-case", headers=member("c1")), 404)
        assert hidden["code"] == missing["code"]
        r = await c.post(f"/api/v1/cases/{other}/transitions", json={"action": "acknowledge"},
                         headers=member("c1"))
        assert_error(r, 404)
        # Open311: the staff user of a center reads its requests; a citizen keeps the public view
        api.now += 60
        reqs = (await c.get("/open311/v2/requests.json", headers=member("c1"))).json()
        assert [r["service_request_id"] for r in reqs] == [mine]
        assert_error(await c.get(f"/open311/v2/requests/{other}.json", headers=member("c1")), 404)
        public = (await c.get("/open311/v2/requests.json", headers=auth("citizen"))).json()
        assert {r["service_request_id"] for r in public} == {mine, other}
        # the grid map shows the center's cells only
        cells = (await c.get("/api/v1/grid", headers=member("c1"))).json()["features"]
        assert cells and all(f["properties"]["code"].startswith("320582004001") for f in cells)
        # city-wide figures are refused to a center's user
        assert_error(await c.get("/metrics", headers=member("c1")), 403)

    api.run(scenario)


def test_queues_follow_escalation_and_me_and_centers_say_where_you_are(api: Harness) -> None:
    with_members(api)

    async def scenario(c: httpx.AsyncClient) -> None:
        mine, other = await two_cases(api)
        store = api.state.case_store()
        async with store.transaction() as tx:  # the overdue case of community 002 went up to the district
            case = await tx.get_case(other)
            assert case is not None
            await tx.save(log(case, at=api.now - 10, actor="system:escalation", action="escalate",
                              data={"from_center": case.center, "to_center": "district:320582"},
                              center="district:320582", escalation_level=1, due_at=api.now - 1), case.version)
        from_center = case.center
        assert await ids(c, member("street"), queue="new") == {mine}
        assert await ids(c, member("street"), queue="escalated_out") == {other}
        assert await ids(c, member("district"), queue="escalated_in") == {other}
        assert await ids(c, member("district"), queue="overdue") == {other}
        assert await ids(c, auth("viewer"), queue="escalated_in", center="district:320582") == {other}
        assert await ids(c, auth("viewer"), queue="new") == set()  # the city's own queue
        assert await ids(c, member("c2"), queue="escalated_out") == {other}  # the lower center keeps seeing it
        assert_error(await c.get("/api/v1/cases", params={"queue": "new", "center": "street:320582004"},
                                 headers=member("c1")), 404)  # a center above yours: not yours to list
        assert_error(await c.get("/api/v1/cases", params={"center": "street:320582004"}, headers=auth("viewer")),
                     422)

        me = (await c.get("/api/v1/me", headers=member("c1"))).json()
        assert me["center"] == {"id": "community:320582004001", "level": "community", "prefix": "320582004001",
                                "parent": "street:320582004", "name": "community 320582004001"}
        assert me["ladder"] == ["viewer", "dispatcher", "supervisor", "engineer", "admin"]
        assert (await c.get("/api/v1/me", headers=auth("viewer"))).json()["center"] is None
        centers = {x["id"]: x for x in (await c.get("/api/v1/centers", headers=member("c2"))).json()["items"]}
        assert set(centers) == {"city:3205", "district:320582", "street:320582004", "community:320582004002"}
        assert centers["community:320582004002"]["relation"] == "own"
        assert centers["community:320582004002"]["queues"]["escalated_out"] == 1
        assert centers["district:320582"]["queues"] is None  # above: its queues hold other centers' cases
        city = {x["id"]: x for x in (await c.get("/api/v1/centers", headers=auth("viewer"))).json()["items"]}
        assert city["district:320582"]["queues"] == {"new": 0, "escalated_in": 1, "refused": 0, "overdue": 1,
                                                     "escalated_out": 0}
        assert city["street:320582004"]["queues"]["new"] == 1
        # the hand-over is counted at both ends (GET /api/v1/centers?days=...)
        assert city["district:320582"]["handovers"]["escalated_in"] == 1
        assert city[from_center]["handovers"]["escalated_out"] == 1
        assert centers["district:320582"]["handovers"] is None  # above the user's center
        old = {x["id"]: x for x in (await c.get("/api/v1/centers", params={"days": 0.00001},
                                                 headers=auth("viewer"))).json()["items"]}
        assert old["district:320582"]["handovers"]["escalated_in"] == 0  # before the period
        # the counts are the queues' lists
        for center, info in city.items():
            for queue, n in info["queues"].items():
                listed = await store.list_cases(CaseQuery(queue=queue, queue_center=center,
                                                          now=api.now))
                assert len(listed) == n, (center, queue)

    api.run(scenario)


def test_a_department_user_sees_its_department_s_cases(api: Harness) -> None:
    with_members(api)

    async def scenario(c: httpx.AsyncClient) -> None:
        mine, other = await two_cases(api)
        assert await ids(c, member("drain")) == {mine, other}  # routing gives drains to drainage
        assert await ids(c, member("sanit")) == set()
        r = await c.post(f"/api/v1/cases/{mine}/transitions", json={"action": "dispatch", "department": "sanitation"},
                         headers=auth("dispatcher"))
        assert r.status_code == 200, r.text
        assert await ids(c, member("drain")) == {other}
        assert await ids(c, member("sanit")) == {mine}
        assert_error(await c.get(f"/api/v1/cases/{mine}", headers=member("drain")), 404)
        assert (await c.get(f"/api/v1/cases/{mine}", headers=member("sanit"))).status_code == 200
        assert_error(await c.get("/api/v1/grid", headers=member("drain")), 403)  # not a ladder role's view
        assert (await c.get("/api/v1/me", headers=member("drain"))).json()["department"] == "drainage"

    api.run(scenario)


def test_the_stream_carries_only_the_events_of_cases_in_scope(api: Harness) -> None:
    with_members(api)

    async def scenario(c: httpx.AsyncClient) -> None:
        here = await api.detect("d-mine", grid_code=CELL)
        there = await api.detect("d-other", grid_code=OTHER_CELL, lat=31.8722, lon=120.5537)
        # the other community's events come first: a leak would be the first frame
        r = await stream_while(c, api, {"limit": 1}, [*there, *here], headers=member("c1"))
        [message] = parse_sse(r.text)
        assert message["id"] == here[0].event_id
        # replayed from the hub's history (Last-Event-ID unknown: everything kept), filtered the same way
        r = await c.get("/api/v1/cases/stream", params={"limit": 1},
                        headers={**member("c2"), "Last-Event-ID": "unknown"})
        assert [m["id"] for m in parse_sse(r.text)] == [there[0].event_id]

    api.run(scenario)
