"""The cookies of browser mode: their names, attributes, setting, clearing and reading.

Over https the names carry a prefix the browser enforces: `__Host-` (Secure, Path=/, no Domain,
so no sibling subdomain can plant or shadow it) and `__Secure-` for the refresh cookie, which
needs Path=/api/auth. In development over plain http, where browsers refuse Secure cookies,
the bare names are used.
"""

from __future__ import annotations

from dataclasses import dataclass

from starlette.requests import Request
from starlette.responses import Response

from keyturn import wire
from keyturn.config import Settings
from keyturn.services.issuing import IssuedTokens

_COOKIE_VALUE_LIMIT = 8192


@dataclass(frozen=True, slots=True)
class CookieNames:
    access: str
    refresh: str
    csrf: str
    secure: bool


_PLAIN = CookieNames(wire.COOKIE_ACCESS, wire.COOKIE_REFRESH, wire.COOKIE_CSRF, secure=False)
_PREFIXED = CookieNames(
    access=wire.HOST_PREFIX + wire.COOKIE_ACCESS,
    refresh=wire.SECURE_PREFIX + wire.COOKIE_REFRESH,
    csrf=wire.HOST_PREFIX + wire.COOKIE_CSRF,
    secure=True,
)


def names_for(settings: Settings) -> CookieNames:
    """Prefixed, Secure cookies unless `Settings.cookies_secure` says plain http is in use."""
    return _PREFIXED if settings.cookies_secure else _PLAIN


def cookie_names(request: Request) -> CookieNames:
    return names_for(request.app.state.services.settings)


def _set_cookie_header(
    name: str,
    value: str,
    *,
    path: str,
    same_site: str,
    http_only: bool,
    secure: bool,
    max_age: int | None,
) -> str:
    parts = [f"{name}={value}", f"Path={path}", f"SameSite={same_site}"]
    if max_age is not None:
        parts.append(f"Max-Age={max_age}")
    if secure:
        parts.append("Secure")
    if http_only:
        parts.append("HttpOnly")
    return "; ".join(parts)


def _cookie_headers(
    names: CookieNames,
    *,
    access_token: str,
    refresh_token: str,
    csrf_token: str,
    max_age: int | None,
) -> list[str]:
    return [
        _set_cookie_header(
            names.access,
            access_token,
            path="/",
            same_site="Lax",
            http_only=True,
            secure=names.secure,
            max_age=max_age,
        ),
        _set_cookie_header(
            names.refresh,
            refresh_token,
            path=wire.REFRESH_COOKIE_PATH,
            same_site="Strict",
            http_only=True,
            secure=names.secure,
            max_age=max_age,
        ),
        # Readable by our scripts on purpose: they echo it in the X-CSRF-Token header.
        _set_cookie_header(
            names.csrf,
            csrf_token,
            path="/",
            same_site="Strict",
            http_only=False,
            secure=names.secure,
            max_age=max_age,
        ),
    ]


def set_session_cookies(
    response: Response,
    names: CookieNames,
    issued: IssuedTokens,
    *,
    csrf_token: str,
    settings: Settings,
) -> None:
    """Put freshly issued tokens in cookies.

    With remember_me they live as long as the session may idle (the access cookie too: its JWT
    says when it expires, so the server can answer `token_expired` and the page refreshes);
    without it they are session cookies, gone when the browser closes.
    """
    max_age: int | None = None
    if issued.remember_me:
        max_age = min(settings.refresh_ttl_seconds, settings.session_max_age_seconds)
    for header in _cookie_headers(
        names,
        access_token=issued.access_token,
        refresh_token=issued.refresh_token,
        csrf_token=csrf_token,
        max_age=max_age,
    ):
        response.headers.append("set-cookie", header)


def set_access_cookie(
    response: Response, names: CookieNames, issued: IssuedTokens, *, settings: Settings
) -> None:
    """Replace the access cookie alone (a reauthentication: same session, same refresh
    token), with the lifetime the session's cookies have."""
    max_age: int | None = None
    if issued.remember_me:
        max_age = min(settings.refresh_ttl_seconds, settings.session_max_age_seconds)
    response.headers.append(
        "set-cookie",
        _set_cookie_header(
            names.access,
            issued.access_token,
            path="/",
            same_site="Lax",
            http_only=True,
            secure=names.secure,
            max_age=max_age,
        ),
    )


def clear_session_cookies(response: Response, names: CookieNames) -> None:
    """Expire all three cookies (same names and paths, or the browser keeps them)."""
    for header in _cookie_headers(
        names, access_token="", refresh_token="", csrf_token="", max_age=0
    ):
        response.headers.append("set-cookie", header)


def _read(request: Request, name: str) -> str | None:
    value = request.cookies.get(name)
    if not value or len(value) > _COOKIE_VALUE_LIMIT:
        return None
    return value


def access_cookie(request: Request) -> str | None:
    return _read(request, cookie_names(request).access)


def refresh_cookie(request: Request) -> str | None:
    return _read(request, cookie_names(request).refresh)


def csrf_cookie(request: Request) -> str | None:
    return _read(request, cookie_names(request).csrf)


def has_session_cookies(request: Request) -> bool:
    names = cookie_names(request)
    return any(request.cookies.get(name) for name in (names.access, names.refresh, names.csrf))


def state_cookie_name(settings: Settings) -> str:
    """The cookie of a sign-in through a provider (`__Host-` over https: no sibling subdomain
    can plant one and sign the browser into an account of its choosing)."""
    prefix = wire.HOST_PREFIX if settings.cookies_secure else ""
    return prefix + wire.COOKIE_OIDC_STATE


def set_state_cookie(response: Response, settings: Settings, value: str, *, max_age: int) -> None:
    """Lax, so the provider's top-level redirect back to the callback carries it; HttpOnly,
    since it holds the PKCE verifier."""
    response.headers.append(
        "set-cookie",
        _set_cookie_header(
            state_cookie_name(settings),
            value,
            path="/",
            same_site="Lax",
            http_only=True,
            secure=settings.cookies_secure,
            max_age=max_age,
        ),
    )


def clear_state_cookie(response: Response, settings: Settings) -> None:
    set_state_cookie(response, settings, "", max_age=0)


def state_cookie(request: Request) -> str | None:
    return _read(request, state_cookie_name(request.app.state.services.settings))
