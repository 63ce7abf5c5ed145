"""The one place errors become responses: `{"error", "message"}` plus the right headers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
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

OAUTH_PATH_PREFIX = "/oauth/"
# Machine-facing paths answer JSON whatever the Accept header says: a client library parses
# the body of a 404 there, and an HTML page would only confuse it.
JSON_ONLY_PREFIXES = ("/api/", OAUTH_PATH_PREFIX, "/.well-known/")
# RFC 6749 §5.2: how a refusal on /oauth/* reads, by Keyturn code -> (OAuth error, status).
# The one table; a code missing here reads invalid_request (4xx) or server_error (5xx).
OAUTH_ERRORS: dict[str, tuple[str, int]] = {
    wire.INVALID_REQUEST: (wire.INVALID_REQUEST, 400),
    wire.PAYLOAD_TOO_LARGE: (wire.INVALID_REQUEST, 413),
    wire.INVALID_CREDENTIALS: (wire.INVALID_GRANT, 400),
    wire.ACCOUNT_DISABLED: (wire.INVALID_GRANT, 400),
    wire.EMAIL_NOT_VERIFIED: (wire.INVALID_GRANT, 400),
    wire.INVALID_REFRESH_TOKEN: (wire.INVALID_GRANT, 400),
    wire.REFRESH_TOKEN_EXPIRED: (wire.INVALID_GRANT, 400),
    wire.REFRESH_TOKEN_REUSED: (wire.INVALID_GRANT, 400),
    wire.INVALID_GRANT: (wire.INVALID_GRANT, 400),
    wire.UNSUPPORTED_GRANT_TYPE: (wire.UNSUPPORTED_GRANT_TYPE, 400),
    wire.INVALID_SCOPE: (wire.INVALID_SCOPE, 400),
    wire.INVALID_CLIENT: (wire.INVALID_CLIENT, 401),
    # Extensions (§8.5): the second step of a login happens at /api/auth/mfa/verify.
    wire.MFA_REQUIRED: (wire.MFA_REQUIRED, 401),
    # Not a §5.2 code (§8.5 allows extensions): the lockout keeps its 429 and Retry-After.
    wire.TOO_MANY_REQUESTS: (wire.TOO_MANY_REQUESTS, 429),
    wire.SERVICE_UNAVAILABLE: (wire.TEMPORARILY_UNAVAILABLE, 503),
    wire.OVERLOADED: (wire.TEMPORARILY_UNAVAILABLE, 503),
    wire.INTERNAL_ERROR: (wire.SERVER_ERROR, 500),
}


def problem(
    status: int, code: str, message: str, *, headers: dict[str, str] | None = None, **extra: Any
) -> JSONResponse:
    body = {**extra, "error": code, "message": message}
    return JSONResponse(body, status_code=status, headers=headers)


def request_id_of(request: Request) -> str | None:
    request_id: str | None = request.scope.get("state", {}).get("request_id")
    return request_id


def is_oauth_request(request: Request) -> bool:
    # The scope's path, not request.url: building the URL costs more than the rest of a
    # refusal, and every expired token is refused here.
    path: str = request.scope["path"]
    return path.startswith(OAUTH_PATH_PREFIX)


def oauth_problem(exc: KeyturnError) -> JSONResponse:
    """An RFC 6749 §5.2 error body: `error`, `error_description`, and our `message`."""
    default = (wire.SERVER_ERROR, 500) if exc.status >= 500 else (wire.INVALID_REQUEST, 400)
    code, status = OAUTH_ERRORS.get(exc.code, default)
    body = {"error": code, "error_description": exc.message, "message": exc.message}
    if exc.code == wire.MFA_REQUIRED:
        body = {**exc.extra, **body}  # the mfa_token and methods
    headers = {**exc.headers(), "Cache-Control": "no-store", "Pragma": "no-cache"}
    return JSONResponse(body, status_code=status, headers=headers)


async def keyturn_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, KeyturnError)  # noqa: S101 - registered for KeyturnError only
    if exc.status >= 500 and exc.__cause__ is not None:
        logger.warning("%s: %s", exc.code, exc.__cause__.__class__.__name__)
    if is_oauth_request(request):
        return oauth_problem(exc)
    return problem(exc.status, exc.code, exc.message, headers=exc.headers(), **exc.extra)


NOT_JSON_MESSAGE = "Send the body as JSON (Content-Type: application/json)."
# What the framework says when a JSON route's body was not read as JSON at all.
_NOT_AN_OBJECT = frozenset({"model_attributes_type", "dict_type", "model_type"})


def is_json_media_type(content_type: str) -> bool:
    media_type = content_type.partition(";")[0].strip().lower()
    return media_type == "application/json" or (
        media_type.startswith("application/") and media_type.endswith("+json")
    )


async def validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)  # noqa: S101
    details = exc.errors()
    if any(detail.get("type") == "json_invalid" for detail in details):
        return problem(400, wire.INVALID_REQUEST, "The request body is not valid JSON.")
    if not is_json_media_type(request.headers.get("content-type", "")) and any(
        detail.get("type") in _NOT_AN_OBJECT and tuple(detail.get("loc", ())) == ("body",)
        for detail in details
    ):
        # `curl -d` sends form encoding: name the header rather than the body's shape.
        return problem(400, wire.INVALID_REQUEST, NOT_JSON_MESSAGE)
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
    if detail.get("type") == "extra_forbidden":
        return f"{field}: not a field of this request"
    return f"{field}: {detail.get('msg', 'invalid')}"


def wants_html_page(request: Request) -> bool:
    """Whether a browser navigated here: a page path, and an Accept header that names
    text/html (or text/*) with a non-zero quality (RFC 9110 §12.5.1)."""
    path: str = request.scope["path"]
    if path.startswith(JSON_ONLY_PREFIXES) or f"{path}/" in JSON_ONLY_PREFIXES:
        return False
    for media_range in request.headers.get("accept", "").lower().split(","):
        media_type, *parameters = (part.strip() for part in media_range.split(";"))
        if media_type not in ("text/html", "text/*"):
            continue
        quality = next((p[2:].strip() for p in parameters if p.startswith("q=")), "1")
        try:
            if float(quality) > 0:
                return True
        except ValueError:
            continue
    return False


async def http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, StarletteHTTPException)  # noqa: S101
    if exc.status_code == 404 and wants_html_page(request):
        # Imported here: the pages import this module (through http.deps), not the other way.
        from keyturn.http.routes.pages import not_found_page

        return not_found_page(request)
    code = _STATUS_CODES.get(exc.status_code, wire.INVALID_REQUEST)
    message = {
        404: "There is nothing at this path.",
        405: "This method is not allowed here.",
    }.get(exc.status_code, str(exc.detail))
    return problem(exc.status_code, code, message, headers=getattr(exc, "headers", None))


async def unexpected_error(request: Request, exc: Exception) -> JSONResponse:
    request_id = request_id_of(request)
    logger.error("unhandled error (request %s)", request_id, exc_info=exc)
    # The framework's outermost layer answers this one, outside the envelope that adds the
    # request id header to every other response.
    headers = {wire.HEADER_REQUEST_ID: request_id} if request_id else None
    return problem(
        500,
        wire.INTERNAL_ERROR,
        f"Something went wrong on our side; quote request id {request_id} when reporting it.",
        headers=headers,
        request_id=request_id,
    )


def install_problem_handlers(app: FastAPI) -> None:
    app.add_exception_handler(KeyturnError, keyturn_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(Exception, unexpected_error)
