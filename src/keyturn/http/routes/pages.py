"""Pages: GET /login, /register, /dashboard, /forgot-password, /reset-password, /verify-email,
/docs, their static files and security headers.

The pages are plain server-rendered HTML; one script, static/app.js, talks to the JSON API in
browser mode (cookies + X-CSRF-Token). No inline script or style anywhere, so the
Content-Security-Policy can forbid both. Every page speaks the reader's language
(`keyturn.http.locales`); the script takes its sentences from the page.
"""

from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyturn import __version__, errors
from keyturn.core.passwords import MIN_PASSWORD_LENGTH
from keyturn.http import cookies, locales
from keyturn.http.deps import services_of

_HERE = Path(str(resources.files("keyturn.web")))
STATIC_DIR = _HERE / "static"
templates = Jinja2Templates(env=locales.page_environment(_HERE / "templates"))

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'self'",
        "base-uri 'none'",
        "frame-ancestors 'none'",
    ]
)
# Swagger UI draws its icons from data: URIs in its stylesheet; nothing else changes.
DOCS_CONTENT_SECURITY_POLICY = CONTENT_SECURITY_POLICY.replace(
    "img-src 'self'", "img-src 'self' data:"
)
# Swagger UI's own files come from a pinned Python package, not a CDN: the docs page shares
# its origin with the cookie pages, so a script from elsewhere could act as the signed-in user.
SWAGGER_UI_DIR = Path(str(resources.files("fastapi_offline") / "static"))
PAGE_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cache-Control": "no-store",
}
_STATIC_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"cache-control", b"no-cache"),
    (b"referrer-policy", b"no-referrer"),
]

router = APIRouter(include_in_schema=False)
ERROR_CODE_SHAPE = re.compile(r"[a-z_]{1,40}")
# RFC 9110 §9.3.2: what answers GET answers HEAD (link checkers, uptime probes).
PAGE_METHODS = ["GET", "HEAD"]


def _is_signed_in(request: Request) -> bool:
    """Whether the access cookie is valid now (an expired one the page can still refresh)."""
    token = cookies.access_cookie(request)
    if token is None:
        return False
    try:
        services_of(request).access.authenticate(token)
    except errors.KeyturnError:
        return False
    return True


def _page(request: Request, template: str, **context: object) -> Response:
    return templates.TemplateResponse(
        request,
        template,
        {"version": __version__, **locales.page_context(request), **context},
        headers=PAGE_HEADERS,
    )


def _providers(request: Request) -> list[dict[str, str]]:
    """The sign-in providers the pages offer, by id and name."""
    configured = services_of(request).federation.providers.values()
    return [{"id": provider.id, "name": provider.name} for provider in configured]


def _error_code(request: Request) -> str | None:
    """The code a refused provider sign-in came back with (?error=CODE), if it looks like one:
    the page shows its own sentence for it, never the text of the URL."""
    code = request.query_params.get("error")
    return code if code and ERROR_CODE_SHAPE.fullmatch(code) else None


def _redirect(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303, headers=PAGE_HEADERS)


@router.api_route("/", methods=PAGE_METHODS)
async def home() -> RedirectResponse:
    return _redirect("/dashboard")


@router.api_route("/login", methods=PAGE_METHODS)
async def login_page(request: Request) -> Response:
    if _is_signed_in(request):
        return _redirect("/dashboard")
    return _page(
        request, "login.html", providers=_providers(request), error_code=_error_code(request)
    )


@router.api_route("/register", methods=PAGE_METHODS)
async def register_page(request: Request) -> Response:
    return _page(
        request, "register.html", min_password=MIN_PASSWORD_LENGTH, providers=_providers(request)
    )


@router.api_route("/dashboard", methods=PAGE_METHODS)
async def dashboard_page(request: Request) -> Response:
    # The refresh cookie is scoped to /api/auth, so the page sees only the access and CSRF
    # cookies; with neither there is no session to renew.
    if not cookies.has_session_cookies(request):
        return _redirect("/login")
    return _page(
        request,
        "dashboard.html",
        min_password=MIN_PASSWORD_LENGTH,
        providers=_providers(request),
        error_code=_error_code(request),
    )


def not_found_page(request: Request) -> Response:
    """The 404 a browser shows for a page path Keyturn does not have (the API keeps JSON)."""
    response = _page(request, "404.html")
    response.status_code = 404
    return response


@router.api_route("/docs", methods=PAGE_METHODS)
async def docs_page(request: Request) -> Response:
    """Swagger UI over /openapi.json, every file served by Keyturn itself."""
    return templates.TemplateResponse(
        request,
        "docs.html",
        {"version": __version__, **locales.page_context(request)},
        headers={**PAGE_HEADERS, "Content-Security-Policy": DOCS_CONTENT_SECURITY_POLICY},
    )


# Accounts by email. The token of a link travels in the URL fragment, which the browser never
# sends: the pages read it in the script, so it reaches no access log and no Referer.


@router.api_route("/forgot-password", methods=PAGE_METHODS)
async def forgot_password_page(request: Request) -> Response:
    return _page(request, "forgot-password.html")


@router.api_route("/reset-password", methods=PAGE_METHODS)
async def reset_password_page(request: Request) -> Response:
    return _page(request, "reset-password.html", min_password=MIN_PASSWORD_LENGTH)


@router.api_route("/verify-email", methods=PAGE_METHODS)
async def verify_email_page(request: Request) -> Response:
    return _page(request, "verify-email.html")


class StaticWithHeaders:
    """Static files with nosniff and revalidation (pure ASGI: a tiny wrapper, no buffering)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *_STATIC_HEADERS]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def install_web(app: FastAPI) -> None:
    """Add the pages and mount /static on `app`."""
    app.include_router(router)
    app.mount("/static", StaticWithHeaders(StaticFiles(directory=STATIC_DIR)), name="static")
    app.mount(
        "/docs/assets",
        StaticWithHeaders(StaticFiles(directory=SWAGGER_UI_DIR)),
        name="docs-assets",
    )
