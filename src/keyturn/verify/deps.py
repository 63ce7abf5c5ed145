"""FastAPI dependencies for services that trust Keyturn (an opt-in import: loads FastAPI).

Example:
    >>> from typing import Annotated
    >>> from fastapi import Depends, FastAPI
    >>> from keyturn.verify import AccessClaims, Verifier
    >>> from keyturn.verify.deps import KeyturnBearer, install_error_handler
    >>> bearer = KeyturnBearer(Verifier("http://127.0.0.1:8000"))
    >>> app = FastAPI()
    >>> install_error_handler(app)
    >>> @app.get("/notes")
    ... async def notes(principal: Annotated[AccessClaims, Depends(bearer)]) -> dict:
    ...     return {"owner": principal.subject}
    >>> @app.get("/reports", dependencies=[Depends(bearer.requires_role("admin"))])
    ... async def reports() -> dict:
    ...     return {}
    >>> @app.post("/payouts", dependencies=[Depends(bearer.requires_mfa())])
    ... async def payouts() -> dict:
    ...     return {}
"""

# No `from __future__ import annotations`: FastAPI reads the dependency's annotation at run
# time, and `Depends(self)` inside requires_role only resolves when evaluated in place.
from collections.abc import Awaitable, Callable
from typing import Annotated

from fastapi import Depends, FastAPI, Request
from fastapi.responses import JSONResponse

from keyturn.core.tokens import AccessClaims
from keyturn.errors import (
    InsufficientRoleError,
    InsufficientUserAuthenticationError,
    InvalidTokenError,
    KeyturnError,
    MissingTokenError,
)
from keyturn.verify._verifier import Verifier


class KeyturnBearer:
    """A dependency giving the verified claims of the request's `Authorization: Bearer`
    token (the "current principal").

    Raises MissingTokenError, TokenExpiredError or InvalidTokenError (401 with
    `WWW-Authenticate`, once `install_error_handler` is installed), ServiceUnavailableError.
    """

    def __init__(self, verifier: Verifier) -> None:
        self.verifier = verifier

    async def __call__(self, request: Request) -> AccessClaims:
        header = request.headers.get("authorization")
        if header is None:
            raise MissingTokenError()
        scheme, _, token = header.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token or " " in token:
            raise InvalidTokenError("The Authorization header must be 'Bearer <token>'.")
        return await self.verifier.averify(token)

    def requires_role(self, role: str) -> Callable[..., Awaitable[AccessClaims]]:
        """A dependency that lets only tokens carrying `role` through (403 otherwise)."""

        async def check(claims: Annotated[AccessClaims, Depends(self)]) -> AccessClaims:
            if not claims.has_role(role):
                raise InsufficientRoleError()
            return claims

        return check

    def requires_mfa(self) -> Callable[..., Awaitable[AccessClaims]]:
        """A dependency that lets only tokens of a login with a second factor through
        (`"mfa"` in their `amr`); others get 403 `insufficient_user_authentication`
        (RFC 9470), after which the client should log in again with its second factor."""

        async def check(claims: Annotated[AccessClaims, Depends(self)]) -> AccessClaims:
            if not claims.used_second_factor:
                raise InsufficientUserAuthenticationError()
            return claims

        return check


async def keyturn_error_response(_request: Request, exc: Exception) -> JSONResponse:
    """Render a refusal as Keyturn does: `{"error", "message"}` plus its headers."""
    if not isinstance(exc, KeyturnError):
        raise exc
    return JSONResponse(
        {"error": exc.code, "message": exc.message}, status_code=exc.status, headers=exc.headers()
    )


def install_error_handler(app: FastAPI) -> None:
    """Make the dependencies' refusals proper 401/403/503 answers in `app`."""
    app.add_exception_handler(KeyturnError, keyturn_error_response)
