"""Verify Keyturn access tokens in your own services.

Example:
    >>> from keyturn.verify import Verifier
    >>> verifier = Verifier("http://127.0.0.1:8000", redis_url="redis://127.0.0.1:6379/0")
    >>> claims = verifier.verify(token)  # doctest: +SKIP

FastAPI and Starlette dependencies are in `keyturn.verify.deps` (an opt-in import). Importing
this package loads neither SQLAlchemy, FastAPI nor Redis (Redis only when `redis_url` is used).
"""

from keyturn.core.tokens import AccessClaims
from keyturn.errors import InvalidTokenError, KeyturnError, TokenExpiredError
from keyturn.verify._jwks import JwksCache
from keyturn.verify._verifier import Verifier

__all__ = [
    "AccessClaims",
    "InvalidTokenError",
    "JwksCache",
    "KeyturnError",
    "TokenExpiredError",
    "Verifier",
]
