"""Two real `keyturn serve` instances on one PostgreSQL database and one SMTP server: each
sends the mail of the other's requests too, every message arrives exactly once, and a link
asked for on one instance works on the other."""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from email.message import EmailMessage
from urllib.parse import unquote

import pytest

from tests.support.api import DEFAULT_PASSWORD
from tests.support.instances import HttpxCaller
from tests.support.processes import ServerFactory
from tests.support.smtp import SmtpServer, free_port

pytestmark = [
    pytest.mark.system,
    pytest.mark.postgres,
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

ORIGIN = "https://auth.keyturn.test"
USERS = 10


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port(), auth=False)
    server.start()
    yield server
    server.stop()


def wait_for_mail(smtp: SmtpServer, count: int, timeout: float = 30) -> list[EmailMessage]:
    deadline = time.monotonic() + timeout
    while len(smtp.received) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    return [mail.message for mail in smtp.received]


def reset_token_in(message: EmailMessage) -> str | None:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    found = re.search(re.escape(ORIGIN) + r"/reset-password#token=(\S+)", part.get_content())  # type: ignore[attr-defined]
    return unquote(found.group(1)) if found else None


def test_two_instances_deliver_every_mail_once_and_honour_each_others_links(
    make_server: ServerFactory, postgres_url: str, smtp: SmtpServer
) -> None:
    """Registrations and reset requests alternate between the instances; each of the 2N
    messages arrives exactly once (no duplicate Message-ID, two per user). A reset link asked
    for on one instance resets the password on the other, and the old session ends on both
    (on the other within a poll of the revocation feed)."""
    environment = {
        "KEYTURN_DATABASE_URL": postgres_url,
        "KEYTURN_SMTP_URL": f"smtp://127.0.0.1:{smtp.port}",
        "KEYTURN_MAIL_FROM": "Keyturn <no-reply@keyturn.test>",
        "KEYTURN_PUBLIC_ORIGIN": ORIGIN,
        "KEYTURN_ISSUER": "http://auth.keyturn.test",
        "KEYTURN_REGISTER_MAX_PER_IP": "1000",
        "KEYTURN_EMAIL_MAX_PER_IP": "1000",
    }
    servers = [make_server(**environment), make_server(**environment)]
    callers = [HttpxCaller(server.url, f"instance {n}") for n, server in enumerate(servers)]
    try:
        for n in range(USERS):
            email = f"user{n}@example.com"
            created = callers[n % 2].call(
                "POST",
                "/api/auth/register",
                json_body={"email": email, "password": DEFAULT_PASSWORD},
            )
            assert created.status == 201, created.body
            asked = callers[(n + 1) % 2].call(
                "POST", "/api/auth/password/forgot", json_body={"email": email}
            )
            assert asked.status == 202, asked.body

        messages = wait_for_mail(smtp, 2 * USERS)
        time.sleep(3)  # past a poll of both senders: a duplicate would have arrived by now
        messages = [mail.message for mail in smtp.received]
        assert len(messages) == 2 * USERS
        assert len({message["Message-ID"] for message in messages}) == 2 * USERS
        per_recipient = Counter(str(message["To"]) for message in messages)
        assert set(per_recipient.values()) == {2}

        session = callers[0].call(
            "POST",
            "/api/auth/login",
            json_body={"email": "user0@example.com", "password": DEFAULT_PASSWORD},
        )
        assert session.status == 200
        access = {"Authorization": f"Bearer {session.body['access_token']}"}
        [token] = [
            found
            for message in messages
            if str(message["To"]) == "user0@example.com"
            and (found := reset_token_in(message)) is not None
        ]
        reset = callers[0].call(
            "POST",
            "/api/auth/password/reset",
            json_body={"token": token, "new_password": "a new passphrase for user zero"},
        )
        assert reset.status == 204, reset.body
        # At once where the reset ran; on the other instance within a poll of the database
        # feed (KEYTURN_REVOCATION_POLL_SECONDS; Redis, not used here, makes it immediate).
        assert callers[0].call("GET", "/api/auth/me", headers=access).error == (
            401,
            "invalid_token",
        )
        deadline = time.monotonic() + 2
        while callers[1].call("GET", "/api/auth/me", headers=access).status == 200:
            assert time.monotonic() < deadline, "the other instance still accepts the token"
            time.sleep(0.02)
        assert callers[1].call("GET", "/api/auth/me", headers=access).error == (
            401,
            "invalid_token",
        )
        again = callers[1].call(
            "POST",
            "/api/auth/password/reset",
            json_body={"token": token, "new_password": "another new passphrase here"},
        )
        assert again.error == (400, "invalid_token")
    finally:
        for caller in callers:
            caller.close()
