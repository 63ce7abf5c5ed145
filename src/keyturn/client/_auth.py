"""httpx authentication that logs in to Keyturn, attaches the access token, and refreshes it.

On a 401 `token_expired` the SDK refreshes once and sends the request again. Concurrent
requests share one refresh (single flight): the first to find the token stale refreshes under
a lock, stores the rotated pair, and everyone else picks up the stored result. Keyturn rotates
refresh tokens and treats a rotated token presented again as theft, so a refresh token is sent
at most once and its successor is stored before anyone else may refresh; the one exception
is a refresh whose answer never came, sent again promptly with the same token (the server
answers it with the same successor within its grace window).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Generator
from typing import Any

import httpx

from keyturn import wire
from keyturn.client._errors import KeyturnClientError, LoginFailedError, SessionEndedError
from keyturn.client._store import MemoryTokenStore, Tokens, TokenStore

LOGIN_PATH = "/api/auth/login"
REFRESH_PATH = "/api/auth/refresh"
LOGOUT_PATH = "/api/auth/logout"
# A refresh whose answer never came (connection reset, timeout) may have rotated the token at
# Keyturn, and only the token sent gets that successor again, within the grace window (10 s
# by default). So the same token goes out again promptly, never a login or a guess.
REFRESH_RETRY_DELAYS = (0.25, 1.0, 2.0)


class _Credentials:
    """What both flavours share: who logs in, where tokens live, how answers read."""

    def __init__(
        self,
        *,
        email: str | None,
        username: str | None,
        password: str | None,
        store: TokenStore | None,
        remember_me: bool,
    ) -> None:
        if password is not None and not (email or username):
            raise ValueError("give an email or a username with the password")
        self._email = email
        self._username = username
        self._password = password
        self._remember_me = remember_me
        self.store: TokenStore = store if store is not None else MemoryTokenStore()

    @property
    def can_log_in(self) -> bool:
        return self._password is not None

    def login_body(self) -> dict[str, Any]:
        if self._password is None:
            raise SessionEndedError("There are no tokens and no password to log in with.")
        body: dict[str, Any] = {"password": self._password, "remember_me": self._remember_me}
        if self._email:
            body["email"] = self._email
        else:
            body["username"] = self._username
        return body

    def keep(self, response: httpx.Response, *, failure: type[KeyturnClientError]) -> Tokens:
        """Store the tokens of a login or refresh answer; raise `failure` for a refusal."""
        if response.status_code != 200:
            raise _error(response, failure)
        try:
            body = response.json()
            tokens = Tokens(
                access_token=str(body["access_token"]),
                refresh_token=str(body["refresh_token"]),
                expires_at=time.time() + float(body.get("expires_in", 0)),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise KeyturnClientError(
                "Keyturn's answer holds no tokens; is the base URL right?", status=200
            ) from exc
        self.store.save(tokens)
        return tokens


def _error(response: httpx.Response, kind: type[KeyturnClientError]) -> KeyturnClientError:
    code, message = _problem(response)
    text = message or f"Keyturn answered {response.status_code}."
    return kind(text, code=code, status=response.status_code)


def _problem(response: httpx.Response) -> tuple[str | None, str | None]:
    try:
        body = response.json()
    except ValueError:
        return None, None
    if not isinstance(body, dict):
        return None, None
    code, message = body.get("error"), body.get("message")
    return (code if isinstance(code, str) else None), (
        message if isinstance(message, str) else None
    )


def _is_token_expired(response: httpx.Response) -> bool:
    return response.status_code == 401 and _problem(response)[0] == wire.TOKEN_EXPIRED


def _authorize(request: httpx.Request, tokens: Tokens) -> None:
    request.headers["Authorization"] = f"{wire.TOKEN_TYPE_BEARER} {tokens.access_token}"


class KeyturnAuth(httpx.Auth):
    """Keyturn authentication for a synchronous `httpx.Client` (thread-safe).

    It logs in on first use, sends `Authorization: Bearer <access token>`, and when a
    request answers 401 `token_expired` it refreshes once (one refresh for any number of
    threads) and sends the request again. When the refresh is refused it logs in again if
    it has the password, else raises SessionEndedError. LoginFailedError when Keyturn
    refuses the password.

    Example:
        >>> auth = KeyturnAuth("http://127.0.0.1:8000", email="ada@example.com",
        ...                    password="correct horse battery staple")  # doctest: +SKIP
        >>> with httpx.Client(auth=auth) as client:  # doctest: +SKIP
        ...     client.get("http://127.0.0.1:8000/api/auth/me").json()["user"]["email"]
        'ada@example.com'

    The requests may go to any service that accepts Keyturn's access tokens; `base_url` is
    Keyturn itself. `transport` is for tests (an httpx transport for the calls to Keyturn).
    """

    requires_request_body = True  # a request must be sendable again after a refresh

    def __init__(
        self,
        base_url: str,
        *,
        email: str | None = None,
        username: str | None = None,
        password: str | None = None,
        store: TokenStore | None = None,
        remember_me: bool = True,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        self._credentials = _Credentials(
            email=email,
            username=username,
            password=password,
            store=store,
            remember_me=remember_me,
        )
        self._http = httpx.Client(base_url=base_url, timeout=timeout, transport=transport)
        self._lock = threading.Lock()

    @property
    def store(self) -> TokenStore:
        return self._credentials.store

    def login(self) -> Tokens:
        """Log in now (it happens by itself on first use). Raises LoginFailedError."""
        with self._lock:
            return self._login()

    def logout(self) -> None:
        """End this session at Keyturn and forget the tokens."""
        with self._lock:
            tokens = self.store.load()
            self.store.clear()
            if tokens is not None:
                self._http.post(LOGOUT_PATH, json={"refresh_token": tokens.refresh_token})

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> KeyturnAuth:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        tokens = self._current()
        _authorize(request, tokens)
        response = yield request
        if response.status_code != 401:
            return
        response.read()
        if _is_token_expired(response):
            _authorize(request, self._renew(stale=tokens.access_token))
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        raise RuntimeError("KeyturnAuth is for httpx.Client; use AsyncKeyturnAuth with AsyncClient")
        yield request  # pragma: no cover - makes this an async generator

    def _current(self) -> Tokens:
        tokens = self.store.load()
        if tokens is not None:
            return tokens
        with self._lock:
            return self.store.load() or self._login()

    def _renew(self, *, stale: str) -> Tokens:
        with self._lock:
            current = self.store.load()
            if current is not None and current.access_token != stale:
                return current  # another thread refreshed while we waited
            if current is not None:
                response = self._send_refresh(current.refresh_token)
                if response.status_code == 200:
                    return self._credentials.keep(response, failure=SessionEndedError)
                if response.status_code not in (400, 401):
                    raise _error(response, KeyturnClientError)  # an outage: keep the tokens
                self.store.clear()  # logged out, expired, revoked: this session is over
                if not self._credentials.can_log_in:
                    raise _error(response, SessionEndedError)
            return self._login()

    def _send_refresh(self, refresh_token: str) -> httpx.Response:
        for delay in (*REFRESH_RETRY_DELAYS, None):
            try:
                return self._http.post(REFRESH_PATH, json={"refresh_token": refresh_token})
            except httpx.TransportError:
                if delay is None:
                    raise  # still unknown: the tokens are kept for a later try
                time.sleep(delay)
        raise AssertionError("unreachable")

    def _login(self) -> Tokens:
        body = self._credentials.login_body()
        self.store.clear()
        response = self._http.post(LOGIN_PATH, json=body)
        return self._credentials.keep(response, failure=LoginFailedError)


class AsyncKeyturnAuth(httpx.Auth):
    """Keyturn authentication for an `httpx.AsyncClient`: the same behaviour as KeyturnAuth,
    with an asyncio lock so that concurrent tasks share a single refresh.

    Example:
        >>> auth = AsyncKeyturnAuth("http://127.0.0.1:8000", email="ada@example.com",
        ...                         password="correct horse battery staple")  # doctest: +SKIP
        >>> async with httpx.AsyncClient(auth=auth) as client:  # doctest: +SKIP
        ...     me = await client.get("http://127.0.0.1:8000/api/auth/me")
    """

    requires_request_body = True

    def __init__(
        self,
        base_url: str,
        *,
        email: str | None = None,
        username: str | None = None,
        password: str | None = None,
        store: TokenStore | None = None,
        remember_me: bool = True,
        timeout: float = 10.0,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._credentials = _Credentials(
            email=email,
            username=username,
            password=password,
            store=store,
            remember_me=remember_me,
        )
        self._http = httpx.AsyncClient(base_url=base_url, timeout=timeout, transport=transport)
        self._lock = asyncio.Lock()

    @property
    def store(self) -> TokenStore:
        return self._credentials.store

    async def login(self) -> Tokens:
        """Log in now (it happens by itself on first use). Raises LoginFailedError."""
        async with self._lock:
            return await self._login()

    async def logout(self) -> None:
        """End this session at Keyturn and forget the tokens."""
        async with self._lock:
            tokens = self.store.load()
            self.store.clear()
            if tokens is not None:
                await self._http.post(LOGOUT_PATH, json={"refresh_token": tokens.refresh_token})

    async def aclose(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncKeyturnAuth:
        return self

    async def __aexit__(self, *_exc: object) -> None:
        await self.aclose()

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        raise RuntimeError("AsyncKeyturnAuth is for httpx.AsyncClient; use KeyturnAuth with Client")
        yield request  # pragma: no cover - makes this a generator

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        tokens = await self._current()
        _authorize(request, tokens)
        response = yield request
        if response.status_code != 401:
            return
        await response.aread()
        if _is_token_expired(response):
            _authorize(request, await self._renew(stale=tokens.access_token))
            yield request

    async def _current(self) -> Tokens:
        tokens = self.store.load()
        if tokens is not None:
            return tokens
        async with self._lock:
            return self.store.load() or await self._login()

    async def _renew(self, *, stale: str) -> Tokens:
        async with self._lock:
            current = self.store.load()
            if current is not None and current.access_token != stale:
                return current  # another task refreshed while we waited
            if current is not None:
                response = await self._send_refresh(current.refresh_token)
                if response.status_code == 200:
                    return self._credentials.keep(response, failure=SessionEndedError)
                if response.status_code not in (400, 401):
                    raise _error(response, KeyturnClientError)  # an outage: keep the tokens
                self.store.clear()  # logged out, expired, revoked: this session is over
                if not self._credentials.can_log_in:
                    raise _error(response, SessionEndedError)
            return await self._login()

    async def _send_refresh(self, refresh_token: str) -> httpx.Response:
        for delay in (*REFRESH_RETRY_DELAYS, None):
            try:
                return await self._http.post(REFRESH_PATH, json={"refresh_token": refresh_token})
            except httpx.TransportError:
                if delay is None:
                    raise  # still unknown: the tokens are kept for a later try
                await asyncio.sleep(delay)
        raise AssertionError("unreachable")

    async def _login(self) -> Tokens:
        body = self._credentials.login_body()
        self.store.clear()
        response = await self._http.post(LOGIN_PATH, json=body)
        return self._credentials.keep(response, failure=LoginFailedError)
