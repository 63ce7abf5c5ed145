"""Background upkeep of a running server: the revocation feed, the Redis revocation channel,
key reloads, purging old rows."""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import TypeVar

from anyio import CapacityLimiter, to_thread
from redis.exceptions import RedisError
from sqlalchemy.engine import Connection

from keyturn.clock import Clock
from keyturn.config import Settings
from keyturn.errors import ServiceUnavailableError
from keyturn.mail.sender import MailSender
from keyturn.revocation.channel import RevocationChannel
from keyturn.revocation.feed import RevocationFeed
from keyturn.revocation.service import RevocationService
from keyturn.services.keyring import KeyringService
from keyturn.storage import email_tokens as email_token_store
from keyturn.storage import mfa_challenges as challenge_store
from keyturn.storage import passkeys as passkey_store
from keyturn.storage import rate_limits as rate_limit_store
from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage import revocations as revocation_store
from keyturn.storage import sessions as session_store
from keyturn.storage.db import Database
from keyturn.storage.redis import RETRY_PAUSE_SECONDS

logger = logging.getLogger("keyturn.upkeep")
Result = TypeVar("Result")
_KEY_RELOAD_EVERY = 4  # polls
PURGE_BATCH = 5000  # rows a purge transaction deletes at most
CHECKPOINT_EVERY_SECONDS = 1.0
KEY_ROTATION_CHECK_SECONDS = 60.0  # how late a scheduled rotation may be


