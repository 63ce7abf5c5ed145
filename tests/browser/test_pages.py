"""The pages in real Chromium against a real `keyturn serve` (access tokens live 3 seconds)."""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD
from tests.support.browser import DESKTOP, PHONE, SCREENSHOTS
from tests.support.processes import KeyturnServer, ServerFactory

if TYPE_CHECKING:
    from playwright.sync_api import (
        Browser,
        BrowserContext,
        ConsoleMessage,
        Page,
        Request,
        Response,
    )

pytestmark = pytest.mark.browser

TTL_SECONDS = 3


def screenshot(page: Page, name: str) -> None:
    """Save the page at desktop and phone widths to test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size or DESKTOP
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
    page.set_viewport_size(original)


def new_context(browser: Browser) -> BrowserContext:
    context = browser.new_context(viewport=DESKTOP)
    context.set_default_timeout(15000)
    return context


# Chromium logs every 4xx; these ones the pages expect and explain to the user.
EXPECTED_REFUSAL = re.compile(r"Failed to load resource: .* status of (401|409|422|429) ")


def watch_console(page: Page) -> list[str]:
    """Console errors and uncaught exceptions (a CSP violation shows up here), leaving out
    Chromium's note about each refusal the page handles (expired token, wrong password)."""
    problems: list[str] = []

    def on_console(message: ConsoleMessage) -> None:
        if message.type == "error" and not EXPECTED_REFUSAL.match(message.text):
            problems.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def register_in_page(page: Page, server: KeyturnServer, email: str, username: str) -> None:
    """Sign up through the form: the password is typed once and the page signs the user in."""
    page.goto(f"{server.url}/register")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    page.wait_for_url(re.compile(r"/dashboard$"))


def log_in_in_page(page: Page, identifier: str, *, remember: bool = True) -> None:
    page.get_by_label("Email or username").fill(identifier)
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    if not remember:
        page.get_by_label("Keep me signed in on this device").uncheck()
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/dashboard$"))


def is_data_call(response: Response) -> bool:
    return response.url.endswith(("/api/auth/me", "/api/auth/sessions"))


def reload_both_tabs_after_expiry(
    context: BrowserContext, page: Page, second_tab: Page, *, sessions: int
) -> None:
    """Let the access token expire, then make both tabs call the API in parallel: exactly one
    refresh must go out.

    Both tabs' networks are slowed down, so each tab's two calls meet the expired token and
    both tabs want to refresh before either refresh has come back: without a lock between the
    tabs there would be two refreshes.
    """
    from playwright.sync_api import expect

    refreshes: list[Request] = []
    expired: list[Response] = []
    context.on("request", lambda r: refreshes.append(r) if r.url.endswith("/refresh") else None)
    context.on(
        "response", lambda r: expired.append(r) if is_data_call(r) and r.status == 401 else None
    )
    time.sleep(TTL_SECONDS + 1.2)  # exp is rounded up to the next whole second
    slowed = [context.new_cdp_session(tab) for tab in (page, second_tab)]
    for session in slowed:
        session.send("Network.enable")
        session.send(
            "Network.emulateNetworkConditions",
            {"offline": False, "latency": 400, "downloadThroughput": -1, "uploadThroughput": -1},
        )
    with (
        page.expect_response(lambda r: r.url.endswith("/api/auth/sessions") and r.ok),
        second_tab.expect_response(lambda r: r.url.endswith("/api/auth/sessions") and r.ok),
    ):
        page.get_by_role("button", name="Reload").click()
        second_tab.get_by_role("button", name="Reload").click()
    for session in slowed:
        session.detach()
    for tab in (page, second_tab):
        expect(tab.locator("#user-email")).to_have_text("ada@example.com")
        expect(tab.locator("#sessions li")).to_have_count(sessions)
    assert len(expired) == 4, "each tab's two calls were meant to meet an expired token"
    assert len(refreshes) == 1, [r.url for r in refreshes]
    assert refreshes[0].headers.get("x-csrf-token")


