"""Passkeys in real Chromium, with its virtual authenticator (DevTools' WebAuthn domain): a
passkey added on the dashboard, then a password-less sign-in from the login page.

WebAuthn needs a secure context and a domain for its rp id, so the server's public origin
and the pages are http://localhost:PORT (localhost is a secure context over plain http).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD
from tests.support.browser import DESKTOP, PHONE, SCREENSHOTS
from tests.support.processes import KeyturnServer, keyturn_environment

if TYPE_CHECKING:
    from playwright.sync_api import Browser, CDPSession, ConsoleMessage, Locator, Page

pytestmark = pytest.mark.browser

LOCALES = {"en": "en-US", "ko": "ko-KR"}
WORDS = {
    "en": {
        "add": "Add a passkey",
        "sign_in": "Sign in with a passkey",
        "rename": "Rename",
        "save": "Save",
        "remove": "Remove",
        "none": "You have no passkeys yet.",
        "never": "never",
    },
    "ko": {
        "add": "패스키 추가",
        "sign_in": "패스키로 로그인",
        "rename": "이름 변경",
        "save": "저장",
        "remove": "삭제",
        "none": "아직 등록된 패스키가 없습니다.",
        "never": "없음",
    },
}
# Chromium logs every 4xx; the pages expect and explain these.
EXPECTED_REFUSAL = re.compile(r"Failed to load resource: .* status of (401|429) ")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[KeyturnServer]:
    """`keyturn serve` whose public origin (and so its rp id) is localhost."""
    server = KeyturnServer(
        cwd=tmp_path, env=keyturn_environment(KEYTURN_DATABASE_URL=f"sqlite:///{tmp_path}/k.db")
    )
    server.url = f"http://localhost:{server.port}"
    server.env["KEYTURN_PUBLIC_ORIGIN"] = server.url
    server.start()
    yield server
    server.stop()


def virtual_authenticator(page: Page) -> tuple[CDPSession, str]:
    """A platform authenticator with resident keys that verifies its user without asking."""
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable")
    added = cdp.send(
        "WebAuthn.addVirtualAuthenticator",
        {
            "options": {
                "protocol": "ctap2",
                "transport": "internal",
                "hasResidentKey": True,
                "hasUserVerification": True,
                "isUserVerified": True,
            }
        },
    )
    return cdp, str(added["authenticatorId"])


def credentials(cdp: CDPSession, authenticator_id: str) -> list[dict[str, Any]]:
    found = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    return list(found["credentials"])


def watch_console(page: Page) -> list[str]:
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not EXPECTED_REFUSAL.match(message.text):
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def screenshot(target: Page | Locator, page: Page, name: str) -> None:
    """`target` (a page, or a part of it) at desktop and phone widths."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        target.screenshot(path=SCREENSHOTS / f"{name}-{label}.png")
    page.set_viewport_size(DESKTOP)


@pytest.mark.parametrize("language", ["en", "ko"])
def test_a_passkey_added_on_the_dashboard_signs_in_without_a_password(
    browser: Browser, server: KeyturnServer, language: str
) -> None:
    """Add a passkey (named) on the dashboard, log out, sign in with it from the login page
    and land on the dashboard; then rename it and remove it, all by keyboard."""
    from playwright.sync_api import expect

    words = WORDS[language]
    httpx.post(
        f"{server.url}/api/auth/register",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    ).raise_for_status()
    context = browser.new_context(viewport=DESKTOP, locale=LOCALES[language])
    context.set_default_timeout(15000)
    page = context.new_page()
    problems = watch_console(page)
    cdp, authenticator_id = virtual_authenticator(page)

    page.goto(f"{server.url}/login")
    page.locator("#identifier").fill("ada@example.com")
    page.locator("#password").fill(DEFAULT_PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(re.compile(r"/dashboard$"))
    expect(page.locator("#passkeys-status")).to_have_text(words["none"])

    page.locator("#passkey-name").fill("Work laptop")
    page.get_by_role("button", name=words["add"]).click()
    passkeys = page.locator("#passkeys li")
    expect(passkeys).to_have_count(1)
    expect(passkeys.first).to_contain_text("Work laptop")
    expect(passkeys.first).to_contain_text(words["never"])
    expect(page.locator("#passkey-notice")).to_contain_text("Work laptop")
    stored = credentials(cdp, authenticator_id)
    assert len(stored) == 1 and stored[0]["isResidentCredential"]

    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login\?signed_out=1$"))
    passkey_button = page.get_by_role("button", name=words["sign_in"])
    expect(passkey_button).to_be_visible()
    screenshot(page, page, f"login-passkey-{language}")

    passkey_button.click()
    page.wait_for_url(re.compile(r"/dashboard$"))
    expect(page.locator("#user-email")).to_have_text("ada@example.com")
    expect(passkeys.first).not_to_contain_text(words["never"])
    assert credentials(cdp, authenticator_id)[0]["signCount"] >= 1
    card = page.locator("section", has=page.locator("#passkeys-heading"))
    screenshot(card, page, f"dashboard-passkeys-{language}")

    # Rename by keyboard: the button opens a form with the name selected; Enter saves.
    passkeys.first.get_by_role("button", name=re.compile(words["rename"])).focus()
    page.keyboard.press("Enter")
    page.keyboard.type("Home desktop")
    page.keyboard.press("Enter")
    expect(passkeys.first).to_contain_text("Home desktop")
    # Escape leaves a rename without saving, and gives the focus back to its button.
    passkeys.first.get_by_role("button", name=re.compile(words["rename"])).focus()
    page.keyboard.press("Enter")
    page.keyboard.type("not saved")
    page.keyboard.press("Escape")
    expect(passkeys.first).to_contain_text("Home desktop")
    expect(passkeys.first.get_by_role("button", name=re.compile(words["rename"]))).to_be_focused()

    page.once("dialog", lambda dialog: dialog.accept())
    passkeys.first.get_by_role("button", name=re.compile(words["remove"])).focus()
    page.keyboard.press("Enter")
    expect(passkeys).to_have_count(0)
    expect(page.locator("#passkeys-status")).to_have_text(words["none"])
    assert problems == []
    context.close()


def test_a_removed_passkey_no_longer_signs_in(browser: Browser, server: KeyturnServer) -> None:
    """The authenticator still holds the key, but Keyturn forgot it: the login page says the
    passkey was not accepted and stays put."""
    from playwright.sync_api import expect

    httpx.post(
        f"{server.url}/api/auth/register",
        json={"email": "bob@example.com", "password": DEFAULT_PASSWORD},
    ).raise_for_status()
    context = browser.new_context(viewport=DESKTOP, locale="en-US")
    context.set_default_timeout(15000)
    page = context.new_page()
    cdp, authenticator_id = virtual_authenticator(page)
    page.goto(f"{server.url}/login")
    page.locator("#identifier").fill("bob@example.com")
    page.locator("#password").fill(DEFAULT_PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(re.compile(r"/dashboard$"))
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("#passkeys li")).to_have_count(1)
    page.once("dialog", lambda dialog: dialog.accept())
    page.locator("#passkeys li").get_by_role("button", name=re.compile("Remove")).click()
    expect(page.locator("#passkeys li")).to_have_count(0)
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login"))

    page.get_by_role("button", name="Sign in with a passkey").click()

    expect(page.locator("#form-error")).to_contain_text("That passkey was not accepted")
    assert page.url.endswith("/login?signed_out=1")
    assert len(credentials(cdp, authenticator_id)) == 1
    context.close()
