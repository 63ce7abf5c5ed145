"""How a successful login answers, wherever it ends (password, second factor, passkey,
provider): tokens in the body, or cookies in browser mode (`X-Auth-Mode: cookie`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Header, Request, Response

from keyturn import errors, wire
from keyturn.http import cookies
from keyturn.http.schemas import CookieLoginResponse, LoginResponse, UserOut
from keyturn.services.container import Services
from keyturn.services.issuing import IssuedTokens

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
AuthModeHeader = Annotated[
    str | None,
    Header(
        alias=wire.HEADER_AUTH_MODE,
        description="`cookie`: set the tokens as HttpOnly cookies instead of returning them.",
    ),
]


def is_cookie_mode(auth_mode: str | None) -> bool:
    """Whether X-Auth-Mode asks for browser mode; 400 for a mode we do not know."""
    if auth_mode is None:
        return False
    mode = auth_mode.strip().lower()
    if mode == wire.AUTH_MODE_COOKIE:
        return True
    if mode == "bearer":
        return False
    raise errors.InvalidRequestError("X-Auth-Mode must be `cookie` or `bearer`.")


def set_cookies(
    request: Request, response: Response, services: Services, issued: IssuedTokens
) -> None:
    """Browser mode: the tokens go into cookies, never into the body. A CSRF token the
    browser already holds for this session is kept, so tabs racing a refresh stay valid."""
    session_id = issued.claims.session_id
    csrf_token = cookies.csrf_cookie(request)
    if not services.browser.is_csrf_token_of(csrf_token, session_id) or csrf_token is None:
        csrf_token = services.browser.new_csrf_token(session_id)
    cookies.set_session_cookies(
        response,
        cookies.names_for(services.settings),
        issued,
        csrf_token=csrf_token,
        settings=services.settings,
    )
    response.headers.update(NO_STORE)


def cookie_login_body(issued: IssuedTokens) -> CookieLoginResponse:
    return CookieLoginResponse(expires_in=issued.expires_in, user=UserOut.of(issued.user))


def token_pair(issued: IssuedTokens) -> dict[str, object]:
    return {
        "access_token": issued.access_token,
        "refresh_token": issued.refresh_token,
        "token_type": "Bearer",
        "expires_in": issued.expires_in,
    }


def login_answer(
    request: Request,
    response: Response,
    services: Services,
    issued: IssuedTokens,
    *,
    cookie_mode: bool,
) -> LoginResponse | CookieLoginResponse:
    """The body (and, in browser mode, the cookies) of a successful login."""
    if cookie_mode:
        set_cookies(request, response, services, issued)
        return cookie_login_body(issued)
    response.headers.update(NO_STORE)
    return LoginResponse(**token_pair(issued), user=UserOut.of(issued.user))
