"""Prometheus metrics (the official prometheus_client) and the middleware that times requests.

Counters for logins, refreshes, refresh-token reuse and revocations; a latency histogram per
route template (`/api/admin/users/{user_id}`, never the raw path, so the series stay few).
Under `keyturn serve --workers N` the server sets PROMETHEUS_MULTIPROC_DIR before the
workers start and /metrics sums every worker (prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os
import time
from typing import Final

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client import multiprocess as prometheus_multiprocess
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from keyturn.observability.logging import bind_request_id

MULTIPROCESS_ENV: Final = "PROMETHEUS_MULTIPROC_DIR"
UNMATCHED_ROUTE: Final = "<unmatched>"
_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})

LOGINS = Counter("keyturn_logins", "Login attempts by outcome: ok, failed or locked.", ["outcome"])
REFRESHES = Counter(
    "keyturn_refreshes",
    "Refresh-token rotations answered: rotated, or repeated within the grace window.",
    ["outcome"],
)
REFRESH_REUSE = Counter(
    "keyturn_refresh_reuse_detections",
    "Rotated refresh tokens presented after the grace window; each ended a session.",
)
REVOCATIONS = Counter(
    "keyturn_revocations",
    "Actions that ended sessions or revoked tokens, by reason (the audit event).",
    ["reason"],
)
HASHING_REFUSED = Counter(
    "keyturn_password_hashing_refused",
    "Requests that needed a password hash and got none: overloaded (the queue was full) or"
    " gone (the client left while it waited).",
    ["reason"],
)
LINK_TOKENS_REFUSED = Counter(
    "keyturn_link_tokens_refused",
    "Tokens of mailed links refused (400 invalid_token), by reason.",
    ["reason"],
)
PROVIDER_SIGN_INS = Counter(
    "keyturn_provider_sign_ins",
    "Callbacks from a sign-in provider by provider, flow (sign_in or link) and outcome: ok,"
    " linked, or the error code the browser was sent back with.",
    ["provider", "flow", "outcome"],
)
IDENTITY_CHANGES = Counter(
    "keyturn_identity_changes",
    "Provider identities linked to or unlinked from accounts, by provider.",
    ["provider", "change"],
)
AUDIT_EVENTS = Counter("keyturn_audit_events", "Audit events written, by event.", ["event"])
MAILS_DELIVERED = Counter(
    "keyturn_mails_delivered", "Mail handed to the SMTP server (or written as .eml).", ["message"]
)
MAILS_FAILED = Counter(
    "keyturn_mails_failed",
    "Mail given up on, by reason: rejected (5xx) or gave_up (attempts or age bound).",
    ["reason"],
)
MAIL_RETRIES = Counter(
    "keyturn_mail_retries",
    "Delivery attempts to be tried again, by reason: connection, timeout, tls, auth, deferred.",
    ["reason"],
)
# Every instance counts the same table: the largest recent reading is the depth.
MAIL_OUTBOX_DEPTH = Gauge(
    "keyturn_mail_outbox_pending",
    "Messages waiting in the outbox, as last counted by a sender.",
    multiprocess_mode="livemax",
)
REQUEST_SECONDS = Histogram(
    "keyturn_http_request_duration_seconds",
    "Time to answer an HTTP request, by method, route template and status.",
    ["method", "route", "status"],
    buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0),
)

_LOGIN_OUTCOMES = {"login_succeeded": "ok", "login_failed": "failed", "login_locked": "locked"}
_REVOKING_EVENTS = frozenset(
    {
        "logout",
        "logout_all",
        "session_revoked",
        "session_evicted",
        "access_token_revoked",
        "password_changed",
        "password_reset",
        "user_disabled",
        "roles_changed",
        "refresh_token_reused",
    }
)


def count_event(event: str) -> None:
    """Count an audit event, and the login, reuse or revocation it stands for."""
    AUDIT_EVENTS.labels(event).inc()
    outcome = _LOGIN_OUTCOMES.get(event)
    if outcome is not None:
        LOGINS.labels(outcome).inc()
    if event == "refresh_token_reused":
        REFRESH_REUSE.inc()
    if event in _REVOKING_EVENTS:
        REVOCATIONS.labels(event).inc()


def count_provider_sign_in(provider: str, outcome: str, *, linking: bool) -> None:
    PROVIDER_SIGN_INS.labels(provider, "link" if linking else "sign_in", outcome).inc()


def count_identity_change(provider: str, change: str) -> None:
    IDENTITY_CHANGES.labels(provider, change).inc()


def count_link_token_refused(reason: str) -> None:
    LINK_TOKENS_REFUSED.labels(reason).inc()


def count_hashing_refused(reason: str) -> None:
    HASHING_REFUSED.labels(reason).inc()


def count_refresh(*, repeated: bool) -> None:
    _REFRESH_OUTCOMES[repeated].inc()


# Every refresh counts one of these two; looking the child up by label on each costs more
# than the increment.
_REFRESH_OUTCOMES = {False: REFRESHES.labels("rotated"), True: REFRESHES.labels("repeated")}


def render_metrics() -> tuple[bytes, str]:
    """The exposition text and its content type; every worker's when in multiprocess mode."""
    if os.environ.get(MULTIPROCESS_ENV):
        registry = CollectorRegistry()
        prometheus_multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST


class RequestObserver:
    """Pure ASGI (no BaseHTTPMiddleware: it sits on every token check's path): binds the
    request id for logs and times the request by its route template."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._children: dict[tuple[str, str, int], Histogram] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        bind_request_id(scope.get("state", {}).get("request_id"))
        status = 500
        started = time.perf_counter()

        async def send_observed(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_observed)
        finally:
            self._histogram(scope, status).observe(time.perf_counter() - started)

    def _histogram(self, scope: Scope, status: int) -> Histogram:
        route = getattr(scope.get("route"), "path", None) or UNMATCHED_ROUTE
        method = scope["method"] if scope["method"] in _METHODS else "OTHER"
        key = (method, route, status)
        child = self._children.get(key)
        if child is None:
            child = REQUEST_SECONDS.labels(method, route, str(status))
            self._children[key] = child
        return child
