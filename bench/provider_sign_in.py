"""What a sign-in through a provider costs Keyturn, in process: `python -m bench.provider_sign_in`.

A real OpenID Connect provider (oidc-provider under Node, as in the tests) and Keyturn's app on
a fresh SQLite file, called through ASGI. For each sign-in the start and the callback are timed;
inside the callback, the provider's own share (the token request it answers) is timed apart, so
what is left is Keyturn's work: the state check, verifying the ID token, the user and identity
rows, opening the session and minting its tokens. The provider's login pages are not timed.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from tests.support.oidc import OidcProvider, sign_in_at_provider

from keyturn.clock import FrozenClock
from keyturn.config import Settings
from keyturn.http.app import create_app
from keyturn.services.providers import OidcClient

ORIGIN = "http://keyturn.test"


def _summary(name: str, samples: list[float]) -> str:
    ordered = sorted(samples)
    p90 = ordered[int(len(ordered) * 0.9) - 1]
    return f"{name:<34} median {statistics.median(ordered):6.2f} ms   p90 {p90:6.2f} ms"


async def measure(provider: OidcProvider, rounds: int, directory: Path) -> None:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite:///{directory / 'keyturn.db'}",
        issuer=ORIGIN,
        oidc_providers=[provider.settings_entry("local")],  # type: ignore[list-item]
    )
    app = create_app(settings, clock=FrozenClock(datetime.now(UTC)))
    provider_ms: list[float] = []
    client: OidcClient = app.state.services.federation._clients["local"]  # type: ignore[assignment]
    exchange = client._http.exchange_code

    async def timed_exchange(*args: Any, **kwargs: Any) -> dict[str, Any]:
        started = time.perf_counter()
        try:
            return await exchange(*args, **kwargs)
        finally:
            provider_ms.append((time.perf_counter() - started) * 1000)

    client._http.exchange_code = timed_exchange  # type: ignore[method-assign]
    starts: list[float] = []
    callbacks: list[float] = []
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("203.0.113.7", 40000))
        for number in range(rounds + 1):
            async with httpx.AsyncClient(transport=transport, base_url=ORIGIN) as browser:
                began = time.perf_counter()
                started = await browser.get("/api/auth/oidc/local/start")
                start_ms = (time.perf_counter() - began) * 1000
                callback = await sign_in_at_provider(
                    started.headers["location"],
                    login=f"user{number}",
                    callback_prefix=f"{ORIGIN}/api/auth/oidc/",
                )
                began = time.perf_counter()
                done = await browser.get(callback)
                callback_ms = (time.perf_counter() - began) * 1000
                if done.headers["location"] != "/dashboard":
                    raise SystemExit(f"sign-in failed: {done.headers['location']}")
            if number == 0:  # the first fetches discovery and keys: not the steady state
                provider_ms.clear()
                continue
            starts.append(start_ms)
            callbacks.append(callback_ms)
    server_ms = [total - remote for total, remote in zip(callbacks, provider_ms, strict=True)]
    print(f"{rounds} sign-ins, each a new account (SQLite, in process, one at a time)")
    print(_summary("start (302 to the provider)", starts))
    print(_summary("callback, all of it", callbacks))
    print(_summary("  of which the provider's token call", provider_ms))
    print(_summary("  of which Keyturn's own work", server_ms))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=50)
    args = parser.parse_args()
    provider = OidcProvider().start()
    try:
        with tempfile.TemporaryDirectory() as directory:
            asyncio.run(measure(provider, args.rounds, Path(directory)))
    finally:
        provider.stop()


if __name__ == "__main__":
    main()
