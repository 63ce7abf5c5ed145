"""/oauth: the OAuth 2.0 face of login, refresh and logout (RFC 6749 password and refresh_token
grants, RFC 7009 revocation).

The same services as /api/auth run behind it: the same rotation, reuse detection, lockout and
audit. Refusals become RFC 6749 §5.2 bodies in http/problems.py (OAUTH_ERRORS), not here.
Keyturn knows only public clients (RFC 6749 §2.1): a `client_id` is taken as the caller's
name for itself and recorded on the session; a client secret is refused, as there is none to
check it against.
"""

from __future__ import annotations

import base64
import binascii
import functools
import re
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, unquote_plus

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from keyturn import errors, wire
from keyturn.core.context import RequestContext
from keyturn.http.deps import ContextDep, ServicesDep
from keyturn.http.schemas import Problem
from keyturn.services.issuing import IssuedTokens

router = APIRouter(prefix="/oauth", tags=["oauth"])

NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}  # RFC 6749 §5.1
FORM_CONTENT_TYPE = "application/x-www-form-urlencoded"
MAX_FIELDS = 16
_CLIENT_ID = re.compile(r"[A-Za-z0-9._:-]{1,64}")
_MAX_LENGTHS = {"username": 320, "password": 1024, "refresh_token": 8192, "token": 8192}
_FORM_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            FORM_CONTENT_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["grant_type"],
                    "properties": {
                        "grant_type": {"type": "string", "enum": ["password", "refresh_token"]},
                        "username": {"type": "string", "description": "email or username"},
                        "password": {"type": "string", "format": "password"},
                        "refresh_token": {"type": "string"},
                        "client_id": {"type": "string"},
                    },
                }
            }
        },
    }
}
_REVOKE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            FORM_CONTENT_TYPE: {
                "schema": {
                    "type": "object",
                    "required": ["token"],
                    "properties": {
                        "token": {"type": "string"},
                        "token_type_hint": {
                            "type": "string",
                            "enum": ["access_token", "refresh_token"],
                        },
                        "client_id": {"type": "string"},
                    },
                }
            }
        },
    }
}
_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "RFC 6749 §5.2 error (`invalid_grant`, …)"},
    401: {"model": Problem, "description": "`invalid_client`"},
    429: {"model": Problem, "description": "Too many failed logins; see Retry-After"},
}


async def read_form(request: Request) -> dict[str, str]:
    """The form parameters; InvalidRequestError for another content type, bad encoding, or a
    parameter sent twice (RFC 6749 §3.1)."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type != FORM_CONTENT_TYPE:
        raise errors.InvalidRequestError(f"Send the parameters as {FORM_CONTENT_TYPE}.")
    body = await request.body()
    try:
        pairs = parse_qsl(
            body.decode("ascii"),
            keep_blank_values=True,
            max_num_fields=MAX_FIELDS,
            encoding="utf-8",
            errors="strict",
        )
    except (UnicodeDecodeError, ValueError) as exc:
        raise errors.InvalidRequestError("The form body is not valid.") from exc
    form: dict[str, str] = {}
    for name, value in pairs:
        if name in form:
            raise errors.InvalidRequestError(f"The parameter `{name}` is repeated.")
        if "\x00" in value or len(value) > _MAX_LENGTHS.get(name, 1024):
            raise errors.InvalidRequestError(f"The parameter `{name}` is not valid.")
        form[name] = value
    return form


def client_of(request: Request, form: dict[str, str], context: RequestContext) -> RequestContext:
    """The context with the public client's id, from the form or HTTP Basic (RFC 6749 §2.3.1).

    Raises InvalidClientError for a client secret or a malformed id.
    """
    client_id = form.get("client_id", "")
    secret = form.get("client_secret", "")
    header = request.headers.get("authorization")
    if header is not None:
        scheme, _, encoded = header.partition(" ")
        if scheme.lower() != "basic":
            raise errors.InvalidClientError("Only HTTP Basic client authentication is known.")
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise errors.InvalidClientError("The Basic credentials are malformed.") from exc
        basic_id, separator, basic_secret = decoded.partition(":")
        if not separator:
            raise errors.InvalidClientError("The Basic credentials are malformed.")
        basic_id, basic_secret = unquote_plus(basic_id), unquote_plus(basic_secret)
        if client_id and basic_id and basic_id != client_id:
            raise errors.InvalidRequestError("Two different client ids were sent.")
        client_id, secret = client_id or basic_id, secret or basic_secret
    if secret:
        raise errors.InvalidClientError(
            "Keyturn registers no confidential clients; send only a client_id."
        )
    if not client_id:
        return context
    if not _CLIENT_ID.fullmatch(client_id):
        raise errors.InvalidClientError("The client_id is not valid.")
    return replace(context, client_id=client_id)


def required(form: dict[str, str], name: str) -> str:
    value = form.get(name)
    if not value:
        raise errors.InvalidRequestError(f"The parameter `{name}` is required.")
    return value


def token_response(issued: IssuedTokens) -> JSONResponse:
    """RFC 6749 §5.1: the token response, never cached."""
    body = {
        "access_token": issued.access_token,
        "token_type": wire.TOKEN_TYPE_BEARER,
        "expires_in": issued.expires_in,
        "refresh_token": issued.refresh_token,
    }
    return JSONResponse(body, headers=NO_STORE)


@router.post("/token", responses=_ERRORS, openapi_extra=_FORM_BODY)
async def token(request: Request, services: ServicesDep, context: ContextDep) -> JSONResponse:
    """The token endpoint (RFC 6749 §3.2), form-encoded.

    `grant_type=password` with `username` (an email or a username) and `password`: logs in
    (§4.3). `grant_type=refresh_token` with `refresh_token`: rotates it (§6), exactly as
    `POST /api/auth/refresh`. Errors per §5.2: `invalid_request`, `invalid_grant` (wrong
    password, disabled account, bad, expired or reused refresh token), `invalid_client`
    (401), `unsupported_grant_type`, `invalid_scope`; 429 with `Retry-After` past the
    failed-login limit.
    """
    form = await read_form(request)
    context = client_of(request, form, context)
    grant_type = required(form, "grant_type")
    if form.get("scope", "").strip():
        raise errors.InvalidScopeError()
    issued: IssuedTokens
    if grant_type == "password":
        username, password = required(form, "username"), required(form, "password")
        issued = await services.hashing.run(
            functools.partial(
                services.login.login, identifier=username, password=password, context=context
            ),
            gone=request.is_disconnected,
        )
    elif grant_type == "refresh_token":
        refresh_token = required(form, "refresh_token")
        issued = await services.rotation.rotate_refresh_token(refresh_token, context=context)
    else:
        raise errors.UnsupportedGrantTypeError()
    return token_response(issued)


@router.post(
    "/revoke",
    response_class=Response,  # 200 with an empty body (RFC 7009 §2.2), documented as such
    responses=_ERRORS,
    openapi_extra=_REVOKE_BODY,
)
async def revoke(request: Request, services: ServicesDep, context: ContextDep) -> Response:
    """Token revocation (RFC 7009), form-encoded `token` and optional `token_type_hint`.

    A refresh token ends its session: the refresh token and every access token of the
    session stop working at once, as with logout. An access token is revoked alone, by its
    `jti`. 200 whether or not the token was known (§2.2); the hint is not needed.
    """
    form = await read_form(request)
    context = client_of(request, form, context)
    await run_in_threadpool(services.sessions.revoke, required(form, "token"), context=context)
    return Response(status_code=200, headers=NO_STORE)
