"""/api/auth: register, login, me, refresh, logout, sessions, password, account deletion."""

from __future__ import annotations

import functools
import re
from typing import Annotated, Any

from fastapi import APIRouter, Body, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from keyturn import errors
from keyturn.http import cookies
from keyturn.http.answers import (
    NO_STORE,
    AuthModeHeader,
    cookie_login_body,
    is_cookie_mode,
    login_answer,
    set_cookies,
    token_pair,
)
from keyturn.http.deps import (
    BEARER_SECURITY,
    Claims,
    ContextDep,
    LocaleDep,
    RecentClaims,
    ServicesDep,
    access_claims,
    check_csrf,
    claims_of,
    context_of,
    is_authenticated_by_cookie,
    json_body_schema,
    optional_json_body,
    services_of,
)
from keyturn.http.schemas import (
    AccountDeleteRequest,
    CookieLoginResponse,
    LoginRequest,
    LoginResponse,
    LogoutRequest,
    MfaRequiredProblem,
    PasswordChangeRequest,
    Problem,
    RefreshRequest,
    RegisterRequest,
    SessionList,
    SessionOut,
    TokenPair,
    UserEnvelope,
    UserOut,
    user_envelope_json,
)

router = APIRouter(prefix="/api/auth", tags=["auth"])
SESSION_ID_SHAPE = re.compile(r"[A-Za-z0-9_-]{1,64}")

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed request"},
    401: {"model": Problem, "description": "Missing, expired or invalid credentials"},
    422: {"model": Problem, "description": "Invalid fields"},
    503: {"model": Problem, "description": "A dependency is unavailable"},
}


@router.post(
    "/register",
    status_code=201,
    response_model=UserEnvelope,
    responses={**_ERRORS, 409: {"model": Problem, "description": "Email or username taken"}},
)
async def register(
    body: RegisterRequest,
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    locale: LocaleDep,
) -> UserEnvelope:
    """Create an account and mail a link that verifies its address (in the caller's
    language: the `lang` cookie, else Accept-Language). 409 `email_taken`/`username_taken`;
    422 `invalid_email`, `invalid_username` or `weak_password`, with `reasons`; 503
    `overloaded` with `Retry-After` while too many passwords wait to be hashed."""
    user = await services.hashing.run(
        functools.partial(
            services.accounts.register,
            email=body.email,
            password=body.password,
            username=body.username,
            context=context,
            verification_locale=locale,
        ),
        gone=request.is_disconnected,
    )
    return UserEnvelope(user=UserOut.of(user))


@router.post(
    "/login",
    response_model=LoginResponse | CookieLoginResponse,
    responses={
        **_ERRORS,
        401: {
            "model": MfaRequiredProblem,
            "description": "`invalid_credentials`; or `mfa_required` with an `mfa_token` for"
            " POST /api/auth/mfa/verify when the account has a second factor",
        },
        403: {"model": Problem, "description": "Account disabled, or a foreign Origin"},
        429: {"model": Problem, "description": "Too many failed logins"},
    },
)
async def login(
    body: LoginRequest,
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    response: Response,
    auth_mode: AuthModeHeader = None,
) -> LoginResponse | CookieLoginResponse:
    """Exchange an email (or username) and password for tokens.

    With `X-Auth-Mode: cookie` the tokens are set as HttpOnly cookies (plus a readable
    `csrf_token` cookie to echo in `X-CSRF-Token`) and the body holds none of them.
    401 `invalid_credentials` whether or not the account exists; 429 with `Retry-After`
    past `KEYTURN_LOGIN_MAX_FAILURES` failures; 403 `account_disabled`; 503 `overloaded`
    with `Retry-After` while too many passwords wait to be checked. For an account with a
    second factor, a right password answers 401 `mfa_required` with `mfa_token` and
    `methods`: the login ends at POST /api/auth/mfa/verify.
    """
    cookie_mode = is_cookie_mode(auth_mode)
    if cookie_mode:
        # Login CSRF: another site must not sign a browser into an account of its choosing.
        services.browser.check_origin(request.headers.get("origin"))
    issued = await services.hashing.run(
        functools.partial(
            services.login.login,
            identifier=body.identifier,
            password=body.password,
            remember_me=body.remember_me,
            context=context,
        ),
        gone=request.is_disconnected,
    )
    return login_answer(request, response, services, issued, cookie_mode=cookie_mode)


