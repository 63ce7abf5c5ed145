"""Metrics at /metrics, the audit trail at /api/admin/audit, and no secret in logs or audit."""

from __future__ import annotations

import io
import json
import logging
import re

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from keyturn.clock import FrozenClock
from keyturn.http.middleware import RequestEnvelope
from keyturn.observability.logging import JsonFormatter, RedactionFilter
from keyturn.observability.metrics import RequestObserver
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, login, register
from tests.support.metrics import metric, scrape

ADMIN_PASSWORD = "admin password that is long enough"


async def admin_login(api: httpx.AsyncClient) -> str:
    services = api.app.state.services  # type: ignore[attr-defined]
    services.accounts.register(
        email="root@example.com", password=ADMIN_PASSWORD, roles=("admin", "user")
    )
    response = await api.post(
        "/api/auth/login", json={"email": "root@example.com", "password": ADMIN_PASSWORD}
    )
    assert response.status_code == 200
    token: str = response.json()["access_token"]
    return token


async def test_metrics_count_logins_refreshes_reuse_and_revocations(
    api: httpx.AsyncClient, clock: FrozenClock
) -> None:
    """Each counter moves with the event it names."""
    before = await scrape(api)
    tokens = await login(api)
    await api.post("/api/auth/login", json={"email": "ada@example.com", "password": "wrong"})
    renewed = await api.post("/api/auth/refresh", json={"refresh_token": tokens.refresh_token})
    assert renewed.status_code == 200
    clock.advance(seconds=60)
    reused = await api.post("/api/auth/refresh", json={"refresh_token": tokens.refresh_token})
    assert error_of(reused) == (401, "refresh_token_reused")
    for _ in range(4):
        await api.post("/api/auth/login", json={"email": "ada@example.com", "password": "wrong"})
    locked = await api.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "ada@example.com", "password": "x"},
    )
    assert locked.status_code == 429
    after = await scrape(api)

    def delta(name: str, **labels: str) -> float:
        return metric(after, name, **labels) - metric(before, name, **labels)

    assert delta("keyturn_logins_total", outcome="ok") == 1
    assert delta("keyturn_logins_total", outcome="failed") == 5
    assert delta("keyturn_logins_total", outcome="locked") == 1
    assert delta("keyturn_refreshes_total", outcome="rotated") == 1
    assert delta("keyturn_refresh_reuse_detections_total") == 1
    assert delta("keyturn_revocations_total", reason="refresh_token_reused") == 1


async def test_latency_is_labelled_by_route_template(api: httpx.AsyncClient) -> None:
    """Histograms use the route template, never the raw path (which would explode series)."""
    token = await admin_login(api)
    await api.get("/api/admin/users/some-user-id", headers=bearer(token))
    await api.get("/no/such/path/12345")
    text = await scrape(api)
    name = "keyturn_http_request_duration_seconds_count"
    assert metric(text, name, method="GET", route="/api/admin/users/{user_id}", status="404") >= 1
    assert metric(text, name, method="GET", route="<unmatched>", status="404") >= 1
    assert "some-user-id" not in text
    assert "12345" not in text


async def test_audit_lists_events_paged_and_filtered(api: httpx.AsyncClient) -> None:
    """Admins page through the trail newest first and filter it by user and event."""
    token = await admin_login(api)
    ada = await login(api)
    await api.post("/api/auth/login", json={"email": "ada@example.com", "password": "wrong"})
    await api.post("/api/auth/logout", headers=bearer(ada.access_token))

    everything = await api.get("/api/admin/audit", headers=bearer(token))
    assert everything.status_code == 200
    body = everything.json()
    events = [item["event"] for item in body["events"]]
    assert events[:3] == ["logout", "login_failed", "login_succeeded"]
    assert body["total"] == len(body["events"])

    mine = await api.get(
        "/api/admin/audit", params={"user_id": ada.user["id"]}, headers=bearer(token)
    )
    assert {item["user_id"] for item in mine.json()["events"]} == {ada.user["id"]}
    assert [item["event"] for item in mine.json()["events"]] == [
        "logout",
        "login_failed",
        "login_succeeded",
        "user_registered",
    ]

    failed = await api.get(
        "/api/admin/audit", params={"event": "login_failed", "limit": 1}, headers=bearer(token)
    )
    page = failed.json()
    assert (page["total"], page["limit"], len(page["events"])) == (1, 1, 1)
    assert page["events"][0]["ip"] == "203.0.113.7"

    second_page = await api.get(
        "/api/admin/audit", params={"limit": 2, "offset": 2}, headers=bearer(token)
    )
    assert [item["event"] for item in second_page.json()["events"]] == events[2:4]


async def test_audit_needs_the_admin_role(api: httpx.AsyncClient) -> None:
    tokens = await login(api)
    response = await api.get("/api/admin/audit", headers=bearer(tokens.access_token))
    assert error_of(response) == (403, "insufficient_role")
    assert error_of(await api.get("/api/admin/audit")) == (401, "missing_token")


