"""The access log (one JSON line per request, no secret in it) and the security warnings."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from keyturn.clock import FrozenClock
from keyturn.observability.logging import JsonFormatter, RedactionFilter
from tests.support.api import DEFAULT_PASSWORD, bearer, login, refresh
from tests.support.environment import TEST_CLIENT_ADDRESS, ApiFactory


class JsonLog:
    """What Keyturn's loggers write, through the same formatter and filter as the server."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    @property
    def text(self) -> str:
        return self.stream.getvalue()

    def lines(self, logger: str) -> list[dict[str, Any]]:
        parsed = [json.loads(line) for line in self.text.splitlines()]
        return [line for line in parsed if line["logger"] == logger]


@pytest.fixture
def json_log() -> Iterator[JsonLog]:
    log = JsonLog()
    handler = logging.StreamHandler(log.stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactionFilter())
    logger = logging.getLogger("keyturn")
    previous = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        yield log
    finally:
        logger.removeHandler(handler)
        logger.setLevel(previous)


async def test_every_request_writes_one_access_line(
    api: httpx.AsyncClient, json_log: JsonLog
) -> None:
    """Method, path, status, duration, request id and client address, once per request,
    the hot routes included."""
    session = await login(api)
    before = len(json_log.lines("keyturn.access"))

    responses = [
        await api.get("/healthz"),
        await api.get("/api/auth/me", headers=bearer(session.access_token)),
        await api.post("/api/auth/refresh", json={"refresh_token": session.refresh_token}),
        await api.get("/api/auth/sessions", headers=bearer(session.access_token)),
        await api.get("/nowhere"),
    ]

    lines = json_log.lines("keyturn.access")[before:]
    assert [(line["method"], line["path"], line["status"]) for line in lines] == [
        ("GET", "/healthz", 200),
        ("GET", "/api/auth/me", 200),
        ("POST", "/api/auth/refresh", 200),
        ("GET", "/api/auth/sessions", 200),
        ("GET", "/nowhere", 404),
    ]
    assert [line["request_id"] for line in lines] == [
        response.headers["x-request-id"] for response in responses
    ]
    for line in lines:
        assert line["level"] == "INFO"
        assert line["client"] == TEST_CLIENT_ADDRESS[0]
        assert isinstance(line["duration_ms"], float) and line["duration_ms"] >= 0


async def test_the_access_log_never_holds_a_token(
    api: httpx.AsyncClient, json_log: JsonLog
) -> None:
    """Neither a token in the query string nor one in a header reaches the log."""
    session = await login(api)
    await api.get(
        "/api/auth/me",
        params={"access_token": session.access_token, "refresh_token": session.refresh_token},
        headers=bearer(session.access_token),
    )
    await api.get(f"/api/auth/me?token={session.refresh_token}", headers={"Cookie": "a=b"})

    paths = [line["path"] for line in json_log.lines("keyturn.access")]
    assert paths[-2:] == ["/api/auth/me", "/api/auth/me"]
    for secret in (session.access_token, session.refresh_token, DEFAULT_PASSWORD):
        assert secret not in json_log.text
    assert "access_token=" not in json_log.text and "Bearer" not in json_log.text


async def test_the_access_log_can_be_turned_off(make_api: ApiFactory, json_log: JsonLog) -> None:
    """KEYTURN_ACCESS_LOG=false: requests are served and no access line is written (by that
    instance; one with the default setting, on the same database, writes its lines)."""
    quiet = await make_api(access_log=False)
    assert (await quiet.get("/healthz")).status_code == 200
    await login(quiet)
    assert json_log.lines("keyturn.access") == []

    default = await make_api()
    assert (await default.get("/healthz")).status_code == 200
    assert [line["path"] for line in json_log.lines("keyturn.access")] == ["/healthz"]


async def test_a_lockout_is_logged_as_a_warning(make_api: ApiFactory, json_log: JsonLog) -> None:
    """Past the failure limit the refusal is audited and logged at WARNING."""
    api = await make_api(login_max_failures=2)
    await login(api)
    wrong = {"email": "ada@example.com", "password": "not the password at all"}
    for _ in range(2):
        assert (await api.post("/api/auth/login", json=wrong)).status_code == 401
    assert (await api.post("/api/auth/login", json=wrong)).status_code == 429

    warnings = [line for line in json_log.lines("keyturn.security") if line["level"] == "WARNING"]
    assert [line["event"] for line in warnings] == ["login_locked"]
    assert warnings[0]["client"] == TEST_CLIENT_ADDRESS[0]
    assert "not the password" not in json_log.text


async def test_refresh_token_reuse_is_logged_as_a_warning(
    api: httpx.AsyncClient, clock: FrozenClock, json_log: JsonLog
) -> None:
    """A rotated refresh token presented after the grace window: a WARNING naming the
    session it ended, and no token in the line."""
    session = await login(api)
    assert (await refresh(api, session.refresh_token)).status_code == 200
    clock.advance(seconds=30)

    replay = await refresh(api, session.refresh_token)

    assert (replay.status_code, replay.json()["error"]) == (401, "refresh_token_reused")
    warnings = [line for line in json_log.lines("keyturn.security") if line["level"] == "WARNING"]
    assert [line["event"] for line in warnings] == ["refresh_token_reused"]
    assert warnings[0]["user_id"] == session.user["id"]
    assert warnings[0]["session_id"]
    assert session.refresh_token not in json_log.text


async def test_a_refused_oversized_body_is_logged_too(
    api: httpx.AsyncClient, json_log: JsonLog
) -> None:
    """The 413 the envelope answers itself gets its line like any other answer."""
    body = b'{"email": "' + b"a" * 200_000 + b'@example.com"}'
    response = await api.post(
        "/api/auth/login", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == 413
    lines = json_log.lines("keyturn.access")
    assert [(line["path"], line["status"]) for line in lines] == [("/api/auth/login", 413)]
