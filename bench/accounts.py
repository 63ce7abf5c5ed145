"""Set up through the API, as a client would: register users, open sessions."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass

import httpx

PASSWORD = "bench-" + secrets.token_urlsafe(12)


@dataclass(frozen=True)
class Tokens:
    access_token: str
    refresh_token: str


async def _bounded(limit: int, jobs: list[object]) -> list[object]:
    gate = asyncio.Semaphore(limit)

    async def one(job: object) -> object:
        async with gate:
            return await job  # type: ignore[misc]

    return await asyncio.gather(*(one(job) for job in jobs))


async def _register(client: httpx.AsyncClient, email: str) -> None:
    response = await client.post("/api/auth/register", json={"email": email, "password": PASSWORD})
    if response.status_code not in (201, 409):
        raise RuntimeError(f"register {email}: {response.status_code} {response.text}")


async def _login(client: httpx.AsyncClient, email: str) -> Tokens:
    response = await client.post("/api/auth/login", json={"email": email, "password": PASSWORD})
    if response.status_code != 200:
        raise RuntimeError(f"login {email}: {response.status_code} {response.text}")
    body = response.json()
    return Tokens(body["access_token"], body["refresh_token"])


async def _me(client: httpx.AsyncClient, access_token: str) -> None:
    response = await client.get("/api/auth/me", headers={"Authorization": f"Bearer {access_token}"})
    if response.status_code != 200:
        raise RuntimeError(f"me: {response.status_code} {response.text}")


def register_users(base_url: str, count: int, *, tag: str, concurrency: int = 4) -> list[str]:
    """Register `count` users; returns their emails (all share PASSWORD)."""
    emails = [f"bench-{tag}-{n}@example.com" for n in range(count)]

    async def go() -> None:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            await _bounded(concurrency, [_register(client, email) for email in emails])

    asyncio.run(go())
    return emails


def open_sessions(
    base_url: str, emails: list[str], count: int, *, concurrency: int = 4, touch: bool = False
) -> list[Tokens]:
    """Log in `count` times, round-robin over `emails`; with `touch`, call /me once with each
    new access token (so the server's verified-token cache holds it)."""

    async def go() -> list[Tokens]:
        async with httpx.AsyncClient(base_url=base_url, timeout=60) as client:
            jobs = [_login(client, emails[n % len(emails)]) for n in range(count)]
            found = [t for t in await _bounded(concurrency, jobs) if isinstance(t, Tokens)]
            if touch:
                await _bounded(concurrency, [_me(client, t.access_token) for t in found])
            return found

    return asyncio.run(go())
