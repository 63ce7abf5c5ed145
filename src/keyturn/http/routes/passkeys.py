"""/api/auth/passkeys: registering, listing, renaming and removing passkeys, and logging in
with one (WebAuthn). The browser's side is `navigator.credentials.create/get` with the options
these routes hand out; the answers come back as WebAuthn's JSON."""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from starlette.concurrency import run_in_threadpool

from keyturn import errors
from keyturn.http.answers import (
    NO_STORE,
    AuthModeHeader,
    cookie_login_body,
    is_cookie_mode,
    set_cookies,
    token_pair,
)
from keyturn.http.deps import BEARER_SECURITY, Claims, ContextDep, RecentClaims, ServicesDep
from keyturn.http.passkey_schemas import (
    PasskeyEnvelope,
    PasskeyList,
    PasskeyLoginOptionsRequest,
    PasskeyLoginRequest,
    PasskeyOut,
    PasskeyRegisterRequest,
    PasskeyRenameRequest,
)
from keyturn.http.schemas import CookieLoginResponse, LoginResponse, Problem, UserOut

router = APIRouter(prefix="/api/auth/passkeys", tags=["passkeys"])
PASSKEY_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,32}")


_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed request"},
    422: {"model": Problem, "description": "Invalid fields"},
    503: {"model": Problem, "description": "A dependency is unavailable"},
}
_SIGNED_IN: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, expired or invalid access token"},
    403: {
        "model": Problem,
        "description": "`reauthentication_required` (register, remove: the login is not"
        " recent); `csrf_failed` (cookie mode)",
    },
}
_NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": Problem, "description": "`passkey_not_found`: not a passkey of yours"}
}


