"""The revoked-session keys other services read in Redis, and the channel that tells every
Keyturn process about a revocation at once.

Best effort only: the database's revocation feed stays the source of truth. When a write to
Redis fails, the subscriber rewrites every live revocation into Redis once it is back.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime
from math import ceil
from typing import Any

import redis.asyncio
from redis.exceptions import RedisError

from keyturn import wire
from keyturn.core.sessions import KIND_KEY, KIND_SESSION, KIND_TOKEN, KIND_USER, Revocation
from keyturn.storage.redis import RedisLink, client_options

logger = logging.getLogger("keyturn.redis")

_RESTORE_BATCH = 1000
_KEY_PREFIXES = {
    KIND_SESSION: wire.REDIS_REVOKED_SESSION_PREFIX,
    KIND_TOKEN: wire.REDIS_REVOKED_TOKEN_PREFIX,
}


def revoked_key(kind: str, subject: str) -> str | None:
    """The Redis key other services check for this revocation; None for kinds they ignore."""
    prefix = _KEY_PREFIXES.get(kind)
    return prefix + subject if prefix else None


class RevocationChannel:
    """Writes revocations where other services look (a key per session or token id, alive
    until no access token it covers can be valid) and announces them to every Keyturn
    process on one pub/sub channel."""

    def __init__(self, link: RedisLink, *, origin: str) -> None:
        self.link = link
        self.origin = origin

    def publish(self, revocations: Sequence[Revocation]) -> None:
        """Best effort, after commit: on failure the feed still delivers, and the subscriber
        rewrites the keys once Redis is back."""
        if not revocations:
            return
        if not self.link.is_up:
            self.link.request_restore()
            return
        now = time.time()
        try:
            pipeline = self.link.client.pipeline(transaction=False)
            for revocation in revocations:
                key = revoked_key(revocation.kind, revocation.subject)
                ttl_ms = _ttl_ms(revocation.expires_at.timestamp(), now=now)
                if key is not None and ttl_ms > 0:
                    pipeline.set(key, "1", px=ttl_ms)
            pipeline.publish(
                wire.REDIS_REVOCATION_CHANNEL, encode_message(self.origin, revocations)
            )
            pipeline.execute()
        except RedisError as error:
            self.link.mark_down(error)

    def restore(self, sessions: dict[str, float], tokens: dict[str, float]) -> int:
        """Blocking: write every live revocation's key again (after an outage or a Redis
        restart that lost them). Returns how many keys were written."""
        now = time.time()
        entries = [
            (wire.REDIS_REVOKED_SESSION_PREFIX + subject, _ttl_ms(until, now=now))
            for subject, until in sessions.items()
        ] + [
            (wire.REDIS_REVOKED_TOKEN_PREFIX + subject, _ttl_ms(until, now=now))
            for subject, until in tokens.items()
        ]
        entries = [(key, ttl_ms) for key, ttl_ms in entries if ttl_ms > 0]
        for start in range(0, len(entries), _RESTORE_BATCH):
            pipeline = self.link.client.pipeline(transaction=False)
            for key, ttl_ms in entries[start : start + _RESTORE_BATCH]:
                pipeline.set(key, "1", px=ttl_ms)
            pipeline.execute()
        return len(entries)

    @contextlib.asynccontextmanager
    async def subscription(self) -> AsyncIterator[RevocationSubscription]:
        """Subscribe on a connection of the running event loop; raises RedisError."""
        client = redis.asyncio.Redis.from_url(self.link.url, **client_options(for_asyncio=True))
        pubsub = client.pubsub(ignore_subscribe_messages=True)
        try:
            await pubsub.subscribe(wire.REDIS_REVOCATION_CHANNEL)
            yield RevocationSubscription(pubsub, origin=self.origin)
        finally:
            with contextlib.suppress(RedisError, OSError):
                await pubsub.aclose()
            with contextlib.suppress(RedisError, OSError):
                await client.aclose()


class RevocationSubscription:
    def __init__(self, pubsub: Any, *, origin: str) -> None:
        self._pubsub = pubsub
        self._origin = origin

    async def receive(self, *, timeout: float) -> list[Revocation]:
        """Revocations other processes announced, or [] when none came within `timeout`.
        Raises RedisError when the connection is lost."""
        message = await self._pubsub.get_message(ignore_subscribe_messages=True, timeout=timeout)
        if message is None or message.get("type") != "message":
            return []
        origin, revocations = decode_message(message.get("data"))
        return [] if origin == self._origin else revocations


def _ttl_ms(until: float, *, now: float) -> int:
    # Relative, not PXAT: Redis may run on a host whose clock disagrees with ours.
    return ceil((until - now) * 1000)


def encode_message(origin: str, revocations: Iterable[Revocation]) -> str:
    return json.dumps(
        {
            "origin": origin,
            "revocations": [
                [revocation.kind, revocation.subject, revocation.expires_at.timestamp()]
                for revocation in revocations
            ],
        },
        separators=(",", ":"),
    )


def decode_message(data: Any) -> tuple[str | None, list[Revocation]]:
    """(origin, revocations) of a channel message; anything malformed is skipped."""
    try:
        payload = json.loads(data)
        origin = payload.get("origin")
        items = payload.get("revocations")
    except (TypeError, ValueError, AttributeError):
        logger.warning("ignored a malformed revocation message")
        return None, []
    revocations: list[Revocation] = []
    for item in items if isinstance(items, list) else []:
        if not (isinstance(item, list) and len(item) == 3):
            continue
        kind, subject, expires_at = item
        if (
            kind in (KIND_SESSION, KIND_TOKEN, KIND_USER, KIND_KEY)
            and isinstance(subject, str)
            and 0 < len(subject) <= 128
            and isinstance(expires_at, int | float)
            and not isinstance(expires_at, bool)
        ):
            try:
                when = datetime.fromtimestamp(expires_at, UTC)
            except (OverflowError, OSError, ValueError):
                continue
            revocations.append(Revocation(id=0, kind=kind, subject=subject, expires_at=when))
    return origin if isinstance(origin, str) else None, revocations