@router.get("/me", response_model=UserEnvelope, responses=_ERRORS, openapi_extra=BEARER_SECURITY)
async def me(request: Request) -> Response:
    """The caller's account."""
    # A hot route (see http/hot_routes.py): the request alone in, a rendered Response out.
    services = services_of(request)
    claims = claims_of(request, services)
    user = services.access.cached_user(claims.subject)
    if user is None:
        user = await run_in_threadpool(services.access.load_user, claims.subject)
    return Response(user_envelope_json(user), media_type="application/json")


@router.post(
    "/refresh",
    response_model=TokenPair | CookieLoginResponse,
    responses={**_ERRORS, 403: {"model": Problem, "description": "CSRF check failed"}},
    openapi_extra=json_body_schema(RefreshRequest),
)
async def refresh(request: Request) -> Response:
    """Rotate a refresh token: a new access token and a new refresh token.

    Without a body, the refresh cookie of browser mode is used (with `X-CSRF-Token`) and the
    cookies are set again. 401 `invalid_refresh_token`, `refresh_token_expired`, or
    `refresh_token_reused` (the session has been ended: the token was used before, beyond
    the grace window); 403 `csrf_failed`.
    """
    # A hot route (see http/hot_routes.py): the body is parsed here, not by FastAPI.
    services, context = services_of(request), context_of(request)
    body = await optional_json_body(request, RefreshRequest)
    if body is None or body.refresh_token is None:
        refresh_token = cookies.refresh_cookie(request)
        if refresh_token is None:
            raise errors.InvalidRefreshTokenError("Send the refresh token as `refresh_token`.")
        session = await run_in_threadpool(services.sessions.session_of_refresh_token, refresh_token)
        if session is None:
            raise errors.InvalidRefreshTokenError()
        check_csrf(request, session_id=session.id)
        issued = await services.rotation.rotate_refresh_token(refresh_token, context=context)
        body_json = cookie_login_body(issued).model_dump_json()
        response = Response(body_json, media_type="application/json")
        set_cookies(request, response, services, issued)
        return response
    issued = await services.rotation.rotate_refresh_token(body.refresh_token, context=context)
    return JSONResponse(token_pair(issued), headers=NO_STORE)


@router.post("/logout", status_code=204, responses=_ERRORS, openapi_extra=BEARER_SECURITY)
async def logout(
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    body: Annotated[LogoutRequest | None, Body()] = None,
) -> Response:
    """End this session: its refresh token and access tokens stop working at once, on
    every instance. Authenticate with the access token, or send the refresh token; a
    browser without a body uses its cookies (with `X-CSRF-Token`), which are then cleared."""
    refresh_token = body.refresh_token if body else None
    from_cookies = refresh_token is None and cookies.has_session_cookies(request)
    if from_cookies:
        refresh_token = cookies.refresh_cookie(request)
    claims = None
    try:
        claims = await access_claims(request)
    except errors.BearerTokenError:
        # An expired or missing access token is fine when the refresh token names the session.
        if refresh_token is None:
            raise
    if claims is None and from_cookies and refresh_token is not None:
        session = await run_in_threadpool(services.sessions.session_of_refresh_token, refresh_token)
        if session is None:
            raise errors.InvalidRefreshTokenError()
        check_csrf(request, session_id=session.id)
    await run_in_threadpool(
        services.sessions.logout, claims=claims, refresh_token=refresh_token, context=context
    )
    response = Response(status_code=204)
    if from_cookies:
        cookies.clear_session_cookies(response, cookies.names_for(services.settings))
    return response


