"""The way into password hashing: a few requests at a time, a bounded queue, and no hash for
a request that has left the queue."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator

import pytest

from keyturn.core.passwords import Argon2Parameters, PasswordHashing
from keyturn.errors import OverloadedError
from keyturn.services.hashing import GONE_CHECK_SECONDS, HashingGate

LIGHT_PARAMETERS = Argon2Parameters(memory_kib=1024, time_cost=1, parallelism=1)


@pytest.fixture
def hashing() -> Iterator[PasswordHashing]:
    hashing = PasswordHashing(LIGHT_PARAMETERS, threads=1)
    yield hashing
    hashing.close()


async def fill(
    gate: HashingGate, hashing: PasswordHashing, release: threading.Event
) -> list[asyncio.Task[str]]:
    """Occupy every running place of a one-thread gate with hashes held until `release`."""

    def held_hash() -> str:
        release.wait(timeout=10)
        return hashing.hash_password("held until released")

    running = [asyncio.create_task(gate.run(held_hash)) for _ in range(2)]
    await asyncio.sleep(0.01)
    return running


async def test_a_request_cancelled_while_it_waits_costs_no_hash(
    hashing: PasswordHashing,
) -> None:
    """A queued request whose task is cancelled never runs: two hashes, not three."""
    gate = HashingGate(threads=1, max_waiting=4)
    release = threading.Event()
    running = await fill(gate, hashing, release)
    queued = asyncio.create_task(gate.run(lambda: hashing.hash_password("never hashed")))
    await asyncio.sleep(0.01)
    assert gate.waiting == 1

    queued.cancel()
    release.set()
    await asyncio.gather(*running)

    with pytest.raises(asyncio.CancelledError):
        await queued
    assert hashing.hashes_done == 2
    assert gate.waiting == 0


async def test_a_request_whose_client_has_gone_is_dropped_before_hashing(
    hashing: PasswordHashing,
) -> None:
    """A queued request whose client hung up is refused while it waits and never hashes;
    the request behind it still gets its turn."""
    gate = HashingGate(threads=1, max_waiting=4)
    release = threading.Event()
    running = await fill(gate, hashing, release)
    client_gone = False

    async def is_gone() -> bool:
        return client_gone

    dropped = asyncio.create_task(
        gate.run(lambda: hashing.hash_password("never hashed"), gone=is_gone)
    )
    await asyncio.sleep(0.01)
    client_gone = True
    with pytest.raises(OverloadedError):
        await asyncio.wait_for(dropped, timeout=10 * GONE_CHECK_SECONDS)
    assert hashing.hashes_done == 0

    release.set()
    await asyncio.gather(*running)
    assert await gate.run(lambda: hashing.hash_password("next")) != ""
    assert hashing.hashes_done == 3


async def test_a_full_queue_refuses_at_once_with_retry_after(hashing: PasswordHashing) -> None:
    """Past the running places and the queue, a request is refused with 503 `overloaded`
    and Retry-After without waiting; once the queue drains, requests run again."""
    gate = HashingGate(threads=1, max_waiting=1)
    release = threading.Event()
    running = await fill(gate, hashing, release)
    queued = asyncio.create_task(gate.run(lambda: hashing.hash_password("queued")))
    await asyncio.sleep(0.01)

    with pytest.raises(OverloadedError) as refused:
        await gate.run(lambda: hashing.hash_password("refused"))

    assert (refused.value.status, refused.value.code) == (503, "overloaded")
    assert int(refused.value.headers()["Retry-After"]) >= 1
    release.set()
    await asyncio.gather(*running, queued)
    assert hashing.hashes_done == 3
    assert await gate.run(lambda: "ran") == "ran"