class Upkeep:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        clock: Clock,
        *,
        revocation: RevocationService,
        feed: RevocationFeed,
        keyring: KeyringService,
        channel: RevocationChannel | None = None,
        mail: MailSender | None = None,
    ) -> None:
        self._settings = settings
        self._database = database
        self._clock = clock
        self._revocation = revocation
        self._feed = feed
        self._keyring = keyring
        self._channel = channel
        self._mail = mail
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = asyncio.Event()
        self._feed_threads: CapacityLimiter | None = None
        self._chore_threads: CapacityLimiter | None = None

    def start(self) -> None:
        self._stopping = asyncio.Event()
        # Upkeep's threads are its own, never the shared pool that requests use: a crowd of
        # requests (logins waiting for hashes, a slow database) holding every shared thread
        # would otherwise hold up the poll, the revocation list would go stale, and every
        # token check would answer 503. The feed has a thread of its own, so a long purge
        # never delays it either.
        self._feed_threads = CapacityLimiter(1)
        self._chore_threads = CapacityLimiter(2)
        self._tasks = [
            asyncio.create_task(self._poll_forever(), name="keyturn-revocation-feed"),
            asyncio.create_task(self._purge_forever(), name="keyturn-purge"),
        ]
        if self._settings.key_rotation_days > 0:
            self._tasks.append(
                asyncio.create_task(self._rotate_keys_forever(), name="keyturn-key-rotation")
            )
        if self._database.checkpoint_in_background:
            self._tasks.append(
                asyncio.create_task(self._checkpoint_forever(), name="keyturn-checkpoint")
            )
        if self._mail is not None:
            self._tasks.append(
                asyncio.create_task(self._mail.run(self._stopping), name="keyturn-mail")
            )
        if self._channel is not None:
            self._tasks.append(
                asyncio.create_task(
                    self._listen_forever(self._channel), name="keyturn-revocation-channel"
                )
            )

    async def stop(self) -> None:
        # The loops that use the database are told to stop, not cancelled: a cancelled task
        # would leave its worker thread holding a connection while the pool is disposed.
        self._stopping.set()
        for task in self._tasks:
            if task.get_name() == "keyturn-revocation-channel":
                task.cancel()
        for task in self._tasks:
            try:
                await task
            except asyncio.CancelledError:
                pass
            except Exception:
                logger.warning("upkeep task %s had failed", task.get_name(), exc_info=True)
        self._tasks = []

    async def _poll_forever(self) -> None:
        polls = 0
        outage_since: float | None = None
        while await self._pause(self._settings.revocation_poll_seconds):
            polls += 1
            try:
                read = await self._on_feed_thread(self._feed.fetch_new)
                self._feed.apply_fetched(read)
                if self._keyring.take_reload_request() or polls % _KEY_RELOAD_EVERY == 0:
                    await self._on_feed_thread(self._keyring.reload)
            except ServiceUnavailableError as error:
                # An outage: one line when it starts, one when it ends, not a trace per poll.
                if outage_since is None:
                    outage_since = time.monotonic()
                    logger.warning("revocation feed unavailable: %s", error.message)
                continue
            except Exception:
                logger.warning("revocation feed poll failed", exc_info=True)
                continue
            if outage_since is not None:
                logger.warning("revocation feed back after %.1f s", time.monotonic() - outage_since)
                outage_since = None

    async def _listen_forever(self, channel: RevocationChannel) -> None:
        """Apply the revocations other processes announce the moment they do.

        On every (re)subscription, and whenever a write to Redis failed meanwhile, every
        live revocation is written to Redis again: keys lost to an outage or a restart come
        back, so services reading Redis never see a revoked session as live for long.
        """
        while True:
            try:
                async with channel.subscription() as subscription:
                    channel.link.mark_up()
                    while True:
                        if channel.link.take_restore_request():
                            await self._on_chore_thread(
                                functools.partial(self.restore_redis, channel)
                            )
                        revocations = await subscription.receive(timeout=1.0)
                        if revocations:
                            self._revocation.apply(revocations)
            except (RedisError, OSError) as error:
                channel.link.mark_down(error)
            except Exception:  # a bug must not end the task: the channel only speeds things up
                logger.warning("revocation channel failed", exc_info=True)
            await asyncio.sleep(RETRY_PAUSE_SECONDS)

    async def _on_feed_thread(self, work: Callable[[], Result]) -> Result:
        return await to_thread.run_sync(work, limiter=self._feed_threads)

    async def _on_chore_thread(self, work: Callable[[], Result]) -> Result:
        return await to_thread.run_sync(work, limiter=self._chore_threads)

    def restore_redis(self, channel: RevocationChannel) -> None:
        sessions, tokens = self._revocation.revocations.live_entries(now=self._clock.timestamp())
        try:
            channel.restore(sessions, tokens)
        except RedisError as error:
            channel.link.mark_down(error)

    async def _pause(self, seconds: float) -> bool:
        """Wait `seconds`; False (at once) when upkeep is stopping."""
        try:
            await asyncio.wait_for(self._stopping.wait(), timeout=seconds)
        except TimeoutError:
            return True
        return False

    async def _checkpoint_forever(self) -> None:
        """SQLite: the write-ahead log goes into the database file here, off the write path
        (see storage.db.Database)."""
        while await self._pause(CHECKPOINT_EVERY_SECONDS):
            try:
                await self._on_chore_thread(self._database.checkpoint)
            except ServiceUnavailableError:
                pass  # the revocation feed reports the outage; the next second tries again
            except Exception:
                logger.warning("checkpoint failed", exc_info=True)

    async def _rotate_keys_forever(self) -> None:
        while await self._pause(KEY_ROTATION_CHECK_SECONDS):
            try:
                await self._on_chore_thread(self.rotate_keys_if_due)
            except ServiceUnavailableError:
                pass  # the revocation feed reports the outage; the next check tries again
            except Exception:
                logger.warning("scheduled key rotation failed", exc_info=True)

    def rotate_keys_if_due(self) -> str | None:
        """KEYTURN_KEY_ROTATION_DAYS: rotate the signing key once it is that old, exactly as
        `keyturn keys rotate` does (published first, signing after a short delay); with
        several instances, one rotates. The new kid, or None."""
        days = self._settings.key_rotation_days
        if days <= 0:
            return None
        kid = self._keyring.rotate_if_due(timedelta(days=days))
        if kid is not None:
            logger.info("signing key rotated on schedule: %s signs from now on", kid)
        return kid

    async def _purge_forever(self) -> None:
        while await self._pause(self._settings.purge_interval_seconds):
            try:
                await self._on_chore_thread(self.purge)
            except Exception:
                logger.warning("purge failed", exc_info=True)

    def purge(self) -> None:
        """Delete expired refresh tokens, long-over sessions, stale revocations and counters,
        used or expired link tokens, expired passkey challenges.

        In batches, each its own short transaction: on SQLite a transaction holds the write
        lock that every login and refresh waits for, and a backlog of millions of rows in one
        transaction would hold it for as long as the deletes take.
        """
        now = self._clock.now()
        keep_after_end = timedelta(
            seconds=self._settings.access_ttl_seconds + self._settings.refresh_reuse_grace_seconds
        )
        self._purge_in_batches(
            lambda connection: refresh_token_store.purge_expired_refresh_tokens(
                connection, now=now, limit=PURGE_BATCH
            )
        )
        self._purge_in_batches(
            lambda connection: session_store.purge_sessions(
                connection, over_before=now - keep_after_end, limit=PURGE_BATCH
            )
        )
        with self._database.transaction() as connection:
            revocation_store.purge_revocations(connection, now=now)
            # The longest window any counter lives in: a counter purged early would shorten it.
            longest_window = max(
                self._settings.login_window_seconds, self._settings.email_window_seconds
            )
            rate_limit_store.purge_counters(
                connection, older_than=now - timedelta(seconds=longest_window)
            )
        self._purge_in_batches(
            lambda connection: email_token_store.purge_email_tokens(
                connection, before=now, limit=PURGE_BATCH
            )
        )
        self._purge_in_batches(
            lambda connection: passkey_store.purge_challenges(
                connection, before=now, limit=PURGE_BATCH
            )
        )
        self._purge_in_batches(
            lambda connection: challenge_store.purge_challenges(
                connection, now=now, limit=PURGE_BATCH
            )
        )
        if self._mail is not None:
            mail = self._mail
            self._purge_in_batches(lambda connection: mail.purge(connection, limit=PURGE_BATCH))

    def _purge_in_batches(self, delete_batch: Callable[[Connection], int]) -> None:
        while not self._stopping.is_set():
            with self._database.transaction() as connection:
                removed = delete_batch(connection)
            if removed < PURGE_BATCH:
                return
