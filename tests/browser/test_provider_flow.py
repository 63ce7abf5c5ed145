"""Sign in with a provider in Chromium: Keyturn's login page, the provider's own login and
consent pages (oidc-provider under Node), and back on the dashboard signed in; then link a
second provider, unlink one, be refused unlinking the last; and a refused sign-in shown on the
login page; and an account with an authenticator app asked for its code after the provider.
Screenshots at desktop and phone width, in English and Korean."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pyotp
import pytest

from tests.support.api import DEFAULT_PASSWORD
from tests.support.browser import DESKTOP, PHONE, SCREENSHOTS
from tests.support.oidc import OTHER_CLIENT_ID, OidcProvider
from tests.support.processes import KeyturnServer, keyturn_environment

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.browser

LOCALES = {"en": "en-US", "ko": "ko-KR"}
CONTINUE_WITH = {"en": "Continue with {name}", "ko": "{name}(으)로 계속하기"}
LINK = {"en": "Link {name}", "ko": "{name} 연결"}
UNLINK = {"en": "Unlink", "ko": "연결 해제"}
ACCOUNT_EXISTS = {
    "en": "An account with this email address already exists.",
    "ko": "이 이메일 주소를 쓰는 계정이 이미 있습니다.",
}
LAST_METHOD = {
    "en": "This is your only way to sign in",
    "ko": "로그인할 수 있는 유일한 방법이라",
}


@pytest.fixture
def server(tmp_path: Path, oidc_provider: OidcProvider) -> Iterator[KeyturnServer]:
    providers = [
        oidc_provider.settings_entry("local"),
        oidc_provider.settings_entry("other", client_id=OTHER_CLIENT_ID),
    ]
    server = KeyturnServer(
        cwd=tmp_path,
        env=keyturn_environment(
            KEYTURN_DATABASE_URL=f"sqlite:///{tmp_path}/keyturn.db",
            KEYTURN_OIDC_PROVIDERS=json.dumps(providers),
        ),
    )
    server.env["KEYTURN_PUBLIC_ORIGIN"] = server.url
    server.start()
    yield server
    server.stop()


def shoot(page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def at_provider(page: Page, login: str | None) -> None:
    """The provider's own pages: its login form (unless it knows the browser), its consent."""
    page.wait_for_url(re.compile(r"^http://localhost:\d+/interaction/"))
    if login is not None:
        page.locator("input[name=login]").fill(login)
        page.locator("input[name=password]").fill("any password")
        page.locator("button[type=submit]").click()
        page.wait_for_url(re.compile(r"/interaction/"))
    page.get_by_role("button", name="Continue").click()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_sign_in_link_and_unlink_through_providers(
    browser: Browser, server: KeyturnServer, language: str
) -> None:
    from playwright.sync_api import expect

    context = browser.new_context(viewport=DESKTOP, locale=LOCALES[language])
    context.set_default_timeout(15000)
    page = context.new_page()
    login = f"ada-{language}"

    page.goto(f"{server.url}/login")
    shoot(page, f"providers-login-desktop-{language}")
    page.set_viewport_size(PHONE)
    shoot(page, f"providers-login-phone-{language}")
    page.set_viewport_size(DESKTOP)
    # By keyboard: the provider's button is a link in the Tab order after the form.
    button = page.get_by_role("link", name=CONTINUE_WITH[language].format(name="Local"))
    button.focus()
    page.keyboard.press("Enter")
    at_provider(page, login)

    page.wait_for_url(re.compile(r"/dashboard$"))
    expect(page.locator("#user-email")).to_have_text(f"{login}@example.com")
    expect(page.locator("#identities li")).to_have_count(1)
    expect(page.locator("#identities")).to_contain_text("Local")

    # Link a second provider: the provider knows this browser now, so only its consent.
    page.get_by_role("button", name=LINK[language].format(name="Other")).click()
    at_provider(page, None)
    page.wait_for_url(re.compile(r"/dashboard$"))
    expect(page.locator("#identities li")).to_have_count(2)
    shoot(page, f"providers-dashboard-desktop-{language}")
    page.set_viewport_size(PHONE)
    shoot(page, f"providers-dashboard-phone-{language}")
    page.set_viewport_size(DESKTOP)

    # Unlink one; the last one stays (no password): the page says why.
    page.locator("#identities li", has_text="Local").get_by_role(
        "button", name=re.compile(UNLINK[language])
    ).click()
    expect(page.locator("#identities li")).to_have_count(1)
    page.locator("#identities li").get_by_role("button", name=re.compile(UNLINK[language])).click()
    expect(page.locator("#identities-error")).to_contain_text(LAST_METHOD[language])
    expect(page.locator("#identities li")).to_have_count(1)
    shoot(page, f"providers-last-method-desktop-{language}")
    context.close()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_a_refused_sign_in_is_explained_on_the_login_page(
    browser: Browser, server: KeyturnServer, language: str
) -> None:
    """Someone registered the address without proving it: the provider's sign-in with the
    same address is refused, and the login page says what to do instead."""
    from playwright.sync_api import expect

    login = f"grace-{language}"
    httpx.post(
        f"{server.url}/api/auth/register",
        json={"email": f"{login}@example.com", "password": DEFAULT_PASSWORD},
    ).raise_for_status()
    context = browser.new_context(viewport=PHONE, locale=LOCALES[language])
    context.set_default_timeout(15000)
    page = context.new_page()

    page.goto(f"{server.url}/login")
    page.get_by_role("link", name=CONTINUE_WITH[language].format(name="Local")).click()
    at_provider(page, login)

    page.wait_for_url(re.compile(r"/login\?error=account_exists$"))
    expect(page.locator("#provider-error")).to_contain_text(ACCOUNT_EXISTS[language])
    shoot(page, f"providers-refused-phone-{language}")
    page.set_viewport_size(DESKTOP)
    shoot(page, f"providers-refused-desktop-{language}")
    assert "access_token" not in {cookie["name"] for cookie in context.cookies()}
    context.close()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_a_second_factor_is_asked_after_the_provider(
    browser: Browser, server: KeyturnServer, language: str
) -> None:
    """The provider vouches for the user, but the account has an authenticator app: the
    browser lands on the login page's second step (the mfa_token travels in the fragment,
    which the page wipes at once), and only the code opens the dashboard."""
    from playwright.sync_api import expect

    context = browser.new_context(viewport=DESKTOP, locale=LOCALES[language])
    context.set_default_timeout(15000)
    page = context.new_page()
    login = f"mfa-{language}"

    page.goto(f"{server.url}/login")
    page.get_by_role("link", name=CONTINUE_WITH[language].format(name="Local")).click()
    at_provider(page, login)
    page.wait_for_url(re.compile(r"/dashboard$"))

    # An authenticator app, set up on the dashboard as a user would.
    page.locator("#totp-start").click()
    page.locator("#totp-qr svg").wait_for()
    secret = page.locator("#totp-secret").inner_text().replace(" ", "")
    page.locator("#totp-code").fill(pyotp.TOTP(secret).now())
    page.locator("#totp-confirm").click()
    page.locator("#recovery-codes li").first.wait_for()
    page.locator("#codes-done").click()
    page.locator("#logout").click()
    page.wait_for_url(re.compile(r"/login"))

    # The provider knows this browser and its consent: straight back to Keyturn's second step.
    page.get_by_role("link", name=CONTINUE_WITH[language].format(name="Local")).click()
    code_input = page.locator("#mfa-code")
    code_input.wait_for()
    assert "mfa_token" not in page.url and page.url.endswith("/login")
    assert "access_token" not in {cookie["name"] for cookie in context.cookies()}
    shoot(page, f"providers-second-step-desktop-{language}")
    page.set_viewport_size(PHONE)
    shoot(page, f"providers-second-step-phone-{language}")
    # The next time step's code: the one that confirmed the app is spent.
    code_input.fill(pyotp.TOTP(secret).at(time.time() + 30))
    code_input.press("Enter")
    page.wait_for_url(re.compile(r"/dashboard$"))
    expect(page.locator("#user-email")).to_have_text(f"{login}@example.com")
    context.close()
