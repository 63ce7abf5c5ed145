"""Every operation of the live /openapi.json, fuzzed by schemathesis against `keyturn serve`:
no 5xx, and every answer (status, content type, headers, body) as the document says.

Protected operations get a bearer token (an admin's under /api/admin, else a fresh user's),
so the cases reach past the 401. Bounded for CI: KEYTURN_FUZZ_EXAMPLES per operation.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.support.api import DEFAULT_PASSWORD
from tests.support.processes import KeyturnServer, ServerFactory, run_cli

pytestmark = pytest.mark.system

EXAMPLES = int(os.environ.get("KEYTURN_FUZZ_EXAMPLES", "12"))
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
ADMIN_EMAIL = "admin@example.com"
USER_EMAIL = "user@example.com"


class Bearers:
    """A current access token per account: logged in again whenever a case (a logout, the
    end of a session) made the last one stop working."""

    def __init__(self, server: KeyturnServer) -> None:
        self.client = httpx.Client(base_url=server.url, timeout=30)
        self.tokens: dict[str, str] = {}

    def headers(self, email: str) -> dict[str, str]:
        token = self.tokens.get(email)
        if token is not None:
            check = self.client.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
            if check.status_code != 200:
                token = None
        if token is None:
            login = self.client.post(
                "/api/auth/login", json={"email": email, "password": DEFAULT_PASSWORD}
            )
            assert login.status_code == 200, login.text
            token = self.tokens[email] = login.json()["access_token"]
        return {"Authorization": f"Bearer {token}"}


def fuzz_operation(
    operation: Any,
    *,
    base_url: str,
    session: requests.Session,
    headers: Callable[[], dict[str, str]],
) -> int:
    """Run the operation's generated cases; the number run. Raises the first failure."""
    runs = 0

    # Positive cases reach the operation's work; negative ones (wrong types, missing or
    # extra fields, malformed values) must get a documented 4xx, never a 5xx.
    @given(
        case=st.one_of(
            operation.as_strategy(GenerationMode.POSITIVE),
            operation.as_strategy(GenerationMode.NEGATIVE),
        )
    )
    @settings(
        max_examples=EXAMPLES,
        # The same cases each run, so a red run is this change's doing;
        # KEYTURN_FUZZ_RANDOM=1 explores new ones (docs/testing.md).
        derandomize=not os.environ.get("KEYTURN_FUZZ_RANDOM"),
        deadline=None,
        database=None,
        phases=[Phase.explicit, Phase.generate],  # the failing case is reported as found
        suppress_health_check=list(HealthCheck),
    )
    def run(case: Any) -> None:
        nonlocal runs
        runs += 1
        case.call_and_validate(base_url=base_url, session=session, headers=headers(), checks=CHECKS)

    run()
    return runs


@pytest.mark.timeout(300)
def test_every_operation_answers_as_documented(
    make_server: ServerFactory, database_url: str, tmp_path: Any
) -> None:
    variables = {
        "KEYTURN_DATABASE_URL": database_url,
        # Generated requests come from one address; the limits are tested elsewhere.
        "KEYTURN_REGISTER_MAX_PER_IP": "100000",
        "KEYTURN_LOGIN_MAX_FAILURES_PER_IP": "100000",
        "KEYTURN_EMAIL_MAX_PER_IP": "100000",
    }
    server = make_server(**variables)
    for email, role in ((ADMIN_EMAIL, "admin"), (USER_EMAIL, "user")):
        created = run_cli(
            "users",
            "create",
            "--email",
            email,
            "--role",
            role,
            "--password-stdin",
            cwd=tmp_path,
            stdin=DEFAULT_PASSWORD + "\n",
            env=server.env,
        )
        assert created.returncode == 0, created.stderr
    bearers = Bearers(server)
    schema = schemathesis.openapi.from_url(f"{server.url}/openapi.json")
    started = time.monotonic()
    session = requests.Session()
    failures: list[str] = []
    operations = cases = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        email = ADMIN_EMAIL if operation.path.startswith("/api/admin") else USER_EMAIL
        operations += 1
        try:
            cases += fuzz_operation(
                operation,
                base_url=server.url,
                session=session,
                headers=lambda email=email: bearers.headers(email),
            )
        except BaseException as failure:  # every operation runs; all failures are listed below
            if not isinstance(failure, Exception | BaseExceptionGroup):
                raise
            failures.append(f"{operation.method.upper()} {operation.path}: {failure}")
    session.close()
    bearers.client.close()
    print(f"{operations} operations, {cases} cases in {time.monotonic() - started:.1f} s")
    assert not failures, "\n\n".join(failures)