def test_register_login_refresh_revoke_logout(browser: Browser, server: KeyturnServer) -> None:
    """The whole browser flow: sign up, sign in, survive token expiry with exactly one
    refresh across parallel calls and two tabs, revoke another session, log out."""
    from playwright.sync_api import expect

    context = new_context(browser)
    page = context.new_page()
    problems = watch_console(page)

    page.goto(f"{server.url}/register")
    screenshot(page, "register")
    register_in_page(page, server, "ada@example.com", "ada")
    expect(page.locator("#user-email")).to_have_text("ada@example.com")
    page.get_by_role("button", name="Log out", exact=True).click()
    page.wait_for_url(re.compile(r"/login\?signed_out=1$"))
    screenshot(page, "login")

    log_in_in_page(page, "ada@example.com")
    expect(page.locator("#user-email")).to_have_text("ada@example.com")
    expect(page.locator("#user-username")).to_have_text("ada")
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert set(cookies) == {"access_token", "refresh_token", "csrf_token"}
    assert cookies["access_token"]["httpOnly"] and cookies["refresh_token"]["httpOnly"]
    assert not cookies["csrf_token"]["httpOnly"]
    assert page.evaluate("document.cookie").startswith("csrf_token=")  # tokens stay hidden

    # Another session of the same user, from a script.
    other = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    ).json()
    second_tab = context.new_page()
    second_tab.goto(f"{server.url}/dashboard")
    for tab in (page, second_tab):
        tab.get_by_role("button", name="Reload").click()
        expect(tab.locator("#sessions li")).to_have_count(2)
    screenshot(page, "dashboard")

    reload_both_tabs_after_expiry(context, page, second_tab, sessions=2)

    # Revoke the script's session from the list; its access token stops working at once.
    row = page.locator("#sessions li").filter(has_not_text="This device")
    expect(row).to_contain_text("Python script")
    row.get_by_role("button", name=re.compile(r"^Revoke")).click()
    expect(page.locator("#sessions li")).to_have_count(1)
    expect(page.locator("#sessions li")).to_contain_text("This device")
    revoked = httpx.get(
        f"{server.url}/api/auth/me", headers={"Authorization": f"Bearer {other['access_token']}"}
    )
    assert revoked.status_code == 401

    page.get_by_role("button", name="Log out", exact=True).click()
    page.wait_for_url(re.compile(r"/login\?signed_out=1$"))
    expect(page.get_by_role("status")).to_have_text("You have been logged out.")
    second_tab.wait_for_url(re.compile(r"/login"))  # told by the other tab
    assert context.cookies() == []
    page.goto(f"{server.url}/dashboard")
    assert page.url.endswith("/login")
    assert problems == []
    context.close()


def test_login_form_errors_and_lockout(browser: Browser, make_server: ServerFactory) -> None:
    """A wrong password says so; past the limit the wait from Retry-After is shown and the
    button stays disabled."""
    from playwright.sync_api import expect

    server = make_server(KEYTURN_LOGIN_MAX_FAILURES="2")
    httpx.post(
        f"{server.url}/api/auth/register",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    ).raise_for_status()
    context = new_context(browser)
    page = context.new_page()
    problems = watch_console(page)
    page.goto(f"{server.url}/login")
    submit = page.get_by_role("button", name="Log in")

    submit.click()
    expect(page.locator("#identifier-error")).to_have_text("Enter your email or username.")
    expect(page.get_by_label("Email or username")).to_have_attribute("aria-invalid", "true")

    page.get_by_label("Email or username").fill("ada@example.com")
    for _ in range(2):
        page.get_by_label("Password").fill("not the password")
        submit.click()
        expect(page.get_by_role("alert")).to_contain_text("password is not right")
        expect(page.get_by_label("Password")).to_have_value("")
    screenshot(page, "login-wrong-password")

    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    submit.click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Too many failed attempts")
    expect(alert).to_contain_text(re.compile(r"wait 1[45] minutes"))
    locked = page.locator("#login-submit")
    expect(locked).to_be_disabled()
    expect(locked).to_have_text(re.compile(r"^Try again in 1[45] minutes"))
    screenshot(page, "login-locked-out")
    assert problems == []
    context.close()


