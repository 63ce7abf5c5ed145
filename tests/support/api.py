"""Small helpers the HTTP and system tests share; they speak only the public contract."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

DEFAULT_PASSWORD = "correct horse battery staple"


@dataclass(frozen=True)
class Login:
    access_token: str
    refresh_token: str
    expires_in: int
    user: dict[str, Any]


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def register(
    api: httpx.AsyncClient,
    email: str = "ada@example.com",
    password: str = DEFAULT_PASSWORD,
    **extra: Any,
) -> dict[str, Any]:
    response = await api.post(
        "/api/auth/register", json={"email": email, "password": password, **extra}
    )
    assert response.status_code == 201, response.text
    user: dict[str, Any] = response.json()["user"]
    return user


async def login(
    api: httpx.AsyncClient,
    email: str = "ada@example.com",
    password: str = DEFAULT_PASSWORD,
    *,
    create: bool = True,
    **extra: Any,
) -> Login:
    """Log in, registering the account first unless `create` is False."""
    if create:
        existing = await api.post("/api/auth/register", json={"email": email, "password": password})
        assert existing.status_code in (201, 409), existing.text
    response = await api.post(
        "/api/auth/login", json={"email": email, "password": password, **extra}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    return Login(body["access_token"], body["refresh_token"], body["expires_in"], body["user"])


async def refresh(api: httpx.AsyncClient, refresh_token: str) -> httpx.Response:
    return await api.post("/api/auth/refresh", json={"refresh_token": refresh_token})


def error_of(response: httpx.Response) -> tuple[int, str]:
    return response.status_code, response.json().get("error", "")
