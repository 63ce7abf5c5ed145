"""Account enumeration by timing: an unknown email costs what a known one with a wrong
password costs, because both verify a password hash of the same parameters."""

from __future__ import annotations

import statistics
import time

import httpx
import pytest

from tests.support.api import register
from tests.support.environment import ApiFactory

pytestmark = pytest.mark.serial

SAMPLES = 41
# Heavy enough that the hash dominates a login (as it does with production parameters):
# skipping it for unknown accounts would make them several times faster.
HASHING = {"argon2_memory_kib": 8192, "argon2_time_cost": 2}


async def timed_login(api: httpx.AsyncClient, email: str) -> tuple[float, httpx.Response]:
    started = time.perf_counter()
    response = await api.post(
        "/api/auth/login", json={"email": email, "password": "not the right passphrase"}
    )
    return time.perf_counter() - started, response


async def test_unknown_email_takes_as_long_as_a_wrong_password(make_api: ApiFactory) -> None:
    """Median latency of a login for an unknown email is within 1.5x of a known email with a
    wrong password (and the other way round); the answers are identical."""
    api = await make_api(login_max_failures=10_000, login_max_failures_per_ip=10_000, **HASHING)
    await register(api, "ada@example.com")
    for _ in range(3):  # warm caches and connection pools for both paths
        await timed_login(api, "ada@example.com")
        await timed_login(api, "nobody@example.com")

    known: list[float] = []
    unknown: list[float] = []
    for n in range(SAMPLES):  # interleaved, so load on the machine hits both alike
        for email, samples in (("ada@example.com", known), (f"nobody{n}@example.com", unknown)):
            elapsed, response = await timed_login(api, email)
            assert response.json()["error"] == "invalid_credentials"
            samples.append(elapsed)

    known_median = statistics.median(known)
    unknown_median = statistics.median(unknown)
    ratio = max(known_median, unknown_median) / min(known_median, unknown_median)
    print(
        f"login medians: known {known_median * 1000:.1f} ms, unknown "
        f"{unknown_median * 1000:.1f} ms, ratio {ratio:.2f}"
    )
    assert ratio < 1.5
