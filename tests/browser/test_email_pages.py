"""The pages of accounts by email, and the language switch, in real Chromium against a real
`keyturn serve`, in English and in Korean.

Where the API behind a page is not part of this server yet, its answer as the contract
("Accounts by email") states it is given to the page with Playwright's routing: what is tested
is the page's side (what it sends, what it shows, what it leaves in the address bar).
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD
from tests.support.browser import DESKTOP, PHONE, SCREENSHOTS
from tests.support.processes import KeyturnServer

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Request, Route

pytestmark = pytest.mark.browser

NEW_PASSWORD = "a different long passphrase 42"
TOKEN = "kt-reset_0123456789abcdefABCDEF"
LOCALES = {"en": "en-US", "ko": "ko-KR"}


def screenshot(page: Page, name: str) -> None:
    """Save the page at desktop and phone widths to test-artifacts/screenshots/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    original = page.viewport_size or DESKTOP
    for label, size in (("desktop", DESKTOP), ("phone", PHONE)):
        page.set_viewport_size(size)
        page.screenshot(path=SCREENSHOTS / f"{name}-{label}.png", full_page=True)
    page.set_viewport_size(original)


def new_context(browser: Browser, language: str = "en") -> BrowserContext:
    """A browser whose Accept-Language prefers `language`."""
    context = browser.new_context(viewport=DESKTOP, locale=LOCALES[language])
    context.set_default_timeout(15000)
    return context


def watch_console(page: Page) -> list[str]:
    """Console errors and uncaught exceptions, leaving out Chromium's note about each refusal
    the page handles."""
    problems: list[str] = []
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error"
            and not re.match(
                r"Failed to load resource: .* status of (400|401|422|429) ", message.text
            )
            else None
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    return problems


def answer(page: Page, path: str, status: int, body: Any = None, **headers: str) -> list[Any]:
    """Give the page the contract's answer for `path`; return the JSON bodies it sent."""
    sent: list[Any] = []

    def handle(route: Route, request: Request) -> None:
        sent.append(json.loads(request.post_data or "null"))
        route.fulfill(
            status=status,
            headers={"Content-Type": "application/json", **headers},
            body="" if body is None else json.dumps(body),
        )

    page.route(f"**{path}", handle)
    return sent


def register_by_api(server: KeyturnServer, email: str = "ada@example.com") -> None:
    httpx.post(
        f"{server.url}/api/auth/register", json={"email": email, "password": DEFAULT_PASSWORD}
    ).raise_for_status()


def log_in(page: Page, server: KeyturnServer, email: str = "ada@example.com") -> None:
    page.goto(f"{server.url}/login")
    page.locator("#identifier").fill(email)
    page.locator("#password").fill(DEFAULT_PASSWORD)
    page.locator("#login-submit").click()
    page.wait_for_url(re.compile(r"/dashboard$"))


TEXT = {
    "en": {
        "forgot": "Send the link",
        "forgot-sent": "If an account uses ada@example.com, a link to choose a new password",
        "too-many": "Too many requests. Wait 1 minute 30 seconds before trying again.",
        "reset": "Reset password",
        "too-short": "This password is too short: 5 characters.",
        "invalid-link": "This link does not work any more",
        "no-token": "This page opens from the link in the email we sent you.",
        "verified": "Your email address ada@example.com is confirmed.",
        "resend": "Resend the link",
        "resent": "We have sent a new link to ada@example.com.",
        "change": "Change email address",
        "change-sent": "We have sent a link to new@example.com.",
        "not-current": "That is not your current password.",
        "forgot-link": "Forgot password?",
    },
    "ko": {
        "forgot": "링크 보내기",
        "forgot-sent": "ada@example.com 주소를 사용하는 계정이 있다면",
        "too-many": "요청이 너무 많습니다. 1분 30초 후에 다시 시도하십시오.",
        "reset": "비밀번호 재설정",
        "too-short": "비밀번호가 너무 짧습니다. 현재 5자입니다.",
        "invalid-link": "이 링크는 더 이상 사용할 수 없습니다.",
        "no-token": "이 페이지는 보내 드린 이메일의 링크로 열어야 합니다.",
        "verified": "이메일 주소 ada@example.com이(가) 확인되었습니다.",
        "resend": "링크 다시 보내기",
        "resent": "ada@example.com 주소로 새 링크를 보냈습니다.",
        "change": "이메일 주소 변경",
        "change-sent": "new@example.com 주소로 링크를 보냈습니다.",
        "not-current": "현재 비밀번호가 올바르지 않습니다.",
        "forgot-link": "비밀번호를 잊으셨습니까?",
    },
}


