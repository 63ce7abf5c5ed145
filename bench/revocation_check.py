"""What revocation costs per request, and how fast it reaches another instance.

    .venv/bin/python -m bench.revocation_check [--calls 200000] [--revoked 10000]
                                               [--redis-url redis://host:port/N]

Per request: AuthService.authenticate() in-process, with a token already verified once (the
cached path every repeated request takes) and with the token cache off (a signature check
per call), on a revocation list holding --revoked ended sessions; then the revocation part
alone (staleness check + set lookups). Run once without Redis and once with it (a private
redis-server unless --redis-url): the check reads only process memory either way.

Reach: two instances (two service containers in this process, each with its upkeep tasks)
on one SQLite database; a session ended on A, and the time until B refuses it. Without
Redis that is B's next database poll (every 0.5 s); with Redis the poll is set to 5 s, so
what is measured is the pub/sub message.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import secrets
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from bench.redis_memory import private_redis
from keyturn.config import Settings
from keyturn.core.sessions import KIND_SESSION, Revocation
from keyturn.errors import EmailTakenError
from keyturn.services.container import Services, build_services

PASSWORD = "bench-" + secrets.token_urlsafe(16)


def settings_for(database_url: str, redis_url: str | None, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "redis_url": redis_url,
        "argon2_memory_kib": 1024,
        "argon2_time_cost": 1,
        "register_max_per_ip": 10**9,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


def per_call_us(function: Any, argument: Any, calls: int) -> float:
    started = time.perf_counter_ns()
    for _ in range(calls):
        function(argument)
    return (time.perf_counter_ns() - started) / calls / 1000


async def check_cost(
    database_url: str, redis_url: str | None, *, calls: int, revoked: int
) -> dict[str, float]:
    results: dict[str, float] = {}
    for cache_size, label in ((10_000, "authenticate_cached_us"), (0, "authenticate_uncached_us")):
        services = build_services(
            settings_for(database_url, redis_url, token_cache_size=cache_size)
        )
        await services.start()
        try:
            access_token = open_session(services, "cost@example.com")
            until = datetime.now(UTC) + timedelta(minutes=16)
            services.revocation.apply(
                [Revocation(0, KIND_SESSION, f"ended-{n}", until) for n in range(revoked)]
            )
            access = services.access
            access.authenticate(access_token)
            rounds = [
                per_call_us(
                    access.authenticate, access_token, calls // (50 if cache_size == 0 else 5)
                )
                for _ in range(5)
            ]
            results[label] = round(statistics.median(rounds), 2)
            if cache_size:
                results["revocation_part_us"] = revocation_part_us(services, access_token, calls)
        finally:
            await services.stop()
    return results


def revocation_part_us(services: Services, access_token: str, calls: int) -> float:
    claims = services.access.authenticate(access_token)
    revocation = services.revocation

    def revocation_part(_: object) -> None:
        revocation.ensure_fresh()
        revocation.revocations.is_revoked(claims.session_id, claims.token_id)

    rounds = [per_call_us(revocation_part, None, calls // 5) for _ in range(5)]
    return round(statistics.median(rounds), 3)


def open_session(services: Services, email: str) -> str:
    with contextlib.suppress(EmailTakenError):
        services.accounts.register(email=email, password=PASSWORD)
    issued = services.login.login(identifier=email, password=PASSWORD)
    return issued.access_token


async def reach(database_url: str, redis_url: str | None, *, repeats: int) -> dict[str, float]:
    poll = 5.0 if redis_url else 0.5
    overrides = {"revocation_poll_seconds": poll, "revocation_max_staleness_seconds": 30.0}
    a = build_services(settings_for(database_url, redis_url, **overrides))
    b = build_services(settings_for(database_url, redis_url, **overrides))
    await a.start()
    await b.start()
    await asyncio.sleep(0.5)  # both subscribed
    delays: list[float] = []
    try:
        for _ in range(repeats):
            token = open_session(a, "reach@example.com")
            claims = a.access.authenticate(token)
            b.access.authenticate(token)
            started = time.perf_counter()
            await asyncio.to_thread(a.sessions.logout, claims=claims)
            while not b.revocation.revocations.is_revoked(claims.session_id, claims.token_id):
                await asyncio.sleep(0.0005)
            delays.append((time.perf_counter() - started) * 1000)
            await asyncio.sleep(random.uniform(0.05, 0.55))  # any phase of B's poll
    finally:
        await a.stop()
        await b.stop()
    return {
        "poll_seconds": poll,
        "reach_median_ms": round(statistics.median(delays), 2),
        "reach_max_ms": round(max(delays), 2),
    }


async def measure(args: argparse.Namespace, redis_url: str | None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as directory:
        database_url = f"sqlite:///{Path(directory) / 'keyturn.db'}"
        cost = await check_cost(database_url, redis_url, calls=args.calls, revoked=args.revoked)
        spread = await reach(database_url, redis_url, repeats=args.repeats)
    return {**cost, **spread}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=200_000)
    parser.add_argument("--revoked", type=int, default=10_000, help="ended sessions in the list")
    parser.add_argument("--repeats", type=int, default=20, help="sessions ended for reach")
    parser.add_argument("--redis-url", help="an existing Redis (default: a private one)")
    args = parser.parse_args()
    report: dict[str, Any] = {"revoked_in_list": args.revoked}
    report["without_redis"] = asyncio.run(measure(args, None))
    with contextlib.ExitStack() as stack:
        url = args.redis_url or stack.enter_context(private_redis())
        report["with_redis"] = asyncio.run(measure(args, url))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
