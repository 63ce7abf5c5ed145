"""Sign in with a provider: the providers, start, callback, linking, and linked identities."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from keyturn import errors
from keyturn.http import cookies
from keyturn.http.deps import BEARER_SECURITY, Claims, ContextDep, RecentClaims, ServicesDep
from keyturn.http.schemas import (
    IdentityList,
    IdentityOut,
    LinkRequest,
    LinkStarted,
    Problem,
    ProviderList,
    ProviderOut,
)
from keyturn.services.container import Services
from keyturn.services.federation import FLOW_LIFETIME, Started

router = APIRouter(prefix="/api/auth", tags=["providers"])

ProviderId = Annotated[str, Path(max_length=32, description="A configured provider's id.")]
# Nothing of a sign-in in progress is cached, and the callback's URL (which holds the code)
# is sent as nobody's Referer.
_NAVIGATION_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, expired or invalid access token"},
    403: {"model": Problem, "description": "CSRF check failed"},
}
_START_ERRORS: dict[int | str, dict[str, Any]] = {
    302: {"description": "To the provider (or back to /login?error=provider_unavailable)"},
    400: {"model": Problem, "description": "invalid_return_to, or link=true on a GET"},
    404: {"model": Problem, "description": "provider_not_found"},
}


@router.get("/providers", response_model=ProviderList)
async def providers(services: ServicesDep) -> ProviderList:
    """The providers users can sign in with, in the order the login page shows them."""
    return ProviderList(
        providers=[
            ProviderOut(id=provider.id, name=provider.name)
            for provider in services.federation.providers.values()
        ]
    )


def _redirect_with_state(services: Services, started: Started, *, status: int) -> Response:
    response = RedirectResponse(started.location, status_code=status, headers=_NAVIGATION_HEADERS)
    if started.state_cookie is not None:
        cookies.set_state_cookie(
            response,
            services.settings,
            started.state_cookie,
            max_age=int(FLOW_LIFETIME.total_seconds()),
        )
    return response


@router.get(
    "/oidc/{provider}/start", status_code=302, response_class=Response, responses=_START_ERRORS
)
async def start(
    provider: ProviderId,
    services: ServicesDep,
    return_to: Annotated[
        str | None, Query(max_length=512, description="A path on this site; /dashboard.")
    ] = None,
    link: Annotated[bool, Query(description="Not here: link with POST …/link.")] = False,
) -> Response:
    """Sign in with a provider: a 302 to it, with a signed, HttpOnly cookie that binds the
    sign-in to this browser (state, nonce, PKCE verifier; 10 minutes, used once). 400
    `invalid_return_to` for anything but a path on this site; 404 `provider_not_found`."""
    if link:
        # A GET can be triggered by any site: linking starts with a CSRF-checked POST.
        raise errors.InvalidRequestError(
            "Link a provider with POST /api/auth/oidc/{provider}/link."
        )
    started = await services.federation.start(provider, return_to=return_to)
    return _redirect_with_state(services, started, status=302)


@router.post(
    "/oidc/{provider}/link",
    response_model=LinkStarted,
    responses={
        **_ERRORS,
        400: {"model": Problem, "description": "invalid_return_to"},
        404: {"model": Problem, "description": "provider_not_found"},
    },
    openapi_extra=BEARER_SECURITY,
)
async def link(
    provider: ProviderId,
    claims: Claims,
    services: ServicesDep,
    body: LinkRequest | None = None,
) -> Response:
    """Link a provider to the signed-in account (browser mode: with `X-CSRF-Token`). The
    answer's `location` is the provider's page to navigate to; the state cookie set with it
    names this account, so the callback links the identity here (or, when it is another
    account's, sends the browser to /dashboard?error=identity_in_use, linking nothing)."""
    started = await services.federation.start(
        provider, return_to=body.return_to if body else None, link_user_id=claims.subject
    )
    response = Response(
        LinkStarted(location=started.location).model_dump_json(),
        media_type="application/json",
        headers={"Cache-Control": "no-store"},
    )
    if started.state_cookie is not None:
        cookies.set_state_cookie(
            response,
            services.settings,
            started.state_cookie,
            max_age=int(FLOW_LIFETIME.total_seconds()),
        )
    return response


@router.get(
    "/oidc/{provider}/callback",
    status_code=302,
    response_class=Response,
    responses={302: {"description": "To return_to, or to /login?error=CODE"}},
)
async def callback(
    provider: Annotated[str, Path(max_length=64)],
    request: Request,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    """Where the provider sends the browser back: the session cookies are set and the
    browser goes to `return_to`; any failure goes to /login?error=CODE (`access_denied`,
    `invalid_state`, `invalid_id_token`, `account_exists`, `provider_unavailable`, …)."""
    params = {name: request.query_params[name] for name in request.query_params}
    completed = await services.federation.complete(
        provider, params=params, state_cookie=cookies.state_cookie(request), context=context
    )
    response = RedirectResponse(completed.location, status_code=302, headers=_NAVIGATION_HEADERS)
    cookies.clear_state_cookie(response, services.settings)  # single use, whatever happened
    if completed.issued is not None:
        issued = completed.issued
        cookies.set_session_cookies(
            response,
            cookies.names_for(services.settings),
            issued,
            csrf_token=services.browser.new_csrf_token(issued.claims.session_id),
            settings=services.settings,
        )
    return response


@router.get(
    "/identities", response_model=IdentityList, responses=_ERRORS, openapi_extra=BEARER_SECURITY
)
async def identities(claims: Claims, services: ServicesDep) -> IdentityList:
    """The providers linked to the caller's account, oldest first."""
    found = await run_in_threadpool(services.identities.identities, claims.subject)
    return IdentityList(
        identities=[
            IdentityOut(
                id=one.id, provider=one.provider, email=one.email, created_at=one.created_at
            )
            for one in found
        ]
    )


@router.delete(
    "/identities/{identity_id}",
    status_code=204,
    responses={
        **_ERRORS,
        404: {"model": Problem, "description": "identity_not_found: not one of yours"},
        403: {"model": Problem, "description": "reauthentication_required; or csrf_failed"},
        409: {"model": Problem, "description": "last_sign_in_method"},
    },
    openapi_extra=BEARER_SECURITY,
)
async def unlink(
    identity_id: Annotated[str, Path(max_length=64)],
    claims: RecentClaims,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    """Unlink a provider from the caller's account; needs a recent login (403
    `reauthentication_required`). 409 `last_sign_in_method` when it is the only way left to
    sign in (no password, no other provider, no passkey)."""
    await run_in_threadpool(
        services.identities.unlink, claims.subject, identity_id, context=context
    )
    return Response(status_code=204)
