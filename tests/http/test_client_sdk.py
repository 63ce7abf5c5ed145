"""The client SDK against the app in process: login, single-flight refresh, stores, errors."""

from __future__ import annotations

import asyncio
import json
import os
import stat
from pathlib import Path

import httpx
import pytest

import keyturn.client
from keyturn.client import (
    AsyncKeyturnAuth,
    FileTokenStore,
    KeyturnClientError,
    LoginFailedError,
    MemoryTokenStore,
    SessionEndedError,
    Tokens,
)
from keyturn.clock import FrozenClock
from tests.support.api import DEFAULT_PASSWORD, register
from tests.support.environment import TEST_CLIENT_ADDRESS, TEST_ISSUER


class RecordingTransport(httpx.AsyncBaseTransport):
    """Passes requests to the app and records every refresh token sent to /api/auth/refresh."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.refresh_tokens: list[str] = []
        self.logins = 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/auth/refresh":
            self.refresh_tokens.append(json.loads(request.content)["refresh_token"])
        if request.url.path == "/api/auth/login":
            self.logins += 1
        return await self.inner.handle_async_request(request)


class Setup:
    def __init__(self, api: httpx.AsyncClient) -> None:
        self.api = api
        self.app_transport = httpx.ASGITransport(app=api.app, client=TEST_CLIENT_ADDRESS)  # type: ignore[attr-defined]
        self.recorder = RecordingTransport(self.app_transport)

    def auth(self, **options: object) -> AsyncKeyturnAuth:
        values: dict[str, object] = {"email": "ada@example.com", "password": DEFAULT_PASSWORD}
        values.update(options)
        return AsyncKeyturnAuth(TEST_ISSUER, transport=self.recorder, **values)  # type: ignore[arg-type]

    def client(self, auth: AsyncKeyturnAuth) -> httpx.AsyncClient:
        return httpx.AsyncClient(transport=self.app_transport, base_url=TEST_ISSUER, auth=auth)


@pytest.fixture
async def setup(api: httpx.AsyncClient) -> Setup:
    await register(api, "ada@example.com")
    return Setup(api)


async def test_logs_in_on_first_use_and_attaches_the_token(setup: Setup) -> None:
    auth = setup.auth()
    async with setup.client(auth) as client:
        me = await client.get("/api/auth/me")
    assert me.status_code == 200
    assert me.json()["user"]["email"] == "ada@example.com"
    assert setup.recorder.logins == 1
    await auth.aclose()


async def test_fifty_concurrent_requests_share_one_refresh(
    setup: Setup, clock: FrozenClock
) -> None:
    """50 requests with an expired token cause exactly one refresh call, and all succeed;
    no refresh token is ever sent twice."""
    auth = setup.auth()
    async with setup.client(auth) as client:
        assert (await client.get("/api/auth/me")).status_code == 200
        for round_number in (1, 2):
            clock.advance(seconds=901)

            responses = await asyncio.gather(*(client.get("/api/auth/me") for _ in range(50)))

            assert {response.status_code for response in responses} == {200}
            assert len(setup.recorder.refresh_tokens) == round_number
    assert len(set(setup.recorder.refresh_tokens)) == len(setup.recorder.refresh_tokens)
    assert setup.recorder.logins == 1
    await auth.aclose()


async def test_a_refused_refresh_logs_in_again_with_the_password(
    setup: Setup, clock: FrozenClock
) -> None:
    """When the session was ended elsewhere, the SDK opens a new one with its credentials."""
    auth = setup.auth()
    async with setup.client(auth) as client:
        await client.get("/api/auth/me")
        await client.post("/api/auth/logout-all")
        clock.advance(seconds=901)

        me = await client.get("/api/auth/me")

    assert me.status_code == 200
    assert setup.recorder.logins == 2
    await auth.aclose()


async def test_without_a_password_a_refused_refresh_raises_session_ended(
    setup: Setup, clock: FrozenClock
) -> None:
    """Given only stored tokens, an ended session raises SessionEndedError and is forgotten."""
    first = setup.auth()
    tokens = await first.login()
    await first.aclose()
    store = MemoryTokenStore(tokens)
    auth = setup.auth(password=None, email=None, store=store)
    async with setup.client(auth) as client:
        assert (await client.get("/api/auth/me")).status_code == 200
        await client.post("/api/auth/logout")
        clock.advance(seconds=901)
        with pytest.raises(SessionEndedError) as ended:
            await client.get("/api/auth/me")
    assert ended.value.code == "invalid_refresh_token"
    assert store.load() is None
    await auth.aclose()


async def test_wrong_password_raises_login_failed(setup: Setup) -> None:
    auth = setup.auth(password="not the password")
    async with setup.client(auth) as client:
        with pytest.raises(LoginFailedError) as failed:
            await client.get("/api/auth/me")
    assert (failed.value.status, failed.value.code) == (401, "invalid_credentials")
    await auth.aclose()


async def test_logout_ends_the_session_and_forgets_tokens(setup: Setup) -> None:
    auth = setup.auth(username=None)
    tokens = await auth.login()
    await auth.logout()
    assert auth.store.load() is None
    refused = await setup.api.post(
        "/api/auth/refresh", json={"refresh_token": tokens.refresh_token}
    )
    assert refused.status_code == 401
    await auth.aclose()


async def test_other_401s_are_returned_untouched(setup: Setup) -> None:
    """Only `token_expired` triggers a refresh; an invalid token is the caller's answer."""
    auth = setup.auth()
    async with setup.client(auth) as client:
        await client.get("/api/auth/me")
        await client.post("/api/auth/logout-all")  # the access token is now revoked
        me = await client.get("/api/auth/me")
    assert (me.status_code, me.json()["error"]) == (401, "invalid_token")
    assert setup.recorder.refresh_tokens == []
    await auth.aclose()


