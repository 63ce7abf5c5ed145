"""GET /lang: the language switch in the pages' top bar.

A plain link (`/lang?to=ko&next=/login`), so it works by keyboard and without the script. It
only sets the `lang` cookie and sends the reader back where they were; `next` must be a path on
this origin, anything else goes to the dashboard.
"""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import RedirectResponse

from keyturn.http.locales import LANGUAGE_NAMES, remember_locale, same_origin_path

router = APIRouter(include_in_schema=False)

# A redirect, not a page: no body for a policy to guard, but never cached and never leaking
# the path it came from.
_REDIRECT_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@router.get("/lang")
async def switch_language(request: Request, to: str = "", next: str = "") -> RedirectResponse:
    """Remember the language `to` (en or ko) and go back to `next`; an unknown language
    changes nothing."""
    response = RedirectResponse(
        same_origin_path(next) or "/dashboard", status_code=303, headers=_REDIRECT_HEADERS
    )
    if to in LANGUAGE_NAMES:
        remember_locale(request, response, to)
    return response
