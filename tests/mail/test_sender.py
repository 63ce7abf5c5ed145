"""The outbox and its sender against a real SMTP server (aiosmtpd on 127.0.0.1)."""

from __future__ import annotations

import asyncio
import email
import email.policy
import logging
import stat
import time
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from keyturn.clock import FrozenClock, SystemClock
from keyturn.config import Settings
from keyturn.mail.sender import Mailer, MailSender
from keyturn.mail.transports import DEVELOPMENT_MAIL_DIR, FileTransport, SmtpTransport
from keyturn.storage.db import Database
from keyturn.storage.models import audit_events, mail_outbox
from tests.support.smtp import PASSWORD, USER, SmtpServer, free_port, self_signed_certificate

# aiosmtpd itself (the test server, in its own thread) touches its own deprecated attribute
# during AUTH, and warns when AUTH is offered without TLS, which the plain-SMTP test wants.
pytestmark = [
    pytest.mark.filterwarnings("ignore:Session.login_data is deprecated:DeprecationWarning"),
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

TOKEN = "tok-7f3a9c"
VARIABLES = {"token": TOKEN, "ttl_seconds": 1800}


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def servers() -> Iterator[list[SmtpServer]]:
    started: list[SmtpServer] = []
    yield started
    for server in started:
        server.stop()


def settings_for(database: Database, smtp_url: str | None, **extra: Any) -> Settings:
    return Settings(  # type: ignore[call-arg]
        _env_file=None,
        database_url=database.url.replace("postgresql+psycopg://", "postgresql://"),
        smtp_url=smtp_url,
        mail_from="Keyturn <no-reply@keyturn.test>",
        public_origin="https://auth.keyturn.test",
        smtp_timeout_seconds=5,
        **extra,
    )


def enqueue(database: Database, settings: Settings, clock: FrozenClock, to: str, **kw: Any) -> int:
    mailer = Mailer(settings, clock, sender=None)
    with database.transaction() as connection:
        return mailer.enqueue(
            connection,
            to=to,
            name=kw.get("name", "reset_password"),
            locale=kw.get("locale", "en"),
            variables=VARIABLES,
            user_id="u1",
        )


def outbox_row(database: Database, mail_id: int) -> Any:
    with database.snapshot() as connection:
        return connection.execute(select(mail_outbox).where(mail_outbox.c.id == mail_id)).one()


def smtp_sender(
    database: Database,
    clock: FrozenClock,
    port: int,
    *,
    scheme: str = "smtp",
    query: str = "",
    tls: Any = None,
    **extra: Any,
) -> MailSender:
    url = f"{scheme}://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{port}{query}"
    settings = settings_for(database, url, **extra)
    transport = SmtpTransport(url, timeout=5, tls_context=tls)
    return MailSender(settings, database, clock, transport=transport)


@pytest.mark.parametrize("mode", ["plain", "starttls", "smtps"])
async def test_mail_arrives_over_smtp_with_login(
    database: Database, clock: FrozenClock, servers: list[SmtpServer], tmp_path: Path, mode: str
) -> None:
    """Plain SMTP, STARTTLS and implicit TLS, each with AUTH: a multipart Korean message."""
    certificate = self_signed_certificate()
    port = free_port()
    server = SmtpServer(port=port, mode=mode, tls=certificate.server_context(tmp_path))
    servers.append(server)
    server.start()
    scheme, query = {
        "plain": ("smtp", ""),
        "starttls": ("smtp", "?starttls=true"),
        "smtps": ("smtps", ""),
    }[mode]
    sender = smtp_sender(
        database, clock, port, scheme=scheme, query=query, tls=certificate.client_context()
    )
    mail_id = enqueue(database, sender._settings, clock, "ada@example.com", locale="ko")

    assert await sender.deliver_due() == 1

    [received] = server.received
    assert received.envelope_from == "no-reply@keyturn.test"
    assert received.recipients == ["ada@example.com"]
    message = received.message
    assert message["Subject"] == "비밀번호 재설정"
    assert message["From"] == "Keyturn <no-reply@keyturn.test>"
    assert message.get_content_type() == "multipart/alternative"
    text, html = message.get_body(("plain",)), message.get_body(("html",))
    assert text is not None and html is not None
    link = f"https://auth.keyturn.test/reset-password#token={TOKEN}"
    assert link in text.get_content() and link in html.get_content()
    row = outbox_row(database, mail_id)
    assert (row.status, row.attempts, row.message) == ("sent", 1, None)
    with database.snapshot() as connection:
        events = connection.execute(select(audit_events.c.event, audit_events.c.user_id)).all()
    assert ("mail_delivered", "u1") in [tuple(event) for event in events]


async def test_a_wrong_password_is_retried_not_delivered(
    database: Database, clock: FrozenClock, servers: list[SmtpServer]
) -> None:
    port = free_port()
    server = SmtpServer(port=port)
    servers.append(server)
    server.start()
    url = f"smtp://{USER}:wrong@127.0.0.1:{port}"
    settings = settings_for(database, url)
    sender = MailSender(settings, database, clock, transport=SmtpTransport(url, timeout=5))
    mail_id = enqueue(database, settings, clock, "ada@example.com")

    await sender.deliver_due()

    row = outbox_row(database, mail_id)
    assert server.received == []
    assert row.status == "pending" and row.last_error.startswith("auth:")


async def test_smtp_down_then_up_delivers_once_without_restart(
    database: Database, clock: FrozenClock, servers: list[SmtpServer]
) -> None:
    """While nothing listens the sender backs off; once the server starts, the same sender
    delivers the message exactly once."""
    port = free_port()
    sender = smtp_sender(database, clock, port)
    mail_id = enqueue(database, sender._settings, clock, "ada@example.com")

    assert await sender.deliver_due() == 1
    first = outbox_row(database, mail_id)
    assert first.status == "pending" and first.last_error.startswith("connection:")
    assert first.next_attempt_at > clock.now()
    assert await sender.deliver_due() == 0  # not due yet: backing off
    clock.advance(seconds=60)
    assert await sender.deliver_due() == 1
    second = outbox_row(database, mail_id)
    assert second.attempts == 2
    # The second wait is longer than the first (exponential back-off).
    assert second.next_attempt_at - clock.now() > first.next_attempt_at - first.created_at

    server = SmtpServer(port=port)
    servers.append(server)
    server.start()
    clock.advance(seconds=60)
    assert await sender.deliver_due() == 1
    clock.advance(seconds=3600)
    assert await sender.deliver_due() == 0

    assert len(server.received) == 1
    assert outbox_row(database, mail_id).status == "sent"


async def test_a_4xx_reply_is_retried_then_delivered(
    database: Database, clock: FrozenClock, servers: list[SmtpServer]
) -> None:
    port = free_port()
    server = SmtpServer(port=port)
    servers.append(server)
    server.start()
    server.handler.defer_next = 2
    sender = smtp_sender(database, clock, port)
    mail_id = enqueue(database, sender._settings, clock, "ada@example.com")

    for _ in range(3):
        await sender.deliver_due()
        clock.advance(seconds=120)

    row = outbox_row(database, mail_id)
    assert (row.status, row.attempts, len(server.received)) == ("sent", 3, 1)


async def test_a_5xx_reply_fails_at_once_with_the_reason(
    database: Database, clock: FrozenClock, servers: list[SmtpServer]
) -> None:
    port = free_port()
    server = SmtpServer(port=port)
    servers.append(server)
    server.start()
    server.handler.reject.add("gone@example.com")
    sender = smtp_sender(database, clock, port)
    mail_id = enqueue(database, sender._settings, clock, "gone@example.com")

    await sender.deliver_due()
    clock.advance(seconds=3600)
    assert await sender.deliver_due() == 0

    row = outbox_row(database, mail_id)
    assert (row.status, row.attempts, row.message) == ("failed", 1, None)
    assert "550" in row.last_error and "No such mailbox" in row.last_error
    with database.snapshot() as connection:
        events = connection.execute(select(audit_events.c.event)).scalars().all()
    assert "mail_failed" in events


async def test_gives_up_after_the_attempt_bound(database: Database, clock: FrozenClock) -> None:
    sender = smtp_sender(database, clock, free_port(), mail_max_attempts=3)
    mail_id = enqueue(database, sender._settings, clock, "ada@example.com")

    for _ in range(5):
        await sender.deliver_due()
        clock.advance(seconds=3600)

    row = outbox_row(database, mail_id)
    assert (row.status, row.attempts) == ("failed", 3)
    assert row.last_error.startswith("gave up after 3 attempts; last: connection:")


async def test_two_senders_on_one_database_deliver_each_message_once(
    database_url: str, clock: FrozenClock, servers: list[SmtpServer]
) -> None:
    """Two instances (two engines) claim concurrently; every message arrives exactly once."""
    port = free_port()
    server = SmtpServer(port=port)
    servers.append(server)
    server.start()
    first_db, second_db = Database(database_url), Database(database_url)
    try:
        first = smtp_sender(first_db, clock, port)
        second = smtp_sender(second_db, clock, port)
        first._batch_size = second._batch_size = 3
        ids = [enqueue(first_db, first._settings, clock, f"user{n}@example.com") for n in range(30)]

        async def drain(sender: MailSender) -> int:
            handled = 0
            while (claimed := await sender.deliver_due()) > 0:
                handled += claimed
            return handled

        handled = await asyncio.gather(drain(first), drain(second))

        assert sum(handled) == len(ids)
        recipients = sorted(r.recipients[0] for r in server.received)
        assert recipients == sorted(f"user{n}@example.com" for n in range(30))
    finally:
        first_db.dispose()
        second_db.dispose()


async def test_enqueue_wakes_the_running_sender(
    database: Database, servers: list[SmtpServer]
) -> None:
    """A commit that enqueued mail wakes the sender at once, long before its next poll."""
    port = free_port()
    server = SmtpServer(port=port)
    servers.append(server)
    server.start()
    clock = SystemClock()
    url = f"smtp://{USER}:{PASSWORD.replace(' ', '%20')}@127.0.0.1:{port}"
    settings = settings_for(database, url)
    sender = MailSender(
        settings, database, clock, transport=SmtpTransport(url, timeout=5), poll_seconds=60
    )
    stopping = asyncio.Event()
    task = asyncio.create_task(sender.run(stopping))
    await asyncio.sleep(0.2)  # the first round found nothing; the next poll is a minute away
    mailer = Mailer(settings, clock, sender=sender)

    with database.transaction() as connection:
        mailer.enqueue(
            connection,
            to="ada@example.com",
            name="verify_email",
            locale="en",
            variables=VARIABLES,
        )
    deadline = time.monotonic() + 5
    while not server.received and time.monotonic() < deadline:
        await asyncio.sleep(0.02)
    stopping.set()
    await task

    assert len(server.received) == 1
    assert time.monotonic() < deadline


async def test_development_without_smtp_writes_private_eml_files(
    database: Database,
    clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No SMTP in development: ./.keyturn/mail/<...>.eml (0600 in a 0700 folder), and the log
    names the file, never the link."""
    monkeypatch.chdir(tmp_path)
    settings = settings_for(database, None)
    sender = MailSender(settings, database, clock, transport=FileTransport(DEVELOPMENT_MAIL_DIR))
    mail_id = enqueue(database, settings, clock, "ada@example.com")

    with caplog.at_level(logging.INFO, logger="keyturn.mail"):
        await sender.deliver_due()

    [path] = (tmp_path / ".keyturn" / "mail").glob("*.eml")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    saved = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    assert isinstance(saved, EmailMessage)
    text = saved.get_body(("plain",))
    assert text is not None and f"/reset-password#token={TOKEN}" in text.get_content()
    assert str(path) in caplog.text
    assert TOKEN not in caplog.text
    assert outbox_row(database, mail_id).status == "sent"


async def test_sender_throughput_to_a_local_server(
    database_url: str, clock: FrozenClock, servers: list[SmtpServer]
) -> None:
    """Measure (and print) mails per second to a local aiosmtpd: 200 messages."""
    port = free_port()
    server = SmtpServer(port=port, auth=False)
    servers.append(server)
    server.start()
    database = Database(database_url)
    try:
        url = f"smtp://127.0.0.1:{port}"
        settings = settings_for(database, url)
        sender = MailSender(settings, database, clock, transport=SmtpTransport(url, timeout=5))
        for n in range(200):
            enqueue(database, settings, clock, f"user{n}@example.com")
        started = time.perf_counter()
        while await sender.deliver_due():
            pass
        elapsed = time.perf_counter() - started
    finally:
        database.dispose()
    assert len(server.received) == 200
    backend = database_url.split(":", 1)[0]
    print(f"\nmail sender ({backend}): 200 mails in {elapsed:.2f} s = {200 / elapsed:.0f} mails/s")
