"""Accounts by email, end to end: the API asks, the sender in upkeep delivers to a real SMTP
server (aiosmtpd), and the test takes the token out of the mailed link and uses it."""

from __future__ import annotations

import asyncio
import logging
import re
import time
from collections.abc import Iterator
from email.message import EmailMessage
from urllib.parse import unquote

import httpx
import pytest
from sqlalchemy import select

from keyturn.clock import FrozenClock
from keyturn.core.email_tokens import hash_email_token
from keyturn.storage.models import email_tokens, mail_outbox
from tests.support.api import DEFAULT_PASSWORD, bearer, error_of, login, register
from tests.support.environment import ApiFactory
from tests.support.smtp import SmtpServer, free_port

pytestmark = [
    pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS:UserWarning"),
]

ORIGIN = "https://auth.keyturn.test"
NEW_PASSWORD = "a brand new passphrase for ada"


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port(), auth=False)
    server.start()
    yield server
    server.stop()


def mail_settings(smtp: SmtpServer) -> dict[str, object]:
    return {
        "smtp_url": f"smtp://127.0.0.1:{smtp.port}",
        "public_origin": ORIGIN,
        "mail_from": "Keyturn <no-reply@keyturn.test>",
        "smtp_timeout_seconds": 5,
    }


async def mails_to(smtp: SmtpServer, address: str, *, count: int) -> list[EmailMessage]:
    """The messages delivered to `address`, once there are at least `count` (10 s at most)."""
    deadline = time.monotonic() + 10
    while True:
        found = [mail.message for mail in smtp.received if address in mail.recipients]
        if len(found) >= count or time.monotonic() > deadline:
            assert len(found) >= count, f"{len(found)} mails to {address}, wanted {count}"
            return found
        await asyncio.sleep(0.02)