def test_file_store_is_private_and_atomic(tmp_path: Path) -> None:
    path = tmp_path / "state" / "tokens.json"
    store = FileTokenStore(path)
    assert store.load() is None
    tokens = Tokens(access_token="a.b.c", refresh_token="ktr_x", expires_at=123.0)

    store.save(tokens)
    store.save(tokens)

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert os.listdir(path.parent) == ["tokens.json"]  # no temporary file left behind
    assert FileTokenStore(path).load() == tokens
    path.write_text("{not json")
    assert store.load() is None
    store.clear()
    store.clear()
    assert not path.exists()


def test_tokens_never_print() -> None:
    tokens = Tokens(access_token="secret-access", refresh_token="ktr_secret", expires_at=1.0)
    assert "secret" not in repr(tokens)
    assert "secret" not in str(tokens)


def test_public_api_is_pinned() -> None:
    assert keyturn.client.__all__ == [
        "AsyncKeyturnAuth",
        "FileTokenStore",
        "KeyturnAuth",
        "KeyturnClientError",
        "LoginFailedError",
        "MemoryTokenStore",
        "SessionEndedError",
        "TokenStore",
        "Tokens",
    ]


async def test_an_answer_without_tokens_is_a_clear_error() -> None:
    """A base URL that is not Keyturn gives KeyturnClientError, not a KeyError."""

    def not_keyturn(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, text="<html>hello</html>")

    auth = AsyncKeyturnAuth(
        "http://elsewhere.test",
        email="ada@example.com",
        password=DEFAULT_PASSWORD,
        transport=httpx.MockTransport(not_keyturn),
    )
    with pytest.raises(KeyturnClientError):
        await auth.login()
    await auth.aclose()


class LosingTransport(RecordingTransport):
    """Delivers the first refresh to the app, then drops its answer on the way back, as a
    mobile connection that resets after the server committed."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        super().__init__(inner)
        self.lost: list[str] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await super().handle_async_request(request)
        if request.url.path == "/api/auth/refresh" and not self.lost:
            await response.aread()
            self.lost.append(response.json()["refresh_token"])
            raise httpx.ReadError("connection reset by peer", request=request)
        return response


async def test_a_refresh_whose_answer_was_lost_is_retried_with_the_same_token(
    setup: Setup, clock: FrozenClock
) -> None:
    """The rotation committed but its answer never arrived: the SDK sends the same token
    again at once, gets the very successor it missed, and the session goes on."""
    losing = LosingTransport(setup.app_transport)
    auth = AsyncKeyturnAuth(
        TEST_ISSUER, transport=losing, email="ada@example.com", password=DEFAULT_PASSWORD
    )
    async with setup.client(auth) as client:
        assert (await client.get("/api/auth/me")).status_code == 200
        clock.advance(seconds=901)

        me = await client.get("/api/auth/me")

    assert me.status_code == 200
    first = losing.refresh_tokens[0]
    assert losing.refresh_tokens == [first, first]
    stored = auth.store.load()
    assert stored is not None and stored.refresh_token == losing.lost[0]
    assert losing.logins == 1
    await auth.aclose()