@router.post("/logout-all", status_code=204, responses=_ERRORS, openapi_extra=BEARER_SECURITY)
async def logout_all(
    request: Request, claims: Claims, services: ServicesDep, context: ContextDep
) -> Response:
    """End every session of the caller."""
    await run_in_threadpool(services.sessions.logout_all, claims.subject, context=context)
    response = Response(status_code=204)
    if is_authenticated_by_cookie(request):
        cookies.clear_session_cookies(response, cookies.names_for(services.settings))
    return response


@router.get(
    "/sessions", response_model=SessionList, responses=_ERRORS, openapi_extra=BEARER_SECURITY
)
async def sessions(claims: Claims, services: ServicesDep) -> SessionList:
    """The caller's live sessions, most recently used first; `current` marks this one."""
    found = await run_in_threadpool(services.sessions.list_sessions, claims.subject)
    return SessionList(
        sessions=[SessionOut.of(session, current_session_id=claims.session_id) for session in found]
    )


@router.delete(
    "/sessions/{session_id}",
    status_code=204,
    responses={**_ERRORS, 404: {"model": Problem, "description": "Not a session of yours"}},
    openapi_extra=BEARER_SECURITY,
)
async def end_session(
    session_id: str, claims: Claims, services: ServicesDep, context: ContextDep
) -> Response:
    """End one of the caller's sessions (404 `session_not_found` for anyone else's)."""
    if not SESSION_ID_SHAPE.fullmatch(session_id):
        raise errors.SessionNotFoundError()
    await run_in_threadpool(
        services.sessions.end_session, claims.subject, session_id, context=context
    )
    return Response(status_code=204)


@router.post(
    "/password",
    status_code=204,
    responses={
        **_ERRORS,
        403: {"model": Problem, "description": "reauthentication_required; or csrf_failed"},
        429: {"model": Problem, "description": "Too many wrong current passwords; see Retry-After"},
    },
    openapi_extra=BEARER_SECURITY,
)
async def change_password(
    body: PasswordChangeRequest,
    request: Request,
    claims: RecentClaims,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    """Change the password (needs a recent login: 403 `reauthentication_required`
    otherwise); every other session of the caller ends. Wrong current passwords
    count against the same limits as failed logins (429 past them); 503 `overloaded` with
    `Retry-After` while too many passwords wait to be hashed."""
    await services.hashing.run(
        functools.partial(
            services.sessions.change_password,
            claims,
            current_password=body.current_password,
            new_password=body.new_password,
            context=context,
        ),
        gone=request.is_disconnected,
    )
    return Response(status_code=204)


@router.post(
    "/account/delete",
    status_code=204,
    responses={
        **_ERRORS,
        401: {"model": Problem, "description": "invalid_credentials: wrong password; or no token"},
        403: {"model": Problem, "description": "CSRF check failed"},
        409: {"model": Problem, "description": "last_admin: the only enabled admin"},
        429: {"model": Problem, "description": "Too many wrong passwords"},
    },
    openapi_extra=BEARER_SECURITY,
)
async def delete_account(
    body: AccountDeleteRequest,
    request: Request,
    claims: Claims,
    services: ServicesDep,
    context: ContextDep,
) -> Response:
    """Delete the caller's own account, confirmed with its password.

    Every session and access token of the account stops working at once, on every instance;
    a browser's cookies are cleared. 401 `invalid_credentials` for a wrong password (nothing
    changes); 429 with `Retry-After` past `KEYTURN_LOGIN_MAX_FAILURES` wrong passwords in the
    login window; 409 `last_admin` for the only enabled admin; 503 `overloaded` with
    `Retry-After` while too many passwords wait to be hashed.
    """
    await services.hashing.run(
        functools.partial(
            services.admin.delete_own_account,
            claims.subject,
            current_password=body.current_password,
            session_id=claims.session_id,
            context=context,
        ),
        gone=request.is_disconnected,
    )
    response = Response(status_code=204)
    if is_authenticated_by_cookie(request):
        cookies.clear_session_cookies(response, cookies.names_for(services.settings))
    return response