def _options_response(description: str) -> dict[int | str, dict[str, Any]]:
    return {
        200: {
            "description": description,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    }


def _json(options: str) -> Response:
    return Response(options, media_type="application/json", headers=NO_STORE)


@router.post(
    "/register/options",
    responses={
        **_options_response(
            "PublicKeyCredentialCreationOptionsJSON: give it to"
            " `PublicKeyCredential.parseCreationOptionsFromJSON()`"
        ),
        **_ERRORS,
        **_SIGNED_IN,
    },
    openapi_extra=BEARER_SECURITY,
)
async def registration_options(claims: RecentClaims, services: ServicesDep) -> Response:
    """WebAuthn creation options for a new passkey of the caller: a discoverable credential
    with user verification, the caller's passkeys excluded. Its challenge serves one
    registration of this account within 300 s."""
    options = await run_in_threadpool(services.passkeys.registration_options, claims.subject)
    return _json(options)


@router.post(
    "/register",
    status_code=201,
    response_model=PasskeyEnvelope,
    responses={
        **_ERRORS,
        **_SIGNED_IN,
        400: {
            "model": Problem,
            "description": "`invalid_credential`: the credential could not be verified (or the"
            " body is malformed)",
        },
    },
    openapi_extra=BEARER_SECURITY,
)
async def register(
    body: PasskeyRegisterRequest, claims: RecentClaims, services: ServicesDep, context: ContextDep
) -> PasskeyEnvelope:
    """Store the passkey the browser made from `register/options`. 400 `invalid_credential`
    when it cannot be verified: another origin, an unknown or used challenge, no user
    verification, a credential registered already."""
    passkey = await run_in_threadpool(
        lambda: services.passkeys.register(
            claims.subject, body.credential, name=body.name, context=context
        )
    )
    return PasskeyEnvelope(passkey=PasskeyOut.of(passkey))


@router.get(
    "",
    response_model=PasskeyList,
    responses={**_ERRORS, **_SIGNED_IN},
    openapi_extra=BEARER_SECURITY,
)
async def list_passkeys(claims: Claims, services: ServicesDep) -> PasskeyList:
    """The caller's passkeys, oldest first."""
    found = await run_in_threadpool(services.passkeys.list_passkeys, claims.subject)
    return PasskeyList(passkeys=[PasskeyOut.of(passkey) for passkey in found])


@router.patch(
    "/{passkey_id}",
    response_model=PasskeyEnvelope,
    responses={**_ERRORS, **_SIGNED_IN, **_NOT_FOUND},
    openapi_extra=BEARER_SECURITY,
)
async def rename_passkey(
    passkey_id: str,
    body: PasskeyRenameRequest,
    claims: Claims,
    services: ServicesDep,
    context: ContextDep,
) -> PasskeyEnvelope:
    """Give one of the caller's passkeys another name (404 `passkey_not_found` for anyone
    else's)."""
    _check_shape(passkey_id)
    passkey = await run_in_threadpool(
        lambda: services.passkeys.rename(
            claims.subject, passkey_id, name=body.name, context=context
        )
    )
    return PasskeyEnvelope(passkey=PasskeyOut.of(passkey))


@router.delete(
    "/{passkey_id}",
    status_code=204,
    responses={
        **_ERRORS,
        **_SIGNED_IN,
        **_NOT_FOUND,
        409: {"model": Problem, "description": "last_sign_in_method"},
    },
    openapi_extra=BEARER_SECURITY,
)
async def remove_passkey(
    passkey_id: str, claims: RecentClaims, services: ServicesDep, context: ContextDep
) -> Response:
    """Remove one of the caller's passkeys (404 `passkey_not_found` for anyone else's; 409
    `last_sign_in_method` when it is the last way into an account without a password)."""
    _check_shape(passkey_id)
    await run_in_threadpool(
        lambda: services.passkeys.remove(claims.subject, passkey_id, context=context)
    )
    return Response(status_code=204)


@router.post(
    "/login/options",
    responses={
        **_options_response(
            "PublicKeyCredentialRequestOptionsJSON: give it to"
            " `PublicKeyCredential.parseRequestOptionsFromJSON()`"
        ),
        **_ERRORS,
        401: {"model": Problem, "description": "`invalid_mfa_token`"},
    },
)
async def login_options(
    services: ServicesDep,
    body: Annotated[PasskeyLoginOptionsRequest | None, Body()] = None,
) -> Response:
    """WebAuthn request options for logging in with a passkey. Without `mfa_token`:
    password-less, the browser offers the passkeys it holds for this site. Its challenge
    serves one login within 300 s."""
    mfa_token = body.mfa_token if body else None
    options = await run_in_threadpool(
        lambda: services.passkey_login.login_options(mfa_token=mfa_token)
    )
    return _json(options)


@router.post(
    "/login",
    response_model=LoginResponse | CookieLoginResponse,
    responses={
        **_ERRORS,
        401: {
            "model": Problem,
            "description": "`invalid_credential`: the passkey could not be verified; or"
            " `invalid_mfa_token`",
        },
        403: {"model": Problem, "description": "Account disabled, or a foreign Origin"},
        429: {"model": Problem, "description": "Too many failed logins from this address"},
    },
)
async def login(
    body: PasskeyLoginRequest,
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    response: Response,
    auth_mode: AuthModeHeader = None,
) -> LoginResponse | CookieLoginResponse:
    """Log in with a passkey: the browser's answer to `login/options`. Answers as
    /api/auth/login does, `X-Auth-Mode: cookie` included. 401 `invalid_credential` for an
    unknown credential, another origin, an unknown or used challenge or a bad signature;
    429 past `KEYTURN_LOGIN_MAX_FAILURES_PER_IP` failures (passwords and passkeys alike);
    403 `account_disabled`."""
    cookie_mode = is_cookie_mode(auth_mode)
    if cookie_mode:
        # Login CSRF: another site must not sign a browser into an account of its choosing.
        services.browser.check_origin(request.headers.get("origin"))
    issued = await run_in_threadpool(
        lambda: services.passkey_login.login(
            body.credential,
            mfa_token=body.mfa_token,
            remember_me=body.remember_me,
            context=context,
        )
    )
    if cookie_mode:
        set_cookies(request, response, services, issued)
        return cookie_login_body(issued)
    response.headers.update(NO_STORE)
    return LoginResponse(**token_pair(issued), user=UserOut.of(issued.user))


def _check_shape(passkey_id: str) -> None:
    if not PASSKEY_ID_SHAPE.fullmatch(passkey_id):
        raise errors.PasskeyNotFoundError()
