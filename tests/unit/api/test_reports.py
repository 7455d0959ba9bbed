"""GET /api/v1/reports/weekly and the dashboard's report page, on the harness's real SQLite store."""

from __future__ import annotations

import httpx
import pytest

from gridsentinel.cases.case import CaseChange, LogEntry, new_case_for_test

from .conftest import CELL, MONDAY_10H, Harness, assert_error, auth

pytestmark = pytest.mark.unit
H = 3600.0


async def _seed(api: Harness) -> None:
    opened = MONDAY_10H - 2 * H
    case = new_case_for_test(case_id="esc-1", grid_code=CELL, status="dispatched", opened_at=opened,
                             updated_at=opened + H, first_seen_at=opened, last_seen_at=opened,
                             sources={"citizen": 1}, department="water_affairs", center="community:320582004001",
                             escalation_level=1, log_count=3)
    log = (LogEntry("esc-1", 1, opened, "system:dedup", "open", None, "open"),
           LogEntry("esc-1", 2, opened + 0.5 * H, "user:li", "dispatch", "open", "dispatched",
                    data={"department": "water_affairs", "due_at": opened + 0.75 * H}),
           LogEntry("esc-1", 3, opened + H, "system:escalation", "escalate", "dispatched", "dispatched",
                    data={"from_center": "community:320582004001", "center": "street:320582004", "level": 1,
                          "overdue_since": opened + 0.75 * H}))
    async with api.state.case_store().transaction() as tx:
        await tx.save(CaseChange(case, log, created=True), None)


def test_weekly_report_route(api: Harness) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        await _seed(api)
        r = await client.get("/api/v1/reports/weekly", params={"week": "2025-W24", "forecast": "false"},
                             headers=auth("viewer"))
        assert r.status_code == 200, r.text
        assert r.headers["content-type"].startswith("text/html")
        html = r.text
        assert "Weekly coordination report 2025-W24" in html and "week in progress" in html
        assert "esc-1" in html and "street:320582004" in html      # the escalation, and the case stuck with it
        assert 'id="selective-reporting"' in html and 'id="performance"' in html
        # Without a week: the current one (the harness's clock is in 2025-W24).
        r = await client.get("/api/v1/reports/weekly", params={"forecast": "false"}, headers=auth("viewer"))
        assert r.status_code == 200 and "2025-W24" in r.text
        # Only cells under a prefix: the case's community is in, another district is not.
        r = await client.get("/api/v1/reports/weekly", params={"center": "110101", "forecast": "false"},
                             headers=auth("viewer"))
        assert r.status_code == 200 and "esc-1" not in r.text

    api.run(scenario)


def test_weekly_report_errors(api: Harness) -> None:
    async def scenario(client: httpx.AsyncClient) -> None:
        assert_error(await client.get("/api/v1/reports/weekly"), 401)
        err = assert_error(await client.get("/api/v1/reports/weekly", params={"week": "2030-W01"},
                                            headers=auth("viewer")), 422)
        assert "has not started" in err["message"]
        for week in ("2025-24", "0001-W01", "2025-W54"):  # malformed, before Unix time, no such week
            assert_error(await client.get("/api/v1/reports/weekly", params={"week": week},
                                          headers=auth("viewer")), 422)
        page = await client.get("/dashboard/report")
        assert page.status_code == 200 and 'id="reportFrame"' in page.text
        assert 'href="/dashboard/report"' in (await client.get("/dashboard")).text

    api.run(scenario)
