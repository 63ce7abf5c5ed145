"""The way into password hashing for requests: a few at a time, a bounded queue, 503 beyond.

A password hash is the one costly step of a login, a registration or a password change, and
anyone can ask for one. Requests that hash are let through a few at a time (twice the hashing
threads, so a thread always has the next hash ready while another request does its database
work); the others wait here, on the event loop, holding no thread, in a queue of at most
KEYTURN_HASHING_QUEUE_MAX. Beyond that a request is refused at once with 503 `overloaded`
and Retry-After, before any database work: a flood is answered cheaply instead of piling up,
and the threads everything else needs (the revocation poll, token checks, refreshes) stay
free: admitted requests run on worker threads of their own. A request that leaves while it
waits (its client hung up, its task was cancelled) is dropped before it costs a hash.
"""

from __future__ import annotations

import asyncio
import collections
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

from anyio import CapacityLimiter, to_thread

from keyturn.errors import OverloadedError
from keyturn.observability import metrics

logger = logging.getLogger("keyturn.hashing")
Result = TypeVar("Result")
IsGone = Callable[[], Awaitable[bool]]
# How often a waiting request checks that its client is still there.
GONE_CHECK_SECONDS = 0.1


class HashingGate:
    """Admits requests that hash a password; see the module's docstring."""

    def __init__(self, *, threads: int, max_waiting: int) -> None:
        self._max_running = 2 * threads
        self._max_waiting = max_waiting
        self._running = 0
        self._waiting: collections.deque[asyncio.Future[None]] = collections.deque()
        self._threads: CapacityLimiter | None = None  # made on the event loop, when first used

    @property
    def waiting(self) -> int:
        return len(self._waiting)

    async def run(self, use_case: Callable[[], Result], *, gone: IsGone | None = None) -> Result:
        """Run the blocking `use_case` on a worker thread once admitted.

        Raises OverloadedError (503, Retry-After) when the queue is full or when the client
        left while waiting, and CancelledError when the awaiting task is cancelled while it
        waits; in neither case does `use_case` run.
        """
        await self._admit(gone)
        try:
            # Worker threads of their own too: admitted requests never take the shared
            # pool's threads from token checks and refreshes, however many CPUs hash.
            if self._threads is None:
                self._threads = CapacityLimiter(self._max_running)
            return await to_thread.run_sync(use_case, limiter=self._threads)
        finally:
            self._release()

    async def _admit(self, gone: IsGone | None) -> None:
        if self._running < self._max_running and not self._waiting:
            self._running += 1
            return
        if len(self._waiting) >= self._max_waiting:
            metrics.count_hashing_refused("overloaded")
            raise OverloadedError()
        turn: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiting.append(turn)
        try:
            while not turn.done():
                await asyncio.wait((turn,), timeout=GONE_CHECK_SECONDS)
                if not turn.done() and gone is not None and await gone():
                    metrics.count_hashing_refused("gone")
                    raise OverloadedError("The request was dropped: its client has gone.")
        except BaseException:
            if turn.done():  # our turn came as we left: hand it on
                self._release()
            else:
                turn.cancel()
                self._waiting.remove(turn)
            raise

    def _release(self) -> None:
        """A running request is done: its place goes to the first waiting one, if any."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                return
        self._running -= 1
