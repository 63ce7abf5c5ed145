"""The access check on every request costs no database round trip in the common case."""

from __future__ import annotations

import gc

import httpx
from sqlalchemy import event

from keyturn.http.app import create_app
from tests.support.api import bearer, login


async def test_repeated_me_runs_no_sql(api: httpx.AsyncClient) -> None:
    tokens = await login(api)
    engine = api.app.state.services.database.engine  # type: ignore[attr-defined]
    statements: list[str] = []

    def record(_conn, _cursor, statement, parameters, *_args) -> None:
        # The mail sender delivers the registration's mail in the background and audits it.
        mail_delivery = "mail_outbox" in statement or (
            isinstance(parameters, dict) and str(parameters.get("event", "")).startswith("mail_")
        )
        if not mail_delivery:
            statements.append(statement)

    await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    event.listen(engine, "before_cursor_execute", record)
    try:
        for _ in range(20):
            response = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
            assert response.status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", record)
    polls = [s for s in statements if "revocations" in s or "signing_keys" in s]
    assert statements == polls  # only the background feed ran, never the request path


async def test_a_serving_app_freezes_its_start_up_heap(make_settings, clock) -> None:
    """A server's long-lived objects are out of the collector's full passes (no 60 ms pauses)."""
    app = create_app(make_settings(), clock=clock, freeze_heap=True)
    before = gc.get_freeze_count()
    try:
        async with app.router.lifespan_context(app):
            assert gc.get_freeze_count() > max(before, 10_000)
    finally:
        gc.unfreeze()
