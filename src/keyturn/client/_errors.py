"""The SDK's own errors (it does not import the server's)."""

from __future__ import annotations


class KeyturnClientError(Exception):
    """Something the SDK could not do; `code` is Keyturn's wire code when the server gave one."""

    def __init__(self, message: str, *, code: str | None = None, status: int | None = None):
        super().__init__(message)
        self.code = code
        self.status = status


class LoginFailedError(KeyturnClientError):
    """Keyturn refused the email/username and password (or locked the account for a while)."""


class SessionEndedError(KeyturnClientError):
    """The session cannot be renewed (logged out, expired or revoked) and there are no
    credentials to log in again with."""
