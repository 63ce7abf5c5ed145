"""The authenticator app in real Chromium against a real `keyturn serve`: set it up on the
dashboard (the secret read from the page, the code computed with pyotp as a phone would),
log out, log in with the password and a code; in English and Korean, desktop and phone."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import httpx
import pyotp
import pytest

from tests.support.api import DEFAULT_PASSWORD
from tests.support.browser import DESKTOP, PHONE, SCREENSHOTS
from tests.support.processes import KeyturnServer, ServerFactory

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

LOCALES = {"en": "en-US", "ko": "ko-KR"}
TOTP_ON = {"en": "On. Logging in asks", "ko": "켜져 있습니다."}
WRONG_CODE = {"en": "That code is not right", "ko": "코드가 맞지 않거나"}
CONFIRM_IDENTITY = {"en": "Confirm it is you", "ko": "본인 확인"}


def screenshot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size or DESKTOP
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
    page.set_viewport_size(original)


def watch_console(page: Page) -> list[str]:
    """Uncaught errors and CSP violations; Chromium's note on each 4xx the page handles is
    left out."""
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "Failed to load resource" not in message.text
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def log_in(page: Page, server: KeyturnServer, email: str) -> None:
    page.goto(f"{server.url}/login")
    page.locator("#identifier").fill(email)
    page.locator("#password").fill(DEFAULT_PASSWORD)
    page.locator("#login-submit").click()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_set_up_the_app_then_log_in_with_a_code(
    browser: Browser, make_server: ServerFactory, language: str
) -> None:
    server = make_server(KEYTURN_REAUTH_SECONDS="10")
    email = f"ada-{language}@example.com"
    registered = httpx.post(
        f"{server.url}/api/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
    )
    assert registered.status_code == 201
    context = browser.new_context(viewport=DESKTOP, locale=LOCALES[language])
    context.set_default_timeout(15000)
    page = context.new_page()
    problems = watch_console(page)

    log_in(page, server, email)
    page.wait_for_url(re.compile(r"/dashboard$"))
    start = page.locator("#totp-start")
    start.wait_for()
    screenshot(page, f"security-before-{language}")

    start.click()
    page.locator("#totp-qr svg").wait_for()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    page.locator("#totp-code").fill("000000" if pyotp.TOTP(secret).now() != "000000" else "111111")
    page.locator("#totp-confirm").click()
    page.get_by_text(WRONG_CODE[language]).wait_for()
    assert page.locator("#totp-code").evaluate("element => element === document.activeElement")
    page.locator("#totp-code").fill(pyotp.TOTP(secret).now())
    screenshot(page, f"security-qr-{language}")
    page.keyboard.press("Enter")
    codes = page.locator("#recovery-codes li")
    codes.first.wait_for()
    shown = codes.all_inner_texts()
    assert len(shown) == 10
    assert all(re.fullmatch(r"[0-9a-z]{4}(-[0-9a-z]{4}){3}", code) for code in shown)
    with page.expect_download() as download:
        page.locator("#codes-download").click()
    saved = download.value.path().read_text()
    assert all(code in saved for code in shown)
    screenshot(page, f"security-codes-{language}")
    page.locator("#codes-done").click()
    page.get_by_text(TOTP_ON[language]).wait_for()

    if language == "en":
        # The login is no longer recent: new codes first ask who this is.
        time.sleep(11)
        page.once("dialog", lambda dialog: dialog.accept())
        page.locator("#codes-regenerate").click()
        page.get_by_text(CONFIRM_IDENTITY[language]).wait_for()
        screenshot(page, "security-reauthenticate-en")
        page.locator("#reauth-password").fill(DEFAULT_PASSWORD)
        page.locator("#reauth-password").press("Enter")
        page.locator("#recovery-codes li").first.wait_for()
        fresh = page.locator("#recovery-codes li").all_inner_texts()
        assert len(fresh) == 10 and not set(fresh) & set(shown)
        page.locator("#codes-done").click()
        shown = fresh

    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login"))
    log_in(page, server, email)
    code_input = page.locator("#mfa-code")
    code_input.wait_for()
    assert code_input.evaluate("element => element === document.activeElement")
    screenshot(page, f"login-second-step-{language}")
    # The code of the next time step: the one that confirmed the app is spent, and one step
    # of clock skew is accepted.
    code_input.fill(pyotp.TOTP(secret).at(time.time() + 30))
    code_input.press("Enter")
    page.wait_for_url(re.compile(r"/dashboard$"))
    page.get_by_text(TOTP_ON[language]).wait_for()

    # And with a recovery code, by keyboard from the link.
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login"))
    log_in(page, server, email)
    page.locator("#mfa-switch").click()
    page.locator("#mfa-recovery").fill(shown[0])
    screenshot(page, f"login-recovery-code-{language}")
    page.locator("#mfa-recovery").press("Enter")
    page.wait_for_url(re.compile(r"/dashboard$"))
    assert problems == []
    context.close()
