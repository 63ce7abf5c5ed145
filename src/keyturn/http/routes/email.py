"""/api/auth/email and /api/auth/password/{forgot,reset}: accounts by email.

Links in mail carry their token in the URL fragment, which browsers never send: the pages
read it there and post it here in a JSON body, so no token reaches an access log.
"""

from __future__ import annotations

import functools
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from keyturn.http.deps import (
    BEARER_SECURITY,
    Claims,
    ContextDep,
    LocaleDep,
    RecentClaims,
    ServicesDep,
)
from keyturn.http.schemas import (
    Accepted,
    EmailChangeRequest,
    EmailTokenRequest,
    ForgotPasswordRequest,
    PasswordResetRequest,
    Problem,
    UserEnvelope,
    UserOut,
)
from keyturn.services.recovery import RESET_LINK_SENT

router = APIRouter(prefix="/api/auth", tags=["accounts by email"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "Malformed request"},
    422: {"model": Problem, "description": "Invalid fields"},
    503: {"model": Problem, "description": "A dependency is unavailable"},
}
_INVALID_LINK: dict[int | str, dict[str, Any]] = {
    400: {
        "model": Problem,
        "description": "`invalid_token`: unknown, used, expired or tampered (or a malformed body)",
    }
}
_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"model": Problem, "description": "Too many requests; see Retry-After"}
}
_SIGNED_IN: dict[int | str, dict[str, Any]] = {
    401: {"model": Problem, "description": "Missing, expired or invalid access token"},
    403: {"model": Problem, "description": "CSRF check failed (cookie mode)"},
}


@router.post(
    "/email/verify",
    response_model=UserEnvelope,
    responses={
        **_ERRORS,
        **_INVALID_LINK,
        409: {
            "model": Problem,
            "description": "`email_taken`: the new address of an email change was taken since",
        },
    },
)
async def verify_email(
    body: EmailTokenRequest, services: ServicesDep, context: ContextDep
) -> UserEnvelope:
    """Use the token of a mailed link: a verification link confirms the address, an
    email-change link moves the account to its new (confirmed) address. 400 `invalid_token`
    for an unknown, used, expired or tampered token; 409 `email_taken` when another account
    took the new address meanwhile."""
    user = await run_in_threadpool(services.recovery.verify_email, body.token, context=context)
    return UserEnvelope(user=UserOut.of(user))


@router.post(
    "/email/verify/resend",
    status_code=202,
    response_class=Response,  # 202 with an empty body, documented as such
    responses={**_ERRORS, **_SIGNED_IN, **_LIMITED},
    openapi_extra=BEARER_SECURITY,
)
async def resend_verification(
    claims: Claims, services: ServicesDep, context: ContextDep, locale: LocaleDep
) -> Response:
    """Mail a new verification link to the caller's address (nothing when it is verified
    already). 429 with `Retry-After` past `KEYTURN_EMAIL_MAX_PER_ADDRESS` per window."""
    await run_in_threadpool(
        services.recovery.resend_verification, claims.subject, locale=locale, context=context
    )
    return Response(status_code=202)


@router.post(
    "/email/change",
    status_code=202,
    response_class=Response,  # 202 with an empty body, documented as such
    responses={
        **_ERRORS,
        **_SIGNED_IN,
        **_LIMITED,
        403: {"model": Problem, "description": "reauthentication_required; or csrf_failed"},
    },
    openapi_extra=BEARER_SECURITY,
)
async def change_email(
    body: EmailChangeRequest,
    request: Request,
    claims: RecentClaims,
    services: ServicesDep,
    context: ContextDep,
    locale: LocaleDep,
) -> Response:
    """Ask to move the account to `new_email`: that address gets a confirmation link, the
    current one a notice; nothing changes until the link is used. The answer is the same
    whether or not another account has the address. 401 `invalid_credentials` for a wrong
    password (counted like failed logins: 429 past the limits); 422 `invalid_email`; 403
    `reauthentication_required` when the login is not recent."""
    await services.hashing.run(
        functools.partial(
            services.recovery.request_email_change,
            claims.subject,
            new_email=body.new_email,
            current_password=body.current_password,
            locale=locale,
            context=context,
        ),
        gone=request.is_disconnected,
    )
    return Response(status_code=202)


@router.post(
    "/password/forgot", status_code=202, response_model=Accepted, responses={**_ERRORS, **_LIMITED}
)
async def forgot_password(
    body: ForgotPasswordRequest, services: ServicesDep, context: ContextDep, locale: LocaleDep
) -> JSONResponse:
    """Mail a password-reset link to the account with this address, if any: the answer and
    its timing are the same either way. 429 with `Retry-After` past the limits per client
    address and per email address; 422 `invalid_email` for something that is no address."""
    await run_in_threadpool(
        services.recovery.request_password_reset, body.email, locale=locale, context=context
    )
    return JSONResponse(
        Accepted(message=RESET_LINK_SENT).model_dump(), status_code=202, headers=NO_STORE
    )


@router.post("/password/reset", status_code=204, responses={**_ERRORS, **_INVALID_LINK})
async def reset_password(
    body: PasswordResetRequest,
    request: Request,
    services: ServicesDep,
    context: ContextDep,
    locale: LocaleDep,
) -> Response:
    """Choose a new password with the token of a reset link. Every session of the user ends
    at once, the account's login lockout is cleared, and a notice is mailed. 400
    `invalid_token` (unknown, used, expired, tampered, or superseded by a newer link or a
    password change); 422 `weak_password` with `reasons` (the link stays usable)."""
    await services.hashing.run(
        functools.partial(
            services.recovery.reset_password,
            body.token,
            new_password=body.new_password,
            locale=locale,
            context=context,
        ),
        gone=request.is_disconnected,
    )
    return Response(status_code=204)