def test_register_form_errors(browser: Browser, server: KeyturnServer) -> None:
    """A weak password lists the reasons under the field; a taken email says so."""
    from playwright.sync_api import expect

    context = new_context(browser)
    page = context.new_page()
    page.goto(f"{server.url}/register")
    page.get_by_label("Email").fill("ada@example.com")
    page.get_by_label("Password").fill("password")
    page.get_by_role("button", name="Create account").click()

    password_error = page.locator("#password-error")
    expect(password_error).to_contain_text("Choose a stronger password")
    expect(password_error.locator("li")).to_contain_text(
        ["The password is one of the most commonly used passwords."]
    )
    expect(page.get_by_label("Password")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_role("alert")).to_be_focused()
    screenshot(page, "register-weak-password")

    httpx.post(
        f"{server.url}/api/auth/register",
        json={"email": "grace@example.com", "password": DEFAULT_PASSWORD},
    ).raise_for_status()
    page.get_by_label("Email").fill("grace@example.com")
    page.get_by_label("Password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.locator("#email-error")).to_have_text("An account with this email already exists.")
    expect(page.locator("#password-error")).to_be_hidden()
    context.close()


def test_keyboard_only_login_with_session_cookies(browser: Browser, server: KeyturnServer) -> None:
    """The login form works from the keyboard alone; unticking "keep me signed in" gives
    cookies that end with the browser."""
    from playwright.sync_api import expect

    httpx.post(
        f"{server.url}/api/auth/register",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    ).raise_for_status()
    context = new_context(browser)
    page = context.new_page()
    page.goto(f"{server.url}/login")
    expect(page.get_by_label("Email or username")).to_be_focused()
    page.keyboard.type("ada@example.com")
    page.keyboard.press("Tab")
    expect(page.get_by_label("Password")).to_be_focused()
    page.keyboard.type(DEFAULT_PASSWORD)
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Show password")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Forgot password?")).to_be_focused()
    page.keyboard.press("Tab")
    expect(page.get_by_label("Keep me signed in on this device")).to_be_focused()
    page.keyboard.press("Space")
    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Log in")).to_be_focused()
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"/dashboard$"))
    expect(page.locator("#user-email")).to_have_text("ada@example.com")

    cookies = context.cookies()
    assert {cookie["name"] for cookie in cookies} == {"access_token", "refresh_token", "csrf_token"}
    assert all(cookie["expires"] == -1 for cookie in cookies)  # session cookies
    context.close()


def test_pages_send_security_headers(browser: Browser, server: KeyturnServer) -> None:
    """Every page forbids inline script and framing and sets a Referrer-Policy; none of them
    logs a CSP violation."""
    context = new_context(browser)
    page = context.new_page()
    problems = watch_console(page)
    for path in ("/login", "/register", "/forgot-password", "/reset-password", "/verify-email"):
        response = page.goto(f"{server.url}{path}")
        assert response is not None and response.ok
        headers = response.headers
        assert "script-src 'self'" in headers["content-security-policy"]
        assert "frame-ancestors 'none'" in headers["content-security-policy"]
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["referrer-policy"] == "no-referrer"
        assert page.locator("script:not([src])").count() == 0
        assert page.locator("[style]").count() == 0
    assert problems == []

    page.goto(f"{server.url}/dashboard")
    assert page.url.endswith("/login")  # no session: sent to log in
    context.close()


def test_tabs_share_one_refresh_without_web_locks(browser: Browser, server: KeyturnServer) -> None:
    """Where navigator.locks is missing (plain http on a LAN address), the localStorage lease
    still lets only one tab refresh."""
    httpx.post(
        f"{server.url}/api/auth/register",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    ).raise_for_status()
    context = new_context(browser)
    context.add_init_script(
        "Object.defineProperty(Navigator.prototype, 'locks', {get: () => undefined});"
    )
    page = context.new_page()
    problems = watch_console(page)
    page.goto(f"{server.url}/login")
    log_in_in_page(page, "ada@example.com")
    assert page.evaluate("navigator.locks === undefined")
    second_tab = context.new_page()
    second_tab.goto(f"{server.url}/dashboard")

    reload_both_tabs_after_expiry(context, page, second_tab, sessions=1)

    assert problems == []
    context.close()