def text_of(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return str(part.get_content())  # type: ignore[attr-defined]


def token_in(message: EmailMessage, page: str) -> str:
    """The token in the fragment of the message's link to `page`."""
    found = re.search(re.escape(ORIGIN + page) + r"#token=([^\s\"<>]+)", text_of(message))
    assert found, f"no {page} link in {text_of(message)!r}"
    return unquote(found.group(1))


async def verify(api: httpx.AsyncClient, token: str) -> httpx.Response:
    return await api.post("/api/auth/email/verify", json={"token": token})


async def forgot(api: httpx.AsyncClient, email: str, **headers: str) -> httpx.Response:
    return await api.post("/api/auth/password/forgot", json={"email": email}, headers=headers)


async def reset(api: httpx.AsyncClient, token: str, password: str = NEW_PASSWORD) -> httpx.Response:
    return await api.post(
        "/api/auth/password/reset", json={"token": token, "new_password": password}
    )


async def reset_token(api: httpx.AsyncClient, smtp: SmtpServer, email: str, nth: int) -> str:
    """Ask for a reset link and return the token of the `nth` mail to `email`."""
    assert (await forgot(api, email)).status_code == 202
    return token_in((await mails_to(smtp, email, count=nth))[nth - 1], "/reset-password")


# Verification --------------------------------------------------------------------------------


async def test_registration_mails_a_link_that_verifies_the_address(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """`user.email_verified` is false after registering, true once the mailed link is used;
    the link works once."""
    api = await make_api(**mail_settings(smtp))
    user = await register(api, "ada@example.com")
    assert user["email_verified"] is False

    [mail] = await mails_to(smtp, "ada@example.com", count=1)
    token = token_in(mail, "/verify-email")
    assert len(token) >= 22  # at least 128 bits in base64url

    verified = await verify(api, token)
    assert verified.status_code == 200
    assert verified.json()["user"]["email_verified"] is True
    me = await api.get(
        "/api/auth/me", headers=bearer((await login(api, create=False)).access_token)
    )
    assert me.json()["user"]["email_verified"] is True
    assert error_of(await verify(api, token)) == (400, "invalid_token")


async def test_mail_speaks_the_language_of_the_request_or_of_the_lang_cookie(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """Accept-Language `ko` gives a Korean mail; a `lang` cookie wins over the header."""
    api = await make_api(**mail_settings(smtp))
    await api.post(
        "/api/auth/register",
        json={"email": "min@example.com", "password": DEFAULT_PASSWORD},
        headers={"Accept-Language": "ko-KR,ko;q=0.9"},
    )
    await api.post(
        "/api/auth/register",
        json={"email": "eve@example.com", "password": DEFAULT_PASSWORD},
        headers={"Accept-Language": "ko", "Cookie": "lang=en"},
    )
    [korean] = await mails_to(smtp, "min@example.com", count=1)
    [english] = await mails_to(smtp, "eve@example.com", count=1)
    assert korean["Content-Language"] == "ko"
    assert english["Content-Language"] == "en"


async def test_a_verification_link_expires(
    make_api: ApiFactory, smtp: SmtpServer, clock: FrozenClock
) -> None:
    """After KEYTURN_VERIFY_TTL_SECONDS the link is refused with `invalid_token`."""
    api = await make_api(verify_ttl_seconds=600, **mail_settings(smtp))
    await register(api, "ada@example.com")
    token = token_in((await mails_to(smtp, "ada@example.com", count=1))[0], "/verify-email")
    clock.advance(seconds=601)
    assert error_of(await verify(api, token)) == (400, "invalid_token")


async def test_unknown_tampered_and_wrong_purpose_tokens_get_one_answer(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """A tampered token, a made-up one, a reset token at /email/verify and a verification
    token at /password/reset are all 400 `invalid_token`; none of them is used up."""
    api = await make_api(**mail_settings(smtp))
    await register(api, "ada@example.com")
    verify_token = token_in((await mails_to(smtp, "ada@example.com", count=1))[0], "/verify-email")
    reset_link = await reset_token(api, smtp, "ada@example.com", 2)
    tampered = verify_token[:-1] + ("A" if verify_token[-1] != "A" else "B")

    for response in (
        await verify(api, tampered),
        await verify(api, "x" * 43),
        await verify(api, "not a token at all"),
        await verify(api, reset_link),
        await reset(api, verify_token),
        await reset(api, tampered),
    ):
        assert error_of(response) == (400, "invalid_token")
        assert "WWW-Authenticate" not in response.headers
    assert (await verify(api, verify_token)).status_code == 200
    assert (await reset(api, reset_link)).status_code == 204


async def test_resending_the_verification_link_is_limited(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """Each resend mails a new, working link; past KEYTURN_EMAIL_MAX_PER_ADDRESS it is 429
    with Retry-After. It needs an access token."""
    api = await make_api(email_max_per_address=2, **mail_settings(smtp))
    tokens = await login(api)
    assert error_of(await api.post("/api/auth/email/verify/resend")) == (401, "missing_token")
    for _ in range(2):
        sent = await api.post("/api/auth/email/verify/resend", headers=bearer(tokens.access_token))
        assert sent.status_code == 202
    refused = await api.post("/api/auth/email/verify/resend", headers=bearer(tokens.access_token))
    assert error_of(refused) == (429, "too_many_requests")
    assert int(refused.headers["Retry-After"]) > 0

    mails = await mails_to(smtp, "ada@example.com", count=3)
    assert (await verify(api, token_in(mails[-1], "/verify-email"))).status_code == 200


async def test_login_of_an_unverified_account_is_refused_only_after_the_password(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """With KEYTURN_REQUIRE_VERIFIED_EMAIL, a wrong password is still 401
    `invalid_credentials` (a stranger learns nothing), the right one 403
    `email_not_verified`, on the JSON API and the OAuth password grant; verified, it works."""
    api = await make_api(require_verified_email=True, **mail_settings(smtp))
    await register(api, "ada@example.com")
    wrong = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": "not the password"}
    )
    assert error_of(wrong) == (401, "invalid_credentials")
    right = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )
    assert error_of(right) == (403, "email_not_verified")
    oauth = await api.post(
        "/oauth/token",
        data={
            "grant_type": "password",
            "username": "ada@example.com",
            "password": DEFAULT_PASSWORD,
        },
    )
    assert oauth.status_code == 400 and oauth.json()["error"] == "invalid_grant"

    token = token_in((await mails_to(smtp, "ada@example.com", count=1))[0], "/verify-email")
    assert (await verify(api, token)).status_code == 200
    assert (await login(api, create=False)).user["email_verified"] is True


# Password reset ------------------------------------------------------------------------------


async def test_forgot_password_answers_alike_for_any_address(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """Known, unknown: the same 202 and body; only the known address gets a mail."""
    api = await make_api(**mail_settings(smtp))
    await register(api, "ada@example.com")
    known = await forgot(api, "ada@example.com")
    unknown = await forgot(api, "nobody@example.com")
    assert known.status_code == unknown.status_code == 202
    assert known.json() == unknown.json()
    assert set(known.json()) == {"message"}
    await mails_to(smtp, "ada@example.com", count=2)
    await asyncio.sleep(0.3)
    assert not [mail for mail in smtp.received if "nobody@example.com" in mail.recipients]
    assert error_of(await forgot(api, "not an address")) == (422, "invalid_email")


async def test_forgot_password_is_limited_per_address_and_per_client(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """Past KEYTURN_EMAIL_MAX_PER_ADDRESS for one address (known or not) and past
    KEYTURN_EMAIL_MAX_PER_IP from one client: 429 with Retry-After, shared by instances."""
    settings = {"email_max_per_address": 2, "email_max_per_ip": 7, **mail_settings(smtp)}
    first, second = await make_api(**settings), await make_api(**settings)
    await register(first, "ada@example.com")
    for address in ("ada@example.com", "nobody@example.com"):
        assert (await forgot(first, address)).status_code == 202
        assert (await forgot(second, address)).status_code == 202
        refused = await forgot(first, address)
        assert error_of(refused) == (429, "too_many_requests")
        assert int(refused.headers["Retry-After"]) > 0
    # Six counted from this client so far (the refusals too): one more, then the limit.
    assert (await forgot(second, "carol@example.com")).status_code == 202
    assert error_of(await forgot(first, "dave@example.com"))[0] == 429


async def test_a_reset_ends_every_session_clears_the_lockout_and_mails_a_notice(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """After the reset: old access and refresh tokens are refused at once, the account locked
    by failed logins logs in with the new password, a "password changed" mail arrives, and
    the link does not work twice."""
    api = await make_api(login_max_failures=3, **mail_settings(smtp))
    first = await login(api)
    second = await login(api, create=False)
    for _ in range(3):
        await api.post("/api/auth/login", json={"email": "ada@example.com", "password": "guess"})
    locked = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )
    assert locked.status_code == 429

    token = await reset_token(api, smtp, "ada@example.com", 2)
    assert (await reset(api, token)).status_code == 204

    for tokens in (first, second):
        me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
        assert error_of(me) == (401, "invalid_token")
        refreshed = await api.post(
            "/api/auth/refresh", json={"refresh_token": tokens.refresh_token}
        )
        assert refreshed.status_code == 401
    after = await login(api, password=NEW_PASSWORD, create=False)
    assert after.user["email_verified"] is True  # the link reached the mailbox
    notice = (await mails_to(smtp, "ada@example.com", count=3))[2]
    assert "#token=" not in text_of(notice)
    assert error_of(await reset(api, token, "yet another good passphrase")) == (
        400,
        "invalid_token",
    )


async def test_a_reset_link_expires(
    make_api: ApiFactory, smtp: SmtpServer, clock: FrozenClock
) -> None:
    """Past KEYTURN_RESET_TTL_SECONDS the link is 400 `invalid_token`, the password stays."""
    api = await make_api(reset_ttl_seconds=900, **mail_settings(smtp))
    await register(api, "ada@example.com")
    token = await reset_token(api, smtp, "ada@example.com", 2)
    clock.advance(seconds=901)
    assert error_of(await reset(api, token)) == (400, "invalid_token")
    await login(api, create=False)


async def test_a_newer_reset_link_ends_the_older(make_api: ApiFactory, smtp: SmtpServer) -> None:
    api = await make_api(**mail_settings(smtp))
    await register(api, "ada@example.com")
    older = await reset_token(api, smtp, "ada@example.com", 2)
    newer = await reset_token(api, smtp, "ada@example.com", 3)
    assert error_of(await reset(api, older)) == (400, "invalid_token")
    assert (await reset(api, newer)).status_code == 204


async def test_a_password_change_ends_an_outstanding_reset_link(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """By the owner (POST /api/auth/password) or by an admin (set-password via the service
    the CLI uses): a reset link sent before no longer works."""
    api = await make_api(**mail_settings(smtp))
    tokens = await login(api)
    token = await reset_token(api, smtp, "ada@example.com", 2)
    changed = await api.post(
        "/api/auth/password",
        json={"current_password": DEFAULT_PASSWORD, "new_password": NEW_PASSWORD},
        headers=bearer(tokens.access_token),
    )
    assert changed.status_code == 204
    assert error_of(await reset(api, token, "yet another good passphrase")) == (
        400,
        "invalid_token",
    )

    token = await reset_token(api, smtp, "ada@example.com", 3)
    services = api.app.state.services  # type: ignore[attr-defined]
    services.admin.set_password(tokens.user["id"], "what an admin chose for ada")
    assert error_of(await reset(api, token)) == (400, "invalid_token")


async def test_a_weak_new_password_is_refused_and_the_link_still_works(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    api = await make_api(**mail_settings(smtp))
    await register(api, "ada@example.com")
    token = await reset_token(api, smtp, "ada@example.com", 2)
    weak = await reset(api, token, "password")
    assert error_of(weak) == (422, "weak_password")
    assert (await reset(api, token)).status_code == 204


# Email change --------------------------------------------------------------------------------


async def change_email(
    api: httpx.AsyncClient, access_token: str, new_email: str, password: str = DEFAULT_PASSWORD
) -> httpx.Response:
    return await api.post(
        "/api/auth/email/change",
        json={"new_email": new_email, "current_password": password},
        headers=bearer(access_token),
    )


async def test_an_email_change_takes_effect_only_when_the_new_address_confirms(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """The new address gets a link, the old one a notice naming the new address; nothing
    changes before the link is used; after, the account answers to the new address only."""
    api = await make_api(**mail_settings(smtp))
    tokens = await login(api)
    wrong = await change_email(api, tokens.access_token, "ada@new.example", "not my password")
    assert error_of(wrong) == (401, "invalid_credentials")
    assert (await change_email(api, tokens.access_token, "ada@new.example")).status_code == 202

    [confirm] = await mails_to(smtp, "ada@new.example", count=1)
    notice = (await mails_to(smtp, "ada@example.com", count=2))[1]
    assert "ada@new.example" in text_of(notice)
    assert "#token=" not in text_of(notice)
    me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    assert me.json()["user"]["email"] == "ada@example.com"

    confirmed = await verify(api, token_in(confirm, "/verify-email"))
    assert confirmed.status_code == 200
    assert confirmed.json()["user"]["email"] == "ada@new.example"
    assert confirmed.json()["user"]["email_verified"] is True
    me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    assert me.json()["user"]["email"] == "ada@new.example"
    await login(api, "ada@new.example", create=False)
    old = await api.post(
        "/api/auth/login", json={"email": "ada@example.com", "password": DEFAULT_PASSWORD}
    )
    assert error_of(old) == (401, "invalid_credentials")


async def test_an_email_change_to_a_taken_address_gives_no_hint(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """The same 202; the other account's address gets no mail; the owner's address still
    gets the notice."""
    api = await make_api(**mail_settings(smtp))
    await register(api, "bob@example.com")
    tokens = await login(api)
    taken = await change_email(api, tokens.access_token, "bob@example.com")
    free = await change_email(api, tokens.access_token, "ada@new.example")
    assert taken.status_code == free.status_code == 202
    assert taken.content == free.content
    await mails_to(smtp, "ada@example.com", count=3)  # verification, two notices
    await mails_to(smtp, "ada@new.example", count=1)
    assert len(await mails_to(smtp, "bob@example.com", count=1)) == 1  # its own verification


async def test_a_confirmation_for_an_address_taken_since_is_409_and_changes_nothing(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    api = await make_api(**mail_settings(smtp))
    tokens = await login(api)
    assert (await change_email(api, tokens.access_token, "ada@new.example")).status_code == 202
    token = token_in((await mails_to(smtp, "ada@new.example", count=1))[0], "/verify-email")
    await register(api, "ada@new.example")
    assert error_of(await verify(api, token)) == (409, "email_taken")
    me = await api.get("/api/auth/me", headers=bearer(tokens.access_token))
    assert me.json()["user"]["email"] == "ada@example.com"


# Delivery and logs ---------------------------------------------------------------------------


async def test_mail_waits_for_a_server_that_is_down_and_is_delivered_when_it_starts(
    make_api: ApiFactory, clock: FrozenClock
) -> None:
    """With SMTP down the request still answers 202 at once; the mail arrives after the
    server starts, with no restart of Keyturn."""
    server = SmtpServer(port=free_port(), auth=False)
    api = await make_api(**mail_settings(server))
    await register(api, "ada@example.com")
    started = time.perf_counter()
    response = await forgot(api, "ada@example.com")
    assert response.status_code == 202
    assert time.perf_counter() - started < 1.0
    await asyncio.sleep(0.5)  # the sender tries, and is refused
    server.start()
    try:
        clock.advance(seconds=60)  # past the back-off
        mails = await mails_to(server, "ada@example.com", count=2)
        [reset_mail] = [mail for mail in mails if "/reset-password#" in text_of(mail)]
        assert (await reset(api, token_in(reset_mail, "/reset-password"))).status_code == 204
    finally:
        server.stop()


async def test_no_token_or_link_reaches_the_log(
    make_api: ApiFactory, smtp: SmtpServer, caplog: pytest.LogCaptureFixture
) -> None:
    """Register, verify, reset, change the address: no token of any mailed link, nor any
    link with a token, appears in a log line (access log included)."""
    caplog.set_level(logging.DEBUG)
    api = await make_api(**mail_settings(smtp))
    tokens = await login(api)
    verify_token = token_in((await mails_to(smtp, "ada@example.com", count=1))[0], "/verify-email")
    assert (await verify(api, verify_token)).status_code == 200
    reset_link = await reset_token(api, smtp, "ada@example.com", 2)
    assert (await reset(api, reset_link)).status_code == 204
    tokens = await login(api, password=NEW_PASSWORD, create=False)
    assert (
        await change_email(api, tokens.access_token, "ada@new.example", NEW_PASSWORD)
    ).status_code == 202
    change_token = token_in((await mails_to(smtp, "ada@new.example", count=1))[0], "/verify-email")
    assert (await verify(api, change_token)).status_code == 200
    await mails_to(smtp, "ada@example.com", count=4)

    # Everything but the test's own SMTP server (aiosmtpd logs the data it receives).
    logged = "\n".join(
        f"{record.getMessage()} {record.__dict__}"
        for record in caplog.records
        if record.name != "mail.log"
    )
    assert "keyturn.mail" in logged and "keyturn.access" in logged
    for secret in (verify_token, reset_link, change_token, NEW_PASSWORD):
        assert secret not in logged
    assert "#token=" not in logged


async def test_two_instances_deliver_each_mail_once(make_api: ApiFactory, smtp: SmtpServer) -> None:
    """Two apps on one database, both with a sender: every message arrives exactly once."""
    first, second = await make_api(**mail_settings(smtp)), await make_api(**mail_settings(smtp))
    for n in range(6):
        await register(first if n % 2 else second, f"user{n}@example.com")
        await forgot(second if n % 2 else first, f"user{n}@example.com")
    for n in range(6):
        await mails_to(smtp, f"user{n}@example.com", count=2)
    await asyncio.sleep(1.0)
    recipients = [tuple(mail.recipients) for mail in smtp.received]
    assert len(recipients) == 12
    ids = [mail.message["Message-ID"] for mail in smtp.received]
    assert len(set(ids)) == len(ids)


async def test_a_link_token_is_stored_only_as_its_digest(
    make_api: ApiFactory, smtp: SmtpServer
) -> None:
    """The database holds the SHA-256 of a mailed token, never the token; the outbox copy of
    the message is erased once it is sent."""
    api = await make_api(**mail_settings(smtp))
    await register(api, "ada@example.com")
    token = token_in((await mails_to(smtp, "ada@example.com", count=1))[0], "/verify-email")
    services = api.app.state.services  # type: ignore[attr-defined]
    deadline = time.monotonic() + 5
    while True:
        with services.database.snapshot() as connection:
            stored = repr(connection.execute(select(email_tokens)).all())
            outbox = repr(connection.execute(select(mail_outbox)).all())
        if "b'" not in outbox or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert hash_email_token(token) in stored
    assert token not in stored
    assert token not in outbox
