"""Forgot password to a new password with a real mail: `keyturn serve` sends through a real
SMTP server, the browser opens the link from the message, and the old session ends.

The accounts-by-email API comes with its own change: in a build without it (no
/api/auth/password/forgot in the OpenAPI description) these tests are skipped, saying so.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD
from tests.support.browser import DESKTOP
from tests.support.processes import KeyturnServer, keyturn_environment
from tests.support.smtp import Received, SmtpServer, free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a different long passphrase 42"
LOCALES = {"en": "en-US", "ko": "ko-KR"}
SUBJECT = {"en": "Reset your password", "ko": "비밀번호 재설정"}
RELOAD = {"en": "Reload", "ko": "새로 고침"}
INVALID = {"en": "This link does not work any more", "ko": "이 링크는 더 이상 사용할 수 없습니다."}
NOTICE = {
    "en": "Your password has been changed. Log in with your new password.",
    "ko": "비밀번호가 변경되었습니다. 새 비밀번호로 로그인하십시오.",
}


@pytest.fixture
def smtp() -> Iterator[SmtpServer]:
    server = SmtpServer(port=free_port(), auth=False)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mailing_server(tmp_path: Path, smtp: SmtpServer) -> Iterator[KeyturnServer]:
    """`keyturn serve` whose links point at itself and whose mail goes to `smtp`."""
    server = KeyturnServer(
        cwd=tmp_path,
        env=keyturn_environment(
            KEYTURN_DATABASE_URL=f"sqlite:///{tmp_path}/keyturn.db",
            KEYTURN_SMTP_URL=f"smtp://127.0.0.1:{smtp.port}",
            KEYTURN_MAIL_FROM="Keyturn <no-reply@keyturn.test>",
        ),
    )
    server.env["KEYTURN_PUBLIC_ORIGIN"] = server.url
    server.start()
    try:
        paths = httpx.get(f"{server.url}/openapi.json").json()["paths"]
        if "/api/auth/password/forgot" not in paths:
            pytest.skip("this build has no accounts-by-email API (/api/auth/password/forgot)")
        yield server
    finally:
        server.stop()


def new_context(browser: Browser, language: str) -> BrowserContext:
    context = browser.new_context(viewport=DESKTOP, locale=LOCALES[language])
    context.set_default_timeout(15000)
    return context


def wait_for_link(
    smtp: SmtpServer, to: str, page: str, timeout: float = 20
) -> tuple[Received, str]:
    """The first mail to `to` with a link to `page` (the verification mail of the
    registration may come before or after it), and that link."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for mail in [m for m in smtp.received if to in m.recipients]:
            link = link_in(mail, page)
            if link:
                return mail, link
        time.sleep(0.1)
    raise AssertionError(f"no mail to {to} with a link to {page} after {timeout} s")


def link_in(mail: Received, page: str) -> str:
    text = mail.message.get_body(("plain",))
    assert text is not None
    found = re.search(rf"https?://\S+{page}#token=[\w%-]+", text.get_content())
    return found.group(0) if found else ""


@pytest.mark.parametrize("language", ["en", "ko"])
def test_forgot_password_by_mail_ends_the_old_session(
    browser: Browser, mailing_server: KeyturnServer, smtp: SmtpServer, language: str
) -> None:
    """Forgot password on the page, the link from the real mail, a new password: the session
    in another browser ends, the old password stops working and the new one logs in. The mail
    and every page speak the reader's language."""
    from playwright.sync_api import expect

    server = mailing_server
    httpx.post(
        f"{server.url}/api/auth/register",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    ).raise_for_status()
    # The old session: another browser, signed in on its dashboard.
    elsewhere = new_context(browser, language)
    old = elsewhere.new_page()
    old.goto(f"{server.url}/login")
    old.locator("#identifier").fill("ada@example.com")
    old.locator("#password").fill(DEFAULT_PASSWORD)
    old.locator("#login-submit").click()
    old.wait_for_url(re.compile(r"/dashboard$"))
    expect(old.locator("#user-email")).to_have_text("ada@example.com")

    context = new_context(browser, language)
    page = context.new_page()
    page.goto(f"{server.url}/forgot-password")
    page.locator("#email").fill("ada@example.com")
    page.locator("#forgot-submit").click()
    expect(page.locator("#notice")).to_contain_text("ada@example.com")

    mail, link = wait_for_link(smtp, "ada@example.com", "/reset-password")
    assert mail.message["Subject"] == SUBJECT[language]
    assert mail.message["Content-Language"] == language
    assert link.startswith(f"{server.url}/reset-password#token=")

    page.goto(link)
    assert page.evaluate("location.hash") == ""
    page.locator("#new-password").fill(NEW_PASSWORD)
    with page.expect_response(lambda r: r.url.endswith("/api/auth/password/reset")) as reset:
        page.locator("#reset-submit").click()
    assert reset.value.status == 204
    page.wait_for_url(re.compile(r"/login\?password_reset=1$"))
    expect(page.locator("#notice")).to_have_text(NOTICE[language])
    assert "#token" not in page.url

    # The old browser's session has ended: its next call sends it to the login page.
    old.get_by_role("button", name=RELOAD[language]).click()
    old.wait_for_url(re.compile(r"/login\?expired=1$"))
    refused = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    )
    assert (refused.status_code, refused.json()["error"]) == (401, "invalid_credentials")

    page.locator("#identifier").fill("ada@example.com")
    page.locator("#password").fill(NEW_PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(re.compile(r"/dashboard$"))
    expect(page.locator("#user-email")).to_have_text("ada@example.com")

    # The link works once.
    used = new_context(browser, language)
    again = used.new_page()
    again.goto(link)
    again.locator("#new-password").fill("yet another long passphrase")
    again.locator("#reset-submit").click()
    expect(again.locator("#form-error")).to_contain_text(INVALID[language])
    for opened in (used, context, elsewhere):
        opened.close()
