"""The language of a page: chosen from the `lang` cookie or Accept-Language, spoken by Jinja.

One Jinja environment serves every language: its gettext functions look up the `locale` that
each page's context carries, so a request never changes state another request can see. The
catalogs are `web/locale/<locale>/LC_MESSAGES/messages.po`, compiled in memory by
`keyturn.i18n` (docs/browser-mode.md says how to extract and translate).
"""

from __future__ import annotations

import gettext
from importlib import resources
from pathlib import Path
from typing import Any, Final
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, pass_context
from jinja2.runtime import Context
from starlette.requests import Request
from starlette.responses import Response

from keyturn import wire
from keyturn.http import cookies
from keyturn.i18n import DEFAULT_LOCALE, LOCALES, load_translations, negotiate_locale

WEB_DIR: Final = Path(str(resources.files("keyturn.web")))
CATALOGS: Final = WEB_DIR / "locale"
# Each language is named in itself, so a reader who cannot read the page still finds theirs.
LANGUAGE_NAMES: Final = {"en": "English", "ko": "한국어"}
LANG_COOKIE_MAX_AGE: Final = 365 * 24 * 3600


def page_locale(request: Request) -> str:
    """The language to speak to this caller, on pages and in mails: the `lang` cookie when
    it names a language Keyturn speaks (their choice), else Accept-Language, else English."""
    return negotiate_locale(
        request.headers.get("accept-language"), chosen=request.cookies.get(wire.COOKIE_LANG)
    )


def page_context(request: Request) -> dict[str, Any]:
    """What base.html needs to speak the reader's language and offer the others."""
    here = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return {"locale": page_locale(request), "languages": LANGUAGE_NAMES, "here": here}


def same_origin_path(candidate: str | None) -> str | None:
    """`candidate` when it is a path on this origin, else None: a redirect to anything else
    (`//evil.example`, `/\\evil.example`, `https://…`) would make Keyturn an open redirect."""
    if not candidate or not candidate.startswith("/") or candidate.startswith(("//", "/\\")):
        return None
    if any(ord(character) < 0x20 or character in "\\\x7f" for character in candidate):
        return None
    parts = urlsplit(candidate)
    if parts.scheme or parts.netloc:
        return None
    return candidate


def remember_locale(request: Request, response: Response, locale: str) -> None:
    """Keep the reader's choice for a year. Lax: following a link from elsewhere still shows
    their language; Secure whenever the session cookies are."""
    response.set_cookie(
        wire.COOKIE_LANG,
        locale,
        max_age=LANG_COOKIE_MAX_AGE,
        path="/",
        secure=cookies.cookie_names(request).secure,
        httponly=True,
        samesite="lax",
    )


@pass_context
def _gettext(context: Context, message: str) -> str:
    return _translations(context).gettext(message)


@pass_context
def _ngettext(context: Context, singular: str, plural: str, count: int) -> str:
    return _translations(context).ngettext(singular, plural, count)


def _translations(context: Context) -> gettext.NullTranslations:
    locale = context.get("locale", DEFAULT_LOCALE)
    return load_translations(CATALOGS, locale if locale in LOCALES else DEFAULT_LOCALE)


def page_environment(templates: Path) -> Environment:
    """A Jinja environment for the pages with `{% trans %}` and `_()` in the page's language."""
    environment = Environment(
        loader=FileSystemLoader(templates), autoescape=True, extensions=["jinja2.ext.i18n"]
    )
    environment.install_gettext_callables(  # type: ignore[attr-defined]
        _gettext, _ngettext, newstyle=True
    )
    return environment
