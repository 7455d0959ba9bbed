"""The dispatch dashboard: its pages (``/dashboard``, ``/dashboard/center``: a center's queues and cases,
``/dashboard/quality``: citizen reports' verification queue and quality per account) with
their static files, and ``/dashboard/me``.

The page is public (it holds no data); it asks for an API token, keeps it in the tab's sessionStorage
and calls the API with it, so every datum is subject to the token's role. No CDN, no map tiles.
"""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path
from fastapi.responses import FileResponse, RedirectResponse

from gridsentinel.api.auth import TokenEntry
from gridsentinel.api.deps import StateDep, require
from gridsentinel.api.errors import ApiError, responses

router = APIRouter(tags=["dashboard"])
STATIC = FsPath(__file__).resolve().parent.parent / "static"
_TYPES = {".html": "text/html; charset=utf-8", ".js": "text/javascript; charset=utf-8",
          ".css": "text/css; charset=utf-8", ".svg": "image/svg+xml"}


@router.get("/", include_in_schema=False)
async def root() -> RedirectResponse:
    return RedirectResponse("/dashboard", status_code=307)


@router.get("/dashboard", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "dashboard.html", media_type=_TYPES[".html"],
                        headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/center", include_in_schema=False)
async def center_page() -> FileResponse:
    """The center page: the signed-in user's center, its queues and its escalated-out cases."""
    return FileResponse(STATIC / "center.html", media_type=_TYPES[".html"],
                        headers={"Cache-Control": "no-cache"})


# The pages' "who am I" (names and time zone only, no case data): inspectors too (the report-quality page).
PageUser = Annotated[TokenEntry, Depends(require("viewer", department=True, inspector=True))]


@router.get("/dashboard/quality", include_in_schema=False)
async def quality_page() -> FileResponse:
    """Citizen reports: the verification queue and report quality per account (pseudonymised by role)."""
    return FileResponse(STATIC / "quality.html", media_type=_TYPES[".html"],
                        headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/static/{name}", include_in_schema=False)
async def static(name: Annotated[str, Path(pattern=r"^[a-z0-9_-]{1,40}\.(js|css|svg)$")]) -> FileResponse:
    path = STATIC / name
    if not path.is_file():
        raise ApiError(404, f"no static file {name}")
    return FileResponse(path, media_type=_TYPES[path.suffix], headers={"Cache-Control": "no-cache"})


@router.get("/dashboard/me", summary="Who the token belongs to, its role, center and department, and the names "
            "and time zone the dashboard shows; /api/v1/me has the center's details",
            responses=responses(401, 403))
async def me(state: StateDep, token: PageUser) -> dict[str, Any]:
    catalog = state.catalog
    departments = catalog.routing.departments
    specs = catalog.categories_file.categories
    return {"id": token.id, "role": token.role, "center": token.center, "department": token.department,
            "departments": {k: d.name for k, d in departments.items()},
            "departments_zh": {k: d.name_zh or d.name for k, d in departments.items()},
            "categories": {c.key: c.name for c in specs},
            "categories_zh": {c.key: c.name_zh for c in specs},
            # the dashboard shows every time in the city's zone, whatever the browser's
            "timezone": catalog.calendar.timezone}