@pytest.mark.parametrize("language", ["en", "ko"])
def test_forgot_password_form_shows_the_answer_and_the_wait(
    browser: Browser, server: KeyturnServer, language: str
) -> None:
    """From the login page's "Forgot password?" link: the address goes out, the 202 is told
    the same way for any address, and a 429 shows the wait from Retry-After."""
    from playwright.sync_api import expect

    text = TEXT[language]
    context = new_context(browser, language)
    page = context.new_page()
    problems = watch_console(page)
    page.goto(f"{server.url}/login")
    assert page.evaluate("document.documentElement.lang") == language
    page.get_by_role("link", name=text["forgot-link"]).click()
    page.wait_for_url(re.compile(r"/forgot-password$"))
    expect(page.locator("#email")).to_be_focused()

    sent = answer(page, "/api/auth/password/forgot", 202, {"message": "Check your inbox."})
    page.keyboard.type("ada@example.com")
    page.keyboard.press("Enter")

    expect(page.locator("#notice")).to_contain_text(text["forgot-sent"])
    assert sent == [{"email": "ada@example.com"}]
    screenshot(page, f"forgot-password-sent-{language}")

    page.unroute("**/api/auth/password/forgot")
    answer(
        page,
        "/api/auth/password/forgot",
        429,
        {"error": "too_many_requests", "message": "Too many requests."},
        **{"Retry-After": "90"},
    )
    page.get_by_role("button", name=text["forgot"]).click()
    expect(page.locator("#form-error")).to_have_text(text["too-many"])
    expect(page.locator("#forgot-submit")).to_be_disabled()
    assert problems == []
    context.close()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_reset_page_takes_the_token_from_the_fragment_and_wipes_it(
    browser: Browser, server: KeyturnServer, language: str
) -> None:
    """The token is read from #token=…, gone from the address bar and the history entry at
    once, never in a request's URL or Referer, sent in the body; a 400 invalid_token says the
    link no longer works and offers a new one."""
    from playwright.sync_api import expect

    text = TEXT[language]
    context = new_context(browser, language)
    page = context.new_page()
    problems = watch_console(page)
    requests: list[Request] = []
    context.on("request", lambda request: requests.append(request))

    page.goto(f"{server.url}/reset-password#token={TOKEN}")

    expect(page.locator("#new-password")).to_be_focused()
    assert page.evaluate("location.hash") == ""
    assert page.url == f"{server.url}/reset-password"
    screenshot(page, f"reset-password-{language}")

    page.keyboard.type("short")
    page.keyboard.press("Enter")
    expect(page.locator("#new-password-error")).to_have_text(text["too-short"])

    sent = answer(
        page,
        "/api/auth/password/reset",
        400,
        {"error": "invalid_token", "message": "The link is not valid."},
    )
    page.locator("#new-password").fill(NEW_PASSWORD)
    page.get_by_role("button", name=text["reset"]).click()

    expect(page.locator("#form-error")).to_contain_text(text["invalid-link"])
    expect(page.locator("#reset-form")).to_be_hidden()
    assert sent == [{"token": TOKEN, "new_password": NEW_PASSWORD}]
    for request in requests:
        assert TOKEN not in request.url
        assert not request.headers.get("referer"), request.url
    screenshot(page, f"reset-password-invalid-{language}")
    assert problems == []
    context.close()


