"""FastAPI dependencies: the services, the request's context, the caller's access claims."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any, TypeVar

from fastapi import Depends, Query, Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from keyturn import errors, wire
from keyturn.core.context import RequestContext
from keyturn.core.tokens import AccessClaims
from keyturn.http import cookies
from keyturn.http.client_ip import client_ip
from keyturn.http.locales import page_locale
from keyturn.http.middleware import BODY_SCOPE_KEY
from keyturn.http.problems import NOT_JSON_MESSAGE, is_json_media_type
from keyturn.http.schemas import Problem
from keyturn.services.container import Services

ModelT = TypeVar("ModelT", bound=BaseModel)

BEARER_SECURITY: dict[str, Any] = {"security": [{"bearer": []}, {"oauth2": []}]}
# The refusals every admin route can answer, for OpenAPI.
ADMIN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, expired or invalid access token"},
    403: {"model": Problem, "description": "insufficient_role"},
}
# Paging of the admin lists.
PageLimit = Annotated[int, Query(ge=1, le=200)]
PageOffset = Annotated[int, Query(ge=0, le=10_000_000)]
# RFC 9110 §9.2.1: these must not change state, so they need no CSRF token.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def context_of(request: Request) -> RequestContext:
    """The caller's address (behind trusted proxies too) and user agent."""
    scope = request.scope
    peer = scope["client"][0] if scope.get("client") else None
    user_agent = None
    forwarded: list[str] = []
    # One pass over the raw headers: the refresh route asks for this on every call.
    for name, value in scope["headers"]:
        if name == b"user-agent" and user_agent is None:
            user_agent = value.decode("latin-1")
        elif name == b"x-forwarded-for":
            # Every line, in order (RFC 9110 §5.3): a proxy may append its own line after
            # the client's, and reading the first alone would believe what the client wrote.
            forwarded.append(value.decode("latin-1"))
    forwarded_for = ", ".join(forwarded) if forwarded else None
    ip = client_ip(peer, forwarded_for, request.app.state.trusted_networks)
    return RequestContext(ip=ip, user_agent=user_agent)


async def optional_json_body(request: Request, model: type[ModelT]) -> ModelT | None:
    """The request's JSON body as `model`, or None when there is no body.

    What FastAPI does for a `Body()` parameter, for the routes that every client calls every
    few minutes: there it costs a content-type parse through the email package and a second
    validation pass. Errors read the same (400 for JSON that does not parse, 422 for fields).
    """
    raw = request.scope.get(BODY_SCOPE_KEY)
    if raw is None:
        raw = await request.body()
    if not raw:
        return None
    if not is_json_media_type(request.headers.get("content-type", "")):
        raise errors.InvalidRequestError(NOT_JSON_MESSAGE)
    try:
        return model.model_validate_json(raw)
    except ValidationError as error:
        details = [
            {**detail, "loc": ("body", *detail["loc"])}
            for detail in error.errors(include_url=False, include_context=False)
        ]
        raise RequestValidationError(details) from error


def json_body_schema(model: type[BaseModel]) -> dict[str, Any]:
    """`openapi_extra` documenting a body that `optional_json_body` reads."""
    return {
        "requestBody": {
            "required": False,
            "content": {"application/json": {"schema": model.model_json_schema()}},
        }
    }


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header; None when there is no such header."""
    # The raw header list rather than `request.headers`, whose construction costs more than
    # the cached token check it serves. ASGI header names are lower-case; the first one wins.
    for name, value in request.scope["headers"]:
        if name == b"authorization":
            header = str(value, "latin-1")
            break
    else:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise errors.InvalidTokenError("The Authorization header must be 'Bearer <token>'.")
    return token


async def access_claims(request: Request) -> AccessClaims:
    """The verified claims of the caller's access token; raises the RFC 6750 401s.

    An `Authorization: Bearer` header wins; without one, the access cookie of browser mode is
    used, and a state-changing request must then pass the CSRF check (403 `csrf_failed`).
    """
    return claims_of(request, services_of(request))


def claims_of(request: Request, services: Services) -> AccessClaims:
    """`access_claims` for a caller that holds the services already (the token check)."""
    token = bearer_token(request)
    if token is None:
        return cookie_claims(request, services)
    return services.access.authenticate(token)


def cookie_claims(request: Request, services: Services) -> AccessClaims:
    """The claims of the access cookie, CSRF-checked for unsafe methods; 401 without one."""
    token = cookies.access_cookie(request)
    if token is None:
        raise errors.MissingTokenError()
    claims = services.access.authenticate(token)
    if request.method not in SAFE_METHODS:
        check_csrf(request, session_id=claims.session_id)
    request.state.authenticated_by_cookie = True
    return claims


def check_csrf(request: Request, *, session_id: str) -> None:
    """Raises CsrfFailedError unless the request carries this session's CSRF token twice
    (header and cookie) and, when the browser names it, our own Origin."""
    services_of(request).browser.check_csrf(
        session_id=session_id,
        header_token=request.headers.get(wire.HEADER_CSRF),
        cookie_token=cookies.csrf_cookie(request),
        origin=request.headers.get("origin"),
    )


def is_authenticated_by_cookie(request: Request) -> bool:
    return bool(getattr(request.state, "authenticated_by_cookie", False))


def requires_role(role: str) -> Callable[..., Awaitable[AccessClaims]]:
    """A dependency that lets only callers whose token carries `role` through (403 otherwise)."""

    async def check(claims: Annotated[AccessClaims, Depends(access_claims)]) -> AccessClaims:
        if not claims.has_role(role):
            raise errors.InsufficientRoleError()
        return claims

    return check


async def _locale_dependency(request: Request) -> str:
    """The language to write to this caller in (mails): the same choice as the pages'."""
    return page_locale(request)


async def _services_dependency(request: Request) -> Services:
    # async: FastAPI runs a plain-def dependency in the thread pool, a thread hop per request.
    return services_of(request)


async def _context_dependency(request: Request) -> RequestContext:
    return context_of(request)


Claims = Annotated[AccessClaims, Depends(access_claims)]
ServicesDep = Annotated[Services, Depends(_services_dependency)]
ContextDep = Annotated[RequestContext, Depends(_context_dependency)]
LocaleDep = Annotated[str, Depends(_locale_dependency)]
AdminClaims = Annotated[AccessClaims, Depends(requires_role(wire.ROLE_ADMIN))]


async def recent_claims(request: Request, claims: Claims) -> AccessClaims:
    """The caller's claims, when its login is recent (KEYTURN_REAUTH_SECONDS); else 403
    `reauthentication_required` (POST /api/auth/reauthenticate renews it)."""
    if not services_of(request).reauthentication.is_recent(claims):
        raise errors.ReauthenticationRequiredError()
    return claims


RecentClaims = Annotated[AccessClaims, Depends(recent_claims)]
