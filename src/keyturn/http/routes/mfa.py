"""/api/auth/mfa and /api/auth/reauthenticate: the authenticator app, recovery codes, the
second step of a login, and proving again who one is before a sensitive change."""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from keyturn import wire
from keyturn.http import cookies
from keyturn.http.answers import NO_STORE, AuthModeHeader, is_cookie_mode, login_answer
from keyturn.http.deps import (
    BEARER_SECURITY,
    Claims,
    ContextDep,
    LocaleDep,
    RecentClaims,
    ServicesDep,
    is_authenticated_by_cookie,
)
from keyturn.http.schemas import (
    AccessTokenOut,
    CookieLoginResponse,
    LoginResponse,
    MfaVerifyRequest,
    Problem,
    ReauthenticateRequest,
    RecoveryCodesOut,
    TotpConfirmRequest,
    TotpSetupOut,
)

router = APIRouter(prefix="/api/auth", tags=["mfa"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed request"},
    401: {"model": Problem, "description": "Missing, expired or invalid access token"},
    403: {"model": Problem, "description": "reauthentication_required; or csrf_failed"},
    422: {"model": Problem, "description": "Invalid fields"},
    503: {"model": Problem, "description": "A dependency is unavailable"},
}
_CODE_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed request"},
    401: {"model": Problem, "description": "invalid_code, invalid_mfa_token"},
    422: {"model": Problem, "description": "Invalid fields"},
    429: {"model": Problem, "description": "Too many wrong codes or passwords; see Retry-After"},
    503: {"model": Problem, "description": "A dependency is unavailable"},
}


@router.post(
    "/mfa/totp/setup",
    response_model=TotpSetupOut,
    responses={**_ERRORS, 409: {"model": Problem, "description": "mfa_already_enabled"}},
    openapi_extra=BEARER_SECURITY,
)
async def setup_totp(
    claims: RecentClaims, services: ServicesDep, context: ContextDep, response: Response
) -> TotpSetupOut:
    """A new secret for an authenticator app (with its otpauth URI and QR code), not active
    until confirmed; it replaces an unconfirmed one. Needs a recent login. 409
    `mfa_already_enabled` when an app is active."""
    user = await run_in_threadpool(services.access.load_user, claims.subject)
    setup = await run_in_threadpool(services.factors.setup_totp, user, context=context)
    response.headers.update(NO_STORE)
    return TotpSetupOut(secret=setup.secret, otpauth_uri=setup.otpauth_uri, qr_svg=setup.qr_svg)


@router.post(
    "/mfa/totp/confirm",
    response_model=RecoveryCodesOut,
    responses={
        **_ERRORS,
        400: {"model": Problem, "description": "invalid_code, or a malformed request"},
        404: {"model": Problem, "description": "mfa_not_enabled: no setup is pending"},
        409: {"model": Problem, "description": "mfa_already_enabled"},
    },
    openapi_extra=BEARER_SECURITY,
)
async def confirm_totp(
    body: TotpConfirmRequest,
    claims: RecentClaims,
    services: ServicesDep,
    context: ContextDep,
    response: Response,
) -> RecoveryCodesOut:
    """Activate the app with a code it shows: from now on a login needs a second factor.
    Returns ten recovery codes, shown this once. 400 `invalid_code`."""
    user = await run_in_threadpool(services.access.load_user, claims.subject)
    codes = await run_in_threadpool(services.factors.confirm_totp, user, body.code, context=context)
    response.headers.update(NO_STORE)
    return RecoveryCodesOut(recovery_codes=codes)


@router.delete(
    "/mfa/totp",
    status_code=204,
    responses={**_ERRORS, 404: {"model": Problem, "description": "mfa_not_enabled"}},
    openapi_extra=BEARER_SECURITY,
)
async def delete_totp(claims: RecentClaims, services: ServicesDep, context: ContextDep) -> Response:
    """Turn the authenticator app off; its recovery codes go with it. Needs a recent login."""
    user = await run_in_threadpool(services.access.load_user, claims.subject)
    await run_in_threadpool(services.factors.delete_totp, user, context=context)
    return Response(status_code=204)