def test_reset_page_without_a_token_says_where_it_comes_from(
    browser: Browser, server: KeyturnServer
) -> None:
    from playwright.sync_api import expect

    context = new_context(browser, "ko")
    page = context.new_page()
    page.goto(f"{server.url}/reset-password")

    expect(page.locator("#no-token")).to_have_text(re.compile(TEXT["ko"]["no-token"]))
    expect(page.locator("#reset-form")).to_be_hidden()
    context.close()


def test_the_language_switch_keeps_an_unused_reset_token(
    browser: Browser, server: KeyturnServer
) -> None:
    """Switching language on the reset page reloads it; the token goes along in the fragment
    (kept through the redirect) and is wiped again."""
    from playwright.sync_api import expect

    context = new_context(browser, "en")
    page = context.new_page()
    page.goto(f"{server.url}/reset-password#token={TOKEN}")
    page.get_by_role("link", name="한국어").click()

    expect(page.get_by_role("button", name=TEXT["ko"]["reset"])).to_be_visible()
    assert page.evaluate("location.hash") == ""
    sent = answer(page, "/api/auth/password/reset", 400, {"error": "invalid_token"})
    page.locator("#new-password").fill(NEW_PASSWORD)
    page.get_by_role("button", name=TEXT["ko"]["reset"]).click()
    expect(page.locator("#form-error")).to_contain_text(TEXT["ko"]["invalid-link"])
    assert sent == [{"token": TOKEN, "new_password": NEW_PASSWORD}]
    context.close()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_verify_page_confirms_with_the_fragment_token(
    browser: Browser, server: KeyturnServer, language: str
) -> None:
    from playwright.sync_api import expect

    text = TEXT[language]
    context = new_context(browser, language)
    page = context.new_page()
    problems = watch_console(page)
    user = {"id": "u1", "email": "ada@example.com", "email_verified": True}
    sent = answer(page, "/api/auth/email/verify", 200, {"user": user})

    page.goto(f"{server.url}/verify-email#token={TOKEN}")

    expect(page.locator("#notice")).to_have_text(text["verified"])
    assert sent == [{"token": TOKEN}]
    assert page.evaluate("location.hash") == ""
    screenshot(page, f"verify-email-{language}")

    page.unroute("**/api/auth/email/verify")
    answer(page, "/api/auth/email/verify", 400, {"error": "invalid_token"})
    page.goto("about:blank")  # else only the fragment changes, and nothing reloads
    page.goto(f"{server.url}/verify-email#token=used")
    expect(page.locator("#form-error")).to_contain_text(text["invalid-link"])
    screenshot(page, f"verify-email-invalid-{language}")
    assert problems == []
    context.close()


@pytest.mark.parametrize("language", ["en", "ko"])
def test_dashboard_banner_for_an_unverified_address_and_the_email_card(
    browser: Browser, server: KeyturnServer, language: str
) -> None:
    """With `email_verified: false` the dashboard shows a banner whose button asks for a new
    link; the email address card sends the new address with the password, and says a wrong
    password under the password field."""
    from playwright.sync_api import expect

    text = TEXT[language]
    register_by_api(server)
    context = new_context(browser, language)
    page = context.new_page()
    problems = watch_console(page)

    def unverified(route: Route) -> None:
        response = route.fetch()
        body = response.json()
        body["user"]["email_verified"] = False
        route.fulfill(response=response, body=json.dumps(body))

    page.route("**/api/auth/me", unverified)
    log_in(page, server)

    banner = page.locator("#verify-banner")
    expect(banner).to_be_visible()
    sent = answer(page, "/api/auth/email/verify/resend", 202)
    banner.get_by_role("button", name=text["resend"]).click()
    expect(page.locator("#verify-status")).to_have_text(text["resent"])
    assert sent == [None]
    page.unroute("**/api/auth/email/verify/resend")
    answer(
        page,
        "/api/auth/email/verify/resend",
        429,
        {"error": "too_many_requests"},
        **{"Retry-After": "90"},
    )
    banner.get_by_role("button", name=text["resend"]).click()
    expect(page.locator("#verify-status")).to_have_text(text["too-many"])
    expect(page.locator("#verify-resend")).to_be_disabled()
    assert page.evaluate("document.cookie").startswith("csrf_token=")

    wrong = answer(page, "/api/auth/email/change", 401, {"error": "invalid_credentials"})
    page.locator("#new-email").fill("new@example.com")
    page.locator("#email-password").fill("not the password")
    page.get_by_role("button", name=text["change"]).click()
    expect(page.locator("#email-password-error")).to_have_text(text["not-current"])
    expect(page.locator("#email-password")).to_be_focused()
    assert wrong == [{"new_email": "new@example.com", "current_password": "not the password"}]

    page.unroute("**/api/auth/email/change")
    answer(page, "/api/auth/email/change", 202)
    page.locator("#email-password").fill(DEFAULT_PASSWORD)
    page.get_by_role("button", name=text["change"]).click()
    expect(page.locator("#email-notice")).to_contain_text(text["change-sent"])
    expect(page.locator("#new-email")).to_have_value("")
    screenshot(page, f"dashboard-{language}")
    assert [p for p in problems if "401" not in p] == []
    context.close()


