"""The one place errors become responses: `{"error", "message"}` plus the right headers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from keyturn import wire
from keyturn.errors import KeyturnError

logger = logging.getLogger("keyturn.http")

_STATUS_CODES = {
    400: wire.INVALID_REQUEST,
    404: wire.NOT_FOUND,
    405: wire.METHOD_NOT_ALLOWED,
    413: wire.PAYLOAD_TOO_LARGE,
}


def problem(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {**extra, "error": code, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def request_id_of(request: Request) -> str | None:
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return request_id


async def keyturn_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KeyturnError)  # noqa: S101 - registered for KeyturnError only
    if exc.status >= 500 and exc.__cause__ is not None:
        logger.warning("%s: %s", exc.code, exc.__cause__.__class__.__name__)
    return problem(exc.status, exc.code, exc.message, headers=exc.headers(), **exc.extra)


async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    details = exc.errors()
    if any(detail.get("type") == "json_invalid" for detail in details):
        return problem(400, wire.INVALID_REQUEST, "The request body is not valid JSON.")
    reasons = [_describe(detail) for detail in details]
    return problem(
        422,
        wire.INVALID_REQUEST,
        "The request has invalid fields: " + "; ".join(reasons),
        reasons=reasons,
    )


def _describe(detail: Any) -> str:
    location = [str(part) for part in detail.get("loc", ()) if part not in ("body", "query")]
    field = ".".join(location) or "body"
    return f"{field}: {detail.get('msg', 'invalid')}"


async def http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    code = _STATUS_CODES.get(exc.status_code, wire.INVALID_REQUEST)
    message = {
        404: "There is nothing at this path.",
        405: "This method is not allowed here.",
    }.get(exc.status_code, str(exc.detail))
    return problem(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = request_id_of(request)
    logger.error("unhandled error (request %s)", request_id, exc_info=exc)
    return problem(
        500,
        wire.INTERNAL_ERROR,
        f"Something went wrong on our side; quote request id {request_id} when reporting it.",
        request_id=request_id,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KeyturnError, keyturn_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
