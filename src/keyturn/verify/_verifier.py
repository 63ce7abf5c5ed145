"""Verifying Keyturn access tokens in another service, with the same checks Keyturn runs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import jwt

from keyturn import wire
from keyturn.core.keys import KeyRing
from keyturn.core.tokens import (
    AccessClaims,
    UnknownKeyError,
    VerifiedTokenCache,
    verify_access_token,
)
from keyturn.errors import InvalidTokenError, ServiceUnavailableError
from keyturn.verify._jwks import JwksCache

JWKS_PATH = "/.well-known/jwks.json"


class Verifier:
    """Checks access tokens: signature by the issuer's JWKS (`kid`, pinned `alg`, `typ`),
    `iss`, `aud`, `exp`; with `redis_url`, also whether Keyturn has ended the token's session
    or revoked the token (the keys Keyturn writes when it runs with KEYTURN_REDIS_URL).

    Example:
        >>> verifier = Verifier("http://127.0.0.1:8000")  # Keyturn's KEYTURN_ISSUER
        >>> claims = verifier.verify(access_token)  # doctest: +SKIP
        >>> claims.subject, claims.roles  # doctest: +SKIP
        ('4f0c…', ('user',))

    Without Redis a logged-out token stays valid here until it expires (at most
    KEYTURN_ACCESS_TTL_SECONDS). Raises TokenExpiredError, InvalidTokenError, or
    ServiceUnavailableError (keys or Redis unreachable: refuse rather than guess).
    """

    def __init__(
        self,
        issuer: str,
        *,
        audience: str = "keyturn",
        jwks_url: str | None = None,
        jwks: JwksCache | None = None,
        redis_url: str | None = None,
        cache_size: int = 10000,
        clock: Callable[[], float] = time.time,
        http_transport: httpx.BaseTransport | None = None,
        async_http_transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.issuer = issuer.rstrip("/")
        self.audience = audience
        self.jwks = jwks or JwksCache(
            jwks_url or self.issuer + JWKS_PATH,
            transport=http_transport,
            async_transport=async_http_transport,
        )
        self._redis_url = redis_url
        self._redis: Any = None
        self._async_redis: Any = None
        self._clock = clock
        self._cache = VerifiedTokenCache(cache_size)
        self._cache_lock = threading.Lock()

    def verify(self, token: str) -> AccessClaims:
        """The claims of a valid access token (blocking: may fetch keys, ask Redis)."""
        claims = self._cached(token)
        if claims is None:
            claims = self._check(token, self.jwks.keyring())
            if claims is None:
                claims = self._check_again(token, self.jwks.keyring(missing_kid=_kid(token)))
            self._remember(token, claims)
        if self._redis_url is not None:
            self._refuse_if_revoked(claims, self._count_revoked_sync(claims, self._redis_url))
        return claims

    async def averify(self, token: str) -> AccessClaims:
        """`verify()` for asyncio code: key fetches and Redis calls do not block the loop."""
        claims = self._cached(token)
        if claims is None:
            claims = self._check(token, await self.jwks.akeyring())
            if claims is None:
                ring = await self.jwks.akeyring(missing_kid=_kid(token))
                claims = self._check_again(token, ring)
            self._remember(token, claims)
        if self._redis_url is not None:
            self._refuse_if_revoked(
                claims, await self._count_revoked_async(claims, self._redis_url)
            )
        return claims

    def _cached(self, token: str) -> AccessClaims | None:
        with self._cache_lock:
            return self._cache.get(token, now=self._clock())

    def _remember(self, token: str, claims: AccessClaims) -> None:
        with self._cache_lock:
            self._cache.put(token, claims)

    def _check(self, token: str, ring: KeyRing) -> AccessClaims | None:
        """The claims, or None when the token names a key we do not hold (yet)."""
        try:
            return self._check_again(token, ring)
        except UnknownKeyError:
            return None

    def _check_again(self, token: str, ring: KeyRing) -> AccessClaims:
        return verify_access_token(
            token, keyring=ring, issuer=self.issuer, audience=self.audience, now=self._clock()
        )

    def _refuse_if_revoked(self, claims: AccessClaims, revoked: int) -> None:
        if revoked:
            raise InvalidTokenError("The session of this access token has ended.")

    def _revocation_keys(self, claims: AccessClaims) -> tuple[str, str]:
        return (
            wire.REDIS_REVOKED_SESSION_PREFIX + claims.session_id,
            wire.REDIS_REVOKED_TOKEN_PREFIX + claims.token_id,
        )

    def _count_revoked_sync(self, claims: AccessClaims, url: str) -> int:
        import redis  # only a service that asked for the Redis check loads redis

        if self._redis is None:
            self._redis = redis.Redis.from_url(url, socket_timeout=1.0, socket_connect_timeout=1.0)
        try:
            return int(self._redis.exists(*self._revocation_keys(claims)))
        except redis.RedisError as exc:
            raise _redis_down() from exc

    async def _count_revoked_async(self, claims: AccessClaims, url: str) -> int:
        import redis
        import redis.asyncio

        if self._async_redis is None:
            self._async_redis = redis.asyncio.Redis.from_url(
                url, socket_timeout=1.0, socket_connect_timeout=1.0
            )
        try:
            return int(await self._async_redis.exists(*self._revocation_keys(claims)))
        except redis.RedisError as exc:
            raise _redis_down() from exc

    def close(self) -> None:
        if self._redis is not None:
            self._redis.close()
            self._redis = None

    async def aclose(self) -> None:
        if self._async_redis is not None:
            await self._async_redis.aclose()
            self._async_redis = None


def _kid(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.PyJWTError:
        return None
    return kid if isinstance(kid, str) else None


def _redis_down() -> ServiceUnavailableError:
    # Fail closed: without the revocation list a logged-out token could pass.
    return ServiceUnavailableError("Cannot check revoked sessions (Redis is unreachable).")
