"""``/api/v1/incidents`` (issue 17): one flood across two communities seen by the whole city, and by each
community's dispatcher as far as its own cases go; dispatched once to the lead department and closed together
through each case's workflow and authority checks, with audit entries on the incident and on every case."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gridsentinel.cases.dedup import apply_detection
from gridsentinel.cases.workflow import transition_case

from .conftest import MONDAY_10H, Harness, assert_error, auth, detection
from .test_scope import member, with_members

pytestmark = pytest.mark.unit
DRAIN_CELL = "320582004001003"  # community 001
PONDING_CELL = "320582004002001"  # community 002, next to DRAIN_CELL
CITIZEN_CELL = "320582004001002"  # community 001


async def flood(api: Harness) -> dict[str, str]:
    """A drain sensor, a camera and a citizen about one flood; returns category -> case id."""
    made = [
        detection("drain-1", grid_code=DRAIN_CELL),
        detection("cam-1", source="camera", device_id="cam-7", detector="waterlogging", kind="waterlogging",
                  category_code="L001", category_standard="", grid_code=PONDING_CELL, observed_at=MONDAY_10H + 120),
        detection("cit-1", source="citizen", device_id=None, detector="open311", kind="citizen_report",
                  category_code="event:L001", category_standard="", grid_code=CITIZEN_CELL,
                  observed_at=MONDAY_10H + 300, evidence={"account_id": "acct-9"}),
        detection("garbage-1", source="camera", device_id="cam-7", detector="static_object", kind="static_object",
                  category_code="", category_standard="", grid_code=DRAIN_CELL),
    ]
    cases: dict[str, str] = {}
    state = api.state
    for d in made:
        events = await apply_detection(d, state.case_store(), state.catalog, state.grid.neighbours(), now=api.now,
                                       families=state.families)
        cases[d.detection_id] = events[0].case_id
    return cases


async def get(c: httpx.AsyncClient, path: str, headers: dict[str, str], **params: Any) -> Any:
    r = await c.get(path, params=params, headers=headers)
    assert r.status_code == 200, r.text
    return r.json()


def test_one_flood_is_one_incident_and_each_center_sees_its_own_part(api: Harness) -> None:
    with_members(api)

    async def scenario(c: httpx.AsyncClient) -> None:
        cases = await flood(api)
        [listed] = (await get(c, "/api/v1/incidents", auth("viewer")))["items"]
        assert listed["family"] == "flooding" and listed["family_name_zh"] == "城市内涝"
        assert listed["case_count"] == 3 and listed["sources"] == {"camera": 1, "citizen": 1, "sensor": 1}
        assert listed["categories"] == ["component:0103", "event:L001"] and listed["status"] == "open"
        assert listed["lead_department"] == "drainage"
        incident_id = listed["incident_id"]

        detail = await get(c, f"/api/v1/incidents/{incident_id}", auth("viewer"))
        assert {x["case_id"] for x in detail["cases"]} == {cases["drain-1"], cases["cam-1"], cases["cit-1"]}
        by_source = {s["source"]: s for s in detail["sources"]}
        assert set(by_source) == {"sensor", "camera", "citizen"}
        assert by_source["camera"]["devices"] == ["cam-7"] and by_source["citizen"]["devices"] == []
        [citizen] = [d for d in detail["detections"] if d["source"] == "citizen"]
        assert citizen["evidence"]["account_id"].startswith("p-")  # a viewer sees a pseudonym
        assert detail["log"][0]["action"] == "open"
        dispatcher_view = await get(c, f"/api/v1/incidents/{incident_id}", auth("dispatcher"))
        assert [d for d in dispatcher_view["detections"] if d["source"] == "citizen"][0]["evidence"][
            "account_id"] == "acct-9"

        # the case shows its incident; the garbage case next to the drain has none
        assert (await get(c, f"/api/v1/cases/{cases['drain-1']}", auth("viewer")))["incident_id"] == incident_id
        assert (await get(c, f"/api/v1/cases/{cases['garbage-1']}", auth("viewer")))["incident_id"] is None

        # community 002 sees the incident with its one case, and no id of community 001's cases
        own = await get(c, f"/api/v1/incidents/{incident_id}", member("c2"))
        assert [x["case_id"] for x in own["cases"]] == [cases["cam-1"]]
        assert own["incident"]["case_count"] == 1 and own["incident"]["sources"] == {"camera": 1}
        assert cases["drain-1"] not in str(own) and cases["cit-1"] not in str(own)
        c1 = (await get(c, "/api/v1/incidents", member("c1")))["items"]
        assert [i["case_count"] for i in c1] == [2]
        # a department sees an incident through the cases it sees (as in /api/v1/cases); sanitation none
        theirs = {x["case_id"] for x in (await get(c, "/api/v1/cases", member("drain")))["items"]}
        shown = await get(c, f"/api/v1/incidents/{incident_id}", member("drain"))
        assert {x["case_id"] for x in shown["cases"]} == theirs - {cases["garbage-1"]}
        assert (await get(c, "/api/v1/incidents", member("sanit")))["items"] == []
        assert_error(await c.get(f"/api/v1/incidents/{incident_id}", headers=member("sanit")), 404)
        assert_error(await c.get("/api/v1/incidents/no-such-incident", headers=auth("viewer")), 404)

    api.run(scenario)


def test_dispatch_once_and_close_together_through_each_cases_workflow(api: Harness) -> None:
    with_members(api)

    async def scenario(c: httpx.AsyncClient) -> None:
        cases = await flood(api)
        [listed] = (await get(c, "/api/v1/incidents", auth("viewer")))["items"]
        incident_id = listed["incident_id"]
        assert_error(await c.post(f"/api/v1/incidents/{incident_id}/dispatch", json={}, headers=auth("viewer")), 403)

        # community 002's dispatcher sees its case read-only (the street center holds it): 403 with the reason
        r = await c.post(f"/api/v1/incidents/{incident_id}/dispatch", json={"note": "pump truck"},
                         headers=member("c2"))
        refused = assert_error(r, 403, "not_allowed")
        assert [x["case_id"] for x in refused["details"]["results"]] == [cases["cam-1"]]
        assert "read-only" in refused["details"]["results"][0]["reason"]
        # the street's supervisor dispatches the camera's case on its own, to the road crew
        r = await c.post(f"/api/v1/cases/{cases['cam-1']}/transitions",
                         json={"action": "dispatch", "department": "drainage"}, headers=member("street"))
        assert r.status_code == 200, r.text

        # the city's dispatcher dispatches the rest once, to the family's lead department
        api.now += 60
        r = await c.post(f"/api/v1/incidents/{incident_id}/dispatch", json={"note": "crew 3"},
                         headers=auth("dispatcher"))
        assert r.status_code == 200, r.text
        results = {x["case_id"]: x for x in r.json()["results"]}
        assert results[cases["cam-1"]]["outcome"] == "skipped" and "dispatched" in results[cases["cam-1"]]["reason"]
        assert {results[cases[k]]["outcome"] for k in ("drain-1", "cit-1")} == {"done"}
        store = api.state.case_store()
        for key in ("drain-1", "cam-1", "cit-1"):
            case = await store.get_case(cases[key])
            assert case is not None and case.status == "dispatched" and case.department == "drainage"
            assert case.category_key in ("component:0103", "event:L001") and case.due_at is not None
            entry = [e for e in await store.case_log(case.case_id) if e.action == "dispatch"][-1]
            assert entry.note.startswith(f"incident {incident_id}: crew 3") == (key != "cam-1")
        drain, cit = await store.get_case(cases["drain-1"]), await store.get_case(cases["cit-1"])
        assert drain and cit and drain.due_at != cit.due_at  # each keeps its own category's limit
        again = await c.post(f"/api/v1/incidents/{incident_id}/dispatch", json={}, headers=auth("dispatcher"))
        assert_error(again, 409, "invalid_transition")

        # close: only verified cases close; once all are verified, all close together
        for key in ("drain-1", "cam-1"):
            for action in ("resolve", "verify"):
                await transition_case(store, api.state.catalog, cases[key], action, actor="user:test", now=api.now)
        r = await c.post(f"/api/v1/incidents/{incident_id}/close", json={"note": "water gone"},
                         headers=auth("dispatcher"))
        assert r.status_code == 200, r.text
        outcome = {x["case_id"]: x["outcome"] for x in r.json()["results"]}
        assert outcome == {cases["drain-1"]: "done", cases["cam-1"]: "done", cases["cit-1"]: "skipped"}
        for action in ("resolve", "verify"):
            await transition_case(store, api.state.catalog, cases["cit-1"], action, actor="user:test", now=api.now)
        r = await c.post(f"/api/v1/incidents/{incident_id}/close", json={}, headers=auth("dispatcher"))
        assert r.status_code == 200 and [x["outcome"] for x in r.json()["results"]].count("done") == 1
        assert (await get(c, "/api/v1/incidents", auth("viewer"), status="open"))["items"] == []
        [closed] = (await get(c, "/api/v1/incidents", auth("viewer"), status="closed"))["items"]
        assert closed["incident_id"] == incident_id and closed["departments"] == ["drainage"]

        log = (await get(c, f"/api/v1/incidents/{incident_id}", auth("viewer")))["log"]
        actions = [(e["action"], e["actor"]) for e in log]
        assert actions[0] == ("open", "system:incidents")
        assert [a for a in actions if a[0] in ("dispatch", "close")] == [
            ("dispatch", "user:t-dispatcher"), ("close", "user:t-dispatcher"),
            ("close", "user:t-dispatcher")]
        # what community 002 sees of the log: its case only
        c2_log = (await get(c, f"/api/v1/incidents/{incident_id}", member("c2")))["log"]
        assert cases["drain-1"] not in str(c2_log)

    api.run(scenario)