@pytest.mark.parametrize(
    "params",
    [
        {"limit": "0"},
        {"limit": "abc"},
        {"offset": "-1"},
        {"user_id": "a\x00b"},
        {"event": "x" * 100},
        {"event": "LOGIN'--"},
    ],
)
async def test_audit_refuses_bad_queries_with_4xx(
    api: httpx.AsyncClient, params: dict[str, str]
) -> None:
    token = await admin_login(api)
    response = await api.get("/api/admin/audit", params=params, headers=bearer(token))
    assert response.status_code == 422


async def test_no_secret_reaches_logs_or_the_audit_trail(
    api: httpx.AsyncClient, clock: FrozenClock, caplog: pytest.LogCaptureFixture
) -> None:
    """Every security event is audited, and no token or password appears in a log line or an
    audit row."""
    caplog.set_level(logging.DEBUG)
    secrets: list[str] = [DEFAULT_PASSWORD, ADMIN_PASSWORD, "wrong password 123"]
    admin_token = await admin_login(api)
    user = await register(api, "ada@example.com", username="ada")
    first = await login(api, create=False)
    second = await login(api, create=False)
    secrets += [first.access_token, first.refresh_token, second.access_token, admin_token]
    await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": "wrong password 123"}
    )
    renewed = await api.post("/api/auth/refresh", json={"refresh_token": first.refresh_token})
    secrets += [renewed.json()["access_token"], renewed.json()["refresh_token"]]
    clock.advance(seconds=60)
    await api.post("/api/auth/refresh", json={"refresh_token": first.refresh_token})  # reuse
    new_password = "an entirely new passphrase"
    secrets.append(new_password)
    changed = await api.post(
        "/api/auth/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": new_password},
        headers=bearer(second.access_token),
    )
    assert changed.status_code == 204
    oauth = await api.post(
        "/oauth/token",
        data={"grant_type": "password", "username": "ada", "password": new_password},
    )
    secrets += [oauth.json()["access_token"], oauth.json()["refresh_token"]]
    await api.post("/oauth/revoke", data={"token": oauth.json()["access_token"]})
    logout = await api.post(
        "/api/auth/logout", json={"refresh_token": oauth.json()["refresh_token"]}
    )
    assert logout.status_code == 204
    logout_all = await api.post("/api/auth/logout-all", headers=bearer(second.access_token))
    assert logout_all.status_code == 204
    for action in ("disable", "enable"):
        response = await api.post(
            f"/api/admin/users/{user['id']}/{action}", headers=bearer(admin_token)
        )
        assert response.status_code == 204
    roles = await api.put(
        f"/api/admin/users/{user['id']}/roles",
        json={"roles": ["user"]},
        headers=bearer(admin_token),
    )
    assert roles.status_code == 200
    for _ in range(6):
        await api.post("/api/auth/login", json={"email": "ada@example.com", "password": "nope"})

    audit = await api.get("/api/admin/audit", params={"limit": 200}, headers=bearer(admin_token))
    events = {item["event"] for item in audit.json()["events"]}
    assert {
        "user_registered",
        "login_succeeded",
        "login_failed",
        "login_locked",
        "refresh_token_reused",
        "password_changed",
        "access_token_revoked",
        "logout",
        "logout_all",
        "user_disabled",
        "user_enabled",
        "roles_changed",
    } <= events
    audit_text = json.dumps(audit.json())
    for secret in secrets:
        assert secret not in caplog.text
        assert secret not in audit_text
    assert not re.search(r"ktr_[A-Za-z0-9_-]{8}", caplog.text + audit_text)
    assert not re.search(r"eyJ[A-Za-z0-9_-]+\.eyJ", caplog.text + audit_text)


async def test_a_disabled_account_logging_in_is_audited(api: httpx.AsyncClient) -> None:
    """A refused login of a disabled account leaves a login_failed event with the reason."""
    token = await admin_login(api)
    user = await register(api, "ada@example.com")
    await api.post(f"/api/admin/users/{user['id']}/disable", headers=bearer(token))

    refused = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )

    assert error_of(refused) == (403, "account_disabled")
    page = await api.get(
        "/api/admin/audit",
        params={"user_id": user["id"], "event": "login_failed"},
        headers=bearer(token),
    )
    assert [item["detail"] for item in page.json()["events"]] == [{"reason": "account_disabled"}]


async def test_log_lines_written_during_a_request_carry_its_request_id() -> None:
    """The request id RequestEnvelope assigns (or accepts) is in every JSON log line written
    while serving the request."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(RedactionFilter())
    logger = logging.getLogger("keyturn.test-request-id")
    logger.addHandler(handler)
    logger.propagate = False

    async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
        logger.warning("handling %s", scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    app = RequestEnvelope(RequestObserver(endpoint), max_body_bytes=1024)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://x.test"
        ) as client:
            chosen = await client.get("/a", headers={"x-request-id": "trace-42"})
            assigned = await client.get("/b")
    finally:
        logger.removeHandler(handler)
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert [line["request_id"] for line in lines] == [
        "trace-42",
        assigned.headers["x-request-id"],
    ]
    assert chosen.headers["x-request-id"] == "trace-42"
