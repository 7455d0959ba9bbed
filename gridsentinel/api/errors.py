"""One JSON error shape for every error the API returns, and the handlers that produce it.

``{"error": {"code": "not_found", "message": "no case c1", "details": null}}``. Domain errors raised
below ``api/`` (case not found, illegal transition, store conflict, unknown category) are mapped here;
``HTTPException`` is raised only inside ``api/``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from gridsentinel.api.schemas.responses import ErrorResponse
from gridsentinel.cases.case import CaseNotFound, InvalidTransition
from gridsentinel.cases.categories import UnknownCategory
from gridsentinel.cases.gridcode import GridCodeError
from gridsentinel.cases.store_protocol import StoreConflict

log = logging.getLogger(__name__)

# Default error codes by status; a route may pass its own code through ApiError.
CODES: dict[int, str] = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "unavailable",
}


class ApiError(StarletteHTTPException):
    """An HTTP error with a machine-readable code and optional details (the one shape)."""

    def __init__(
        self,
        status_code: int,
        message: str,
        *,
        code: str | None = None,
        details: Any = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status_code, message, headers)
        self.code = code or CODES.get(status_code, "error")
        self.details = details


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": jsonable_encoder(details)}}


def error_response(
    status: int, code: str, message: str, details: Any = None, headers: Mapping[str, str] | None = None
) -> JSONResponse:
    return JSONResponse(error_body(code, message, details), status_code=status, headers=headers)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` entries for these error statuses, all with the one error schema."""
    text = {
        400: "Bad request",
        401: "Missing or invalid bearer token",
        403: "Role too low",
        404: "Not found",
        409: "Conflict",
        413: "Request body too large",
        422: "Invalid parameters",
        429: "Too many requests (a rate limit; see Retry-After)",
        503: "Unavailable",
    }
    return {s: {"model": ErrorResponse, "description": text.get(s, "Error")} for s in statuses}


def validation_details(exc: RequestValidationError | ValidationError,
                       prefix: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The ``details`` of a 422 answer: each problem's location (after ``prefix``), message and type.

    (Config files are reported as text by :func:`gridsentinel.core.config.format_validation_error`.)
    """
    out = []
    for err in exc.errors():
        loc = [*prefix, *err.get("loc", ())]
        out.append({"loc": loc, "msg": err.get("msg", ""), "type": err.get("type", "")})
    return out


async def _http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    if isinstance(exc, ApiError):
        return error_response(exc.status_code, exc.code, str(exc.detail), exc.details, exc.headers)
    return error_response(
        exc.status_code, CODES.get(exc.status_code, "error"), str(exc.detail), headers=exc.headers
    )


async def _validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    return error_response(
        422, "validation_error", "request parameters or body are invalid", validation_details(exc)
    )


async def _invalid_transition(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, InvalidTransition)
    return error_response(
        409,
        "invalid_transition",
        str(exc),
        {"case_id": exc.case_id, "status": exc.status, "action": exc.action, "allowed": exc.allowed},
    )


async def _not_found(_: Request, exc: Exception) -> JSONResponse:
    return error_response(404, "not_found", str(exc))


async def _conflict(_: Request, exc: Exception) -> JSONResponse:
    return error_response(409, "conflict", str(exc))


async def _bad_request(_: Request, exc: Exception) -> JSONResponse:
    return error_response(400, "bad_request", str(exc))


async def _internal(_: Request, exc: Exception) -> JSONResponse:
    log.error("unhandled error", exc_info=exc)
    return error_response(500, "internal_error", "internal server error")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(InvalidTransition, _invalid_transition)
    app.add_exception_handler(CaseNotFound, _not_found)
    app.add_exception_handler(StoreConflict, _conflict)
    app.add_exception_handler(UnknownCategory, _bad_request)
    app.add_exception_handler(GridCodeError, _bad_request)
    app.add_exception_handler(Exception, _internal)
