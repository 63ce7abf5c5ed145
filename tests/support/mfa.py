"""Second factors for the HTTP and browser tests: enrol an authenticator app through the API,
and compute its codes with pyotp as a phone would."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import jwt
import pyotp

from keyturn.clock import FrozenClock
from tests.support.api import bearer


@dataclass(frozen=True)
class Enrolment:
    secret: str
    recovery_codes: list[str]


def code_for(secret: str, at: float, *, steps: int = 0) -> str:
    """The code an app shows at `at`, or `steps` time steps (30 s) away from it."""
    return pyotp.TOTP(secret).at(int(at) + 30 * steps)


def claims_of(access_token: str) -> dict[str, Any]:
    """The payload of an access token, read without checking it (the server checked it)."""
    payload: dict[str, Any] = jwt.decode(access_token, options={"verify_signature": False})
    return payload


async def enrol(api: httpx.AsyncClient, access_token: str, clock: FrozenClock) -> Enrolment:
    """Set up and confirm an authenticator app; the clock moves on a step, so the code that
    confirmed it is not the next one asked for."""
    setup = await api.post("/api/auth/mfa/totp/setup", headers=bearer(access_token))
    assert setup.status_code == 200, setup.text
    secret = setup.json()["secret"]
    confirm = await api.post(
        "/api/auth/mfa/totp/confirm",
        json={"code": code_for(secret, clock.timestamp())},
        headers=bearer(access_token),
    )
    assert confirm.status_code == 200, confirm.text
    clock.advance(seconds=30)
    return Enrolment(secret=secret, recovery_codes=confirm.json()["recovery_codes"])


async def start_login(
    api: httpx.AsyncClient, email: str, password: str, **extra: Any
) -> dict[str, Any]:
    """A password login that must answer 401 mfa_required; its body."""
    response = await api.post(
        "/api/auth/login", json={"email": email, "password": password, **extra}
    )
    assert (response.status_code, response.json()["error"]) == (401, "mfa_required"), response.text
    body: dict[str, Any] = response.json()
    return body
