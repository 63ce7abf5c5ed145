"""The access check every protected request runs, and the user behind a verified token."""

from __future__ import annotations

from keyturn import errors
from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.core.cache import BoundedTtlCache
from keyturn.core.sessions import UserRecord
from keyturn.core.tokens import (
    AccessClaims,
    UnknownKeyError,
    VerifiedTokenCache,
    verify_access_token,
)
from keyturn.revocation.service import RevocationService
from keyturn.services.keyring import KeyringService
from keyturn.storage import users as user_store
from keyturn.storage.db import Database


class AccessService:
    """Checks access tokens (no I/O on the way: a hot path) and loads their users."""

    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        keyring: KeyringService,
        revocation: RevocationService,
        user_cache: BoundedTtlCache[str, UserRecord],
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._keyring = keyring
        self._revocation = revocation
        self._user_cache = user_cache
        self._token_cache = VerifiedTokenCache(settings.token_cache_size)
        self._issuer = settings.effective_issuer

    def forget_key(self, kid: str) -> None:
        """A signing key was revoked: refuse its tokens from now on, cached ones included."""
        self._keyring.forget(kid)
        self._token_cache.clear()
        self._keyring.request_reload()  # its replacement, if any, is in storage

    def authenticate(self, access_token: str) -> AccessClaims:
        """The claims of a valid, unrevoked access token. No I/O.

        Raises TokenExpiredError, InvalidTokenError, or ServiceUnavailableError when the
        revocation list cannot be trusted.
        """
        self._revocation.ensure_fresh()
        now = self._clock.timestamp()
        claims = self._token_cache.get(access_token, now=now)
        if claims is None:
            try:
                ring = self._keyring.ring
                claims = verify_access_token(
                    access_token,
                    keyring=ring,
                    issuer=self._issuer,
                    audience=self._settings.audience,
                    now=now,
                    max_lifetime_seconds=self._settings.access_ttl_seconds,
                )
            except UnknownKeyError:
                self._keyring.request_reload()  # the upkeep loop reloads keys soon
                raise
            key = ring.find(claims.key_id)
            self._token_cache.put(
                access_token, claims, trusted_until=key.trusted_until if key else now
            )
        if self._revocation.revocations.is_revoked(claims.session_id, claims.token_id):
            raise errors.InvalidTokenError("The session of this access token has ended.")
        return claims

    def cached_user(self, user_id: str) -> UserRecord | None:
        """The user from this process's cache, if it is there; no I/O."""
        return self._user_cache.get(user_id)

    def load_user(self, user_id: str) -> UserRecord:
        """The user behind a verified token; raises InvalidTokenError for a gone or disabled one."""
        with self._database.snapshot() as connection:
            user = user_store.find_user_by_id(connection, user_id)
        if user is None or user.is_disabled:
            raise errors.InvalidTokenError("The account of this access token is not active.")
        self._user_cache.put(user_id, user)
        return user
