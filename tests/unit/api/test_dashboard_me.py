"""/dashboard/me: what the dashboard needs to show a case in either language and in the city's time zone."""

from __future__ import annotations

import httpx
import pytest

from .conftest import Harness, auth

pytestmark = pytest.mark.unit


def test_me_names_categories_and_departments_in_both_languages_and_the_city_zone(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        me = (await c.get("/dashboard/me", headers=auth("viewer"))).json()
        assert (me["id"], me["role"], me["timezone"]) == ("t-viewer", "viewer", "Asia/Shanghai")
        assert set(me["categories_zh"]) == set(me["categories"]) == set(api.state.catalog.policies)
        assert me["categories"]["component:0103"] == "storm-water manhole cover"
        assert me["categories_zh"]["component:0103"] == "雨水井盖"
        assert me["categories_zh"]["event:0103"] == "积存垃圾渣土"  # component and event codes overlap
        assert set(me["departments_zh"]) == set(me["departments"])
        assert me["departments_zh"]["drainage"] == "排水管理处（水务）"
        services = (await c.get("/open311/v2/services.json", headers=auth("viewer"))).json()
        cover = next(s for s in services if s["service_code"] == "component:0103")
        assert cover["service_name"] == "storm-water manhole cover" and cover["keywords"].endswith(",雨水井盖")

    api.run(scenario)


def test_the_dictionaries_are_served_with_the_pages(api: Harness) -> None:
    async def scenario(c: httpx.AsyncClient) -> None:
        js = await c.get("/dashboard/static/i18n.js")
        assert js.status_code == 200 and js.headers["content-type"].startswith("text/javascript")
        assert "雨水" not in js.text and '"zh-CN"' in js.text  # words of the UI only: names come from the API
        for page in ("/dashboard", "/dashboard/patrol", "/dashboard/report"):
            html = (await c.get(page)).text
            assert '<html lang="zh-CN">' in html and "/dashboard/static/i18n.js" in html, page

    api.run(scenario)