def test_language_switch_by_keyboard_is_remembered(browser: Browser, server: KeyturnServer) -> None:
    """The switch is a pair of links in the top bar: Tab to 한국어, Enter, and every page
    after speaks Korean, even to a browser that asks for English."""
    from playwright.sync_api import expect

    context = new_context(browser, "en")
    page = context.new_page()
    problems = watch_console(page)
    page.goto(f"{server.url}/register")
    expect(page.get_by_role("link", name="English")).to_have_attribute("aria-current", "true")

    korean = page.get_by_role("link", name="한국어")
    for _ in range(10):
        page.keyboard.press("Tab")
        if korean.evaluate("link => link === document.activeElement"):
            break
    with page.expect_navigation(url=re.compile(r"/register$")):
        page.keyboard.press("Enter")

    assert page.evaluate("document.documentElement.lang") == "ko"
    expect(page.get_by_role("heading", name="회원가입")).to_be_visible()
    cookie = next(c for c in context.cookies() if c["name"] == "lang")
    assert (cookie["value"], cookie["sameSite"], cookie["path"]) == ("ko", "Lax", "/")
    page.goto(f"{server.url}/login")
    expect(page.get_by_role("button", name="로그인", exact=True)).to_be_visible()
    screenshot(page, "login-ko")
    page.goto(f"{server.url}/register")
    screenshot(page, "register-ko")
    page.goto(f"{server.url}/nowhere")
    expect(page.get_by_role("heading", name="페이지를 찾을 수 없습니다")).to_be_visible()
    screenshot(page, "not-found-ko")
    page.goto(f"{server.url}/forgot-password")
    screenshot(page, "forgot-password-ko")

    with page.expect_navigation(url=re.compile(r"/forgot-password$")):
        page.get_by_role("link", name="English").click()
    assert page.evaluate("document.documentElement.lang") == "en"
    screenshot(page, "forgot-password-en")
    assert [p for p in problems if "404" not in p] == []
    context.close()


def test_korean_dashboard_says_its_sessions_in_korean(
    browser: Browser, server: KeyturnServer
) -> None:
    """The script's own words (device, times, counts) follow the page's language."""
    from playwright.sync_api import expect

    register_by_api(server)
    context = new_context(browser, "ko")
    page = context.new_page()
    problems = watch_console(page)
    log_in(page, server)

    expect(page.locator("#sessions-status")).to_have_text("활성 세션 1개")
    row = page.locator("#sessions li")
    expect(row).to_contain_text("이 기기")
    expect(row).to_contain_text("마지막 갱신 방금")
    expect(row.get_by_role("button")).to_have_text(re.compile(r"^종료"))
    page.get_by_role("button", name="표시 비밀번호").first.click()
    expect(page.get_by_role("button", name="숨기기 비밀번호").first).to_be_visible()
    screenshot(page, "dashboard-sessions-ko")
    assert problems == []
    context.close()