def test_docs_load_every_file_from_keyturn_under_a_strict_policy(
    browser: Browser, server: KeyturnServer
) -> None:
    """/docs draws the whole API from files Keyturn serves itself: no request leaves the
    server's origin, no inline script is allowed, and Swagger UI runs without a CSP violation."""
    from playwright.sync_api import expect

    context = new_context(browser)
    page = context.new_page()
    problems = watch_console(page)
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))

    response = page.goto(f"{server.url}/docs")

    assert response is not None and response.ok
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    expect(page.locator(".opblock-summary-path", has_text="/api/auth/login").first).to_be_visible()
    page.locator(".opblock-summary", has_text="/api/auth/login").first.click()
    expect(page.get_by_text("invalid_credentials").first).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "docs-desktop.png"))
    assert page.locator("script:not([src])").count() == 0
    assert [url for url in requested if not url.startswith(server.url)] == []
    assert problems == []
    context.close()


def register_by_api(server: KeyturnServer, email: str = "ada@example.com") -> None:
    httpx.post(
        f"{server.url}/api/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
    ).raise_for_status()


def test_register_signs_the_new_user_in(browser: Browser, server: KeyturnServer) -> None:
    """Creating an account asks for the password once and lands on the dashboard signed in."""
    from playwright.sync_api import expect

    context = new_context(browser)
    page = context.new_page()
    problems = watch_console(page)

    register_in_page(page, server, "ada@example.com", "ada")

    expect(page.locator("#user-email")).to_have_text("ada@example.com")
    expect(page.locator("#sessions li")).to_have_count(1)
    assert {cookie["name"] for cookie in context.cookies()} == {
        "access_token",
        "refresh_token",
        "csrf_token",
    }
    assert problems == []
    context.close()


def test_register_form_shows_every_problem_at_once(browser: Browser, server: KeyturnServer) -> None:
    """With a bad email, username and password, one submit marks all three fields, each
    problem written once, and nothing is sent to the server."""
    from playwright.sync_api import expect

    context = new_context(browser)
    page = context.new_page()
    sent: list[str] = []
    page.on("request", lambda r: sent.append(r.url) if "/api/" in r.url else None)
    page.goto(f"{server.url}/register")
    page.get_by_label("Email").fill("ada.example.com")
    page.get_by_label("Username").fill("a!")
    page.get_by_label("Password").fill("short")

    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("alert")).to_have_text("Please fix the 3 problems marked below.")
    messages = {
        "email": "Enter an email address like name@example.com.",
        "username": "This username does not follow the rule above.",
        "password": "This password is too short: 5 characters.",
    }
    for field, message in messages.items():
        expect(page.locator(f"#{field}-error")).to_have_text(message)
        expect(page.locator(f"#{field}")).to_have_attribute("aria-invalid", "true")
    text = page.locator("main").inner_text()
    for message in messages.values():
        assert text.count(message) == 1, message
    expect(page.get_by_label("Email")).to_be_focused()
    assert sent == []
    screenshot(page, "register-every-problem")

    page.get_by_label("Email").fill("")
    page.get_by_label("Username").fill("")
    page.get_by_label("Password").fill("")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_have_text("Please fix the 2 problems marked below.")
    expect(page.locator("#username-error")).to_be_hidden()
    assert sent == []
    context.close()


def test_show_password_toggle_works_by_keyboard(browser: Browser, server: KeyturnServer) -> None:
    """Tab reaches the Show button after the password; Enter shows the password, Space hides
    it again, and the button's name says what it will do."""
    from playwright.sync_api import expect

    context = new_context(browser)
    page = context.new_page()
    page.goto(f"{server.url}/register")
    password = page.get_by_label("Password")
    password.focus()
    page.keyboard.type("a long secret phrase")

    page.keyboard.press("Tab")
    expect(page.get_by_role("button", name="Show password")).to_be_focused()
    page.keyboard.press("Enter")

    expect(password).to_have_attribute("type", "text")
    expect(page.get_by_role("button", name="Hide password")).to_be_focused()
    screenshot(page, "register-password-shown")
    page.keyboard.press("Space")
    expect(password).to_have_attribute("type", "password")
    expect(password).to_have_value("a long secret phrase")
    context.close()


