"""The issuer's public keys (RFC 7517 JWKS), fetched with httpx and kept as a KeyRing.

A token naming an unknown `kid` triggers a refetch, but at most once per `min_refetch_seconds`:
a flood of tokens with made-up kids costs Keyturn one request per interval, not one per token.
Keyturn publishes a rotated-in key 10 seconds before it signs with it; keeping the interval
below that (5 seconds by default) means a real new key is always fetched in time.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx

from keyturn.core.keys import KeyRing, SigningKey, public_key_from_jwk
from keyturn.errors import ServiceUnavailableError

logger = logging.getLogger("keyturn.verify")

MAX_JWKS_BYTES = 1 << 20


class JwksCache:
    """Keys from `url`, refetched on an unknown kid (throttled) and after `max_age_seconds`.

    `transport` / `async_transport` are for tests. Raises ServiceUnavailableError when no
    key has ever been fetched and the URL cannot be read.
    """

    def __init__(
        self,
        url: str,
        *,
        min_refetch_seconds: float = 5.0,
        max_age_seconds: float = 300.0,
        timeout: float = 5.0,
        transport: httpx.BaseTransport | None = None,
        async_transport: httpx.AsyncBaseTransport | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.min_refetch_seconds = min_refetch_seconds
        self.max_age_seconds = max_age_seconds
        self.fetches = 0
        self._timeout = timeout
        self._transport = transport
        self._async_transport = async_transport
        self._monotonic = monotonic
        self._ring = KeyRing([])
        self._attempted_at: float | None = None
        self._lock = threading.Lock()
        self._async_lock = asyncio.Lock()

    def keyring(self, *, missing_kid: str | None = None) -> KeyRing:
        """The keys, fetched first when never fetched, too old, or (throttled) when
        `missing_kid` is not among them."""
        if self._is_due(missing_kid):
            with self._lock:
                if self._is_due(missing_kid):
                    self._attempted_at = self._monotonic()
                    try:
                        with httpx.Client(timeout=self._timeout, transport=self._transport) as http:
                            self._accept(http.get(self.url))
                    except httpx.HTTPError as exc:
                        self._fetch_failed(exc)
        return self._ring

    async def akeyring(self, *, missing_kid: str | None = None) -> KeyRing:
        """`keyring()` for asyncio code: the fetch does not block the event loop."""
        if self._is_due(missing_kid):
            async with self._async_lock:
                if self._is_due(missing_kid):
                    self._attempted_at = self._monotonic()
                    try:
                        async with httpx.AsyncClient(
                            timeout=self._timeout, transport=self._async_transport
                        ) as http:
                            self._accept(await http.get(self.url))
                    except httpx.HTTPError as exc:
                        self._fetch_failed(exc)
        return self._ring

    def _is_due(self, missing_kid: str | None) -> bool:
        if self._attempted_at is None:
            return True
        age = self._monotonic() - self._attempted_at
        if age >= self.max_age_seconds:
            return True
        return (
            missing_kid is not None
            and missing_kid not in self._ring
            and (age >= self.min_refetch_seconds)
        )

    def _accept(self, response: httpx.Response) -> None:
        self.fetches += 1
        if response.status_code != 200 or len(response.content) > MAX_JWKS_BYTES:
            raise httpx.HTTPStatusError(
                f"JWKS answered {response.status_code}", request=response.request, response=response
            )
        try:
            document: Any = response.json()
        except ValueError as exc:
            raise httpx.DecodingError("the JWKS is not JSON", request=response.request) from exc
        entries = document.get("keys") if isinstance(document, dict) else None
        if not isinstance(entries, list):
            raise httpx.DecodingError("the JWKS has no keys list", request=response.request)
        keys: list[SigningKey] = []
        for entry in entries:
            try:
                keys.append(public_key_from_jwk(entry))
            except (ValueError, AttributeError) as exc:
                logger.warning("skipping a JWKS entry: %s", exc)
        self._ring = KeyRing(keys)

    def _fetch_failed(self, exc: Exception) -> None:
        logger.warning("cannot read the JWKS at %s: %s", self.url, exc)
        if len(self._ring) == 0:
            raise ServiceUnavailableError(
                "The token issuer's public keys cannot be fetched; try again shortly."
            ) from exc