@router.post(
    "/mfa/recovery-codes",
    response_model=RecoveryCodesOut,
    responses={**_ERRORS, 404: {"model": Problem, "description": "mfa_not_enabled"}},
    openapi_extra=BEARER_SECURITY,
)
async def regenerate_recovery_codes(
    claims: RecentClaims, services: ServicesDep, context: ContextDep, response: Response
) -> RecoveryCodesOut:
    """Ten new recovery codes in place of all the old ones, shown this once. Needs a recent
    login and an active app (404 `mfa_not_enabled`)."""
    user = await run_in_threadpool(services.access.load_user, claims.subject)
    codes = await run_in_threadpool(
        services.factors.regenerate_recovery_codes, user, context=context
    )
    response.headers.update(NO_STORE)
    return RecoveryCodesOut(recovery_codes=codes)


@router.post(
    "/mfa/verify",
    response_model=LoginResponse | CookieLoginResponse,
    responses=_CODE_ERRORS,
)
async def verify_mfa(
    body: MfaVerifyRequest,
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    locale: LocaleDep,
    response: Response,
    auth_mode: AuthModeHeader = None,
) -> LoginResponse | CookieLoginResponse:
    """Finish a login that answered `mfa_required`: its `mfa_token` with a `code` from the
    authenticator app or a `recovery_code` (spent; its owner is mailed). Answers as login
    does (cookies with `X-Auth-Mode: cookie`). 401 `invalid_code`; 401 `invalid_mfa_token`
    (unknown, used, expired, or after 5 wrong codes); 429 with `Retry-After` past the login
    limits, which wrong codes count against."""
    cookie_mode = is_cookie_mode(auth_mode)
    if cookie_mode:
        services.browser.check_origin(request.headers.get("origin"))
    issued = await run_in_threadpool(
        functools.partial(
            services.mfa.verify_code,
            body.mfa_token,
            code=body.code,
            recovery_code=body.recovery_code,
            locale=locale,
            context=context,
        )
    )
    return login_answer(request, response, services, issued, cookie_mode=cookie_mode)


@router.post(
    "/reauthenticate",
    response_model=AccessTokenOut,
    responses={
        **_CODE_ERRORS,
        401: {"model": Problem, "description": "invalid_credentials, invalid_code, or no token"},
        403: {"model": Problem, "description": "csrf_failed"},
    },
    openapi_extra=BEARER_SECURITY,
)
async def reauthenticate(
    body: ReauthenticateRequest,
    request: Request,
    claims: Claims,
    services: ServicesDep,
    context: ContextDep,
    locale: LocaleDep,
) -> Response:
    """Prove again who you are with your `password`, a `code` from your authenticator app or
    a `recovery_code`: a new access token for the same session, with `auth_time` now (its
    refreshes keep it), for the changes that need a recent login. In browser mode the access
    cookie is replaced instead. Wrong answers count against the login limits (429)."""
    issued = await services.hashing.run(
        functools.partial(
            services.reauthentication.reauthenticate,
            claims,
            password=body.password,
            code=body.code,
            recovery_code=body.recovery_code,
            locale=locale,
            context=context,
        ),
        gone=request.is_disconnected,
    )
    if is_authenticated_by_cookie(request):
        answer = AccessTokenOut(token_type=wire.AUTH_MODE_COOKIE, expires_in=issued.expires_in)
        reply = Response(answer.model_dump_json(exclude_none=True), media_type="application/json")
        cookies.set_access_cookie(
            reply, cookies.names_for(services.settings), issued, settings=services.settings
        )
    else:
        answer = AccessTokenOut(access_token=issued.access_token, expires_in=issued.expires_in)
        reply = Response(answer.model_dump_json(), media_type="application/json")
    reply.headers.update(NO_STORE)
    return reply
