"""FastAPI dependencies: the services, the request's context, the caller's access claims."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request

from keyturn import errors
from keyturn.core.tokens import AccessClaims
from keyturn.http.client_ip import client_ip
from keyturn.services.container import Services
from keyturn.services.context import RequestContext

BEARER_SECURITY: dict[str, Any] = {"security": [{"bearer": []}, {"oauth2": []}]}


def services_of(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def context_of(request: Request) -> RequestContext:
    """The caller's address (behind trusted proxies too) and user agent."""
    peer = request.client.host if request.client else None
    ip = client_ip(peer, request.headers.get("x-forwarded-for"), request.app.state.trusted_networks)
    return RequestContext(ip=ip, user_agent=request.headers.get("user-agent"))


def bearer_token(request: Request) -> str | None:
    """The token of an `Authorization: Bearer` header; None when there is no such header."""
    header = request.headers.get("authorization")
    if header is None:
        return None
    scheme, _, token = header.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token or " " in token:
        raise errors.InvalidTokenError("The Authorization header must be 'Bearer <token>'.")
    return token


async def access_claims(request: Request) -> AccessClaims:
    """The verified claims of the caller's access token; raises the RFC 6750 401s."""
    token = bearer_token(request)
    if token is None:
        cookie_auth: Callable[[Request], Awaitable[AccessClaims | None]] | None = getattr(
            request.app.state, "cookie_authenticator", None
        )
        claims = await cookie_auth(request) if cookie_auth else None
        if claims is None:
            raise errors.MissingTokenError()
        return claims
    claims = services_of(request).auth.authenticate(token)
    request.state.access_claims = claims
    return claims


def requires_role(role: str) -> Callable[..., Awaitable[AccessClaims]]:
    """A dependency that lets only callers whose token carries `role` through (403 otherwise)."""

    async def check(claims: Annotated[AccessClaims, Depends(access_claims)]) -> AccessClaims:
        if not claims.has_role(role):
            raise errors.InsufficientRoleError()
        return claims

    return check


Claims = Annotated[AccessClaims, Depends(access_claims)]
ServicesDep = Annotated[Services, Depends(services_of)]
ContextDep = Annotated[RequestContext, Depends(context_of)]