def test_change_password_on_the_dashboard_ends_other_sessions(
    browser: Browser, server: KeyturnServer
) -> None:
    """A wrong current password is said under its field; the right one changes the password,
    ends the other sessions and keeps this one."""
    from playwright.sync_api import expect

    register_by_api(server)
    other = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    ).json()
    context = new_context(browser)
    page = context.new_page()
    problems = watch_console(page)
    page.goto(f"{server.url}/login")
    log_in_in_page(page, "ada@example.com")
    expect(page.locator("#sessions li")).to_have_count(2)

    page.get_by_label("Current password").fill("not the password")
    page.get_by_label("New password").fill("a fresh long passphrase")
    page.get_by_role("button", name="Change password").click()
    expect(page.locator("#current-password-error")).to_have_text(
        "That is not your current password."
    )
    assert page.url.endswith("/dashboard")

    page.get_by_label("Current password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Change password").click()

    expect(page.locator("#password-notice")).to_have_text(
        "Your password has been changed. Your other sessions have ended."
    )
    expect(page.locator("#sessions li")).to_have_count(1)
    screenshot(page, "dashboard-password-changed")
    refreshed = httpx.post(
        f"{server.url}/api/auth/refresh", json={"refresh_token": other["refresh_token"]}
    )
    assert refreshed.status_code == 401
    new = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": "ada@example.com", "password": "a fresh long passphrase"},
    )
    assert new.status_code == 200
    assert problems == []
    context.close()


def test_delete_account_with_the_password(browser: Browser, server: KeyturnServer) -> None:
    """A wrong password deletes nothing; the right one deletes the account, signs the browser
    out, and the account can no longer log in."""
    from playwright.sync_api import expect

    register_by_api(server)
    context = new_context(browser)
    page = context.new_page()
    problems = watch_console(page)
    page.goto(f"{server.url}/login")
    log_in_in_page(page, "ada@example.com")

    page.get_by_label("Your password, to confirm").fill("not the password")
    page.get_by_role("button", name="Delete my account").click()
    expect(page.locator("#delete-password-error")).to_have_text(
        "That is not your password; nothing was deleted."
    )
    screenshot(page, "dashboard-delete-wrong-password")

    page.get_by_label("Your password, to confirm").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name="Delete my account").click()

    page.wait_for_url(re.compile(r"/login\?deleted=1$"))
    expect(page.get_by_role("status")).to_have_text("Your account has been deleted.")
    screenshot(page, "login-account-deleted")
    assert context.cookies() == []
    gone = httpx.post(
        f"{server.url}/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
    )
    assert (gone.status_code, gone.json()["error"]) == (401, "invalid_credentials")
    assert problems == []
    context.close()


def test_session_badge_stays_on_its_line_at_phone_width(
    browser: Browser, server: KeyturnServer
) -> None:
    """At 390 px the "This device" badge sits on the first line of the device name, in one
    piece, inside its row; the sessions list says what its time is."""
    from playwright.sync_api import expect

    register_by_api(server)
    context = browser.new_context(viewport=PHONE)
    page = context.new_page()
    page.goto(f"{server.url}/login")
    log_in_in_page(page, "ada@example.com")
    row = page.locator("#sessions li")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("last refreshed")

    name = row.locator(".session-device").bounding_box()
    badge = row.locator(".badge").bounding_box()
    item = row.bounding_box()
    assert name and badge and item
    line = float(
        row.locator(".session-device").evaluate("e => getComputedStyle(e).lineHeight")[:-2]
    )
    assert badge["y"] < name["y"] + line / 2, (name, badge)  # on the first line
    assert badge["height"] < 1.5 * line  # one line of text, not broken in two
    assert badge["x"] + badge["width"] <= item["x"] + item["width"]
    context.close()


def test_a_missing_page_is_an_html_404(browser: Browser, server: KeyturnServer) -> None:
    """A browser sent to a page that does not exist sees a page, not JSON."""
    from playwright.sync_api import expect

    context = new_context(browser)
    page = context.new_page()
    problems = watch_console(page)

    response = page.goto(f"{server.url}/nowhere")

    assert response is not None and response.status == 404
    assert "script-src 'self'" in response.headers["content-security-policy"]
    expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
    screenshot(page, "not-found")
    assert [p for p in problems if "404" not in p] == []
    context.close()
