"""Keyturn's client SDK: httpx authentication that logs in, refreshes by itself, and never
sends a refresh token twice.

Example:
    >>> import httpx
    >>> from keyturn.client import KeyturnAuth
    >>> auth = KeyturnAuth("http://127.0.0.1:8000", email="ada@example.com",
    ...                    password="correct horse battery staple")  # doctest: +SKIP
    >>> httpx.get("http://127.0.0.1:8000/api/auth/me", auth=auth).json()  # doctest: +SKIP

Needs only httpx: importing it loads neither SQLAlchemy, FastAPI nor Redis.
"""

from keyturn.client._auth import AsyncKeyturnAuth, KeyturnAuth
from keyturn.client._errors import KeyturnClientError, LoginFailedError, SessionEndedError
from keyturn.client._store import FileTokenStore, MemoryTokenStore, Tokens, TokenStore

__all__ = [
    "AsyncKeyturnAuth",
    "FileTokenStore",
    "KeyturnAuth",
    "KeyturnClientError",
    "LoginFailedError",
    "MemoryTokenStore",
    "SessionEndedError",
    "TokenStore",
    "Tokens",
]
