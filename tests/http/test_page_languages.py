"""The pages' language: Accept-Language, the `lang` cookie, the switch, and the new pages."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.support.api import DEFAULT_PASSWORD, register

PAGES = ["/login", "/register", "/forgot-password", "/reset-password", "/verify-email"]
KOREAN = "ko-KR,ko;q=0.9,en-US;q=0.8,en;q=0.7"


def html_lang(html: str) -> str:
    match = re.search(r'<html lang="([^"]+)"', html)
    assert match, html[:200]
    return match.group(1)


@pytest.mark.parametrize("path", PAGES)
async def test_accept_language_ko_gets_the_korean_page(api: httpx.AsyncClient, path: str) -> None:
    """A browser that prefers Korean gets the page in Korean, with <html lang="ko">."""
    english = await api.get(path)
    korean = await api.get(path, headers={"Accept-Language": KOREAN})

    assert (english.status_code, korean.status_code) == (200, 200)
    assert html_lang(english.text) == "en"
    assert html_lang(korean.text) == "ko"
    assert re.search(r"[\uac00-\ud7a3]", korean.text.split("<main", 1)[1])
    assert "Log in" not in korean.text.split("<main", 1)[1].split('<template id="strings">')[0]


async def test_korean_login_page_speaks_korean(api: httpx.AsyncClient) -> None:
    page = await api.get("/login", headers={"Accept-Language": "ko"})

    assert "<title>로그인 · Keyturn</title>" in page.text
    assert ">비밀번호를 잊으셨습니까?</a>" in page.text
    assert 'href="/forgot-password"' in page.text
    # The script's sentences come from the page, in the page's language.
    assert '<span data-key="wrong-login">이메일, 사용자 이름 또는 비밀번호가' in page.text


async def test_the_lang_cookie_overrides_accept_language(api: httpx.AsyncClient) -> None:
    api.cookies.set("lang", "en", domain="keyturn.test")
    english = await api.get("/login", headers={"Accept-Language": "ko"})
    api.cookies.set("lang", "ko", domain="keyturn.test")
    korean = await api.get("/login", headers={"Accept-Language": "en-US,en"})
    api.cookies.set("lang", "xx", domain="keyturn.test")
    unknown = await api.get("/login", headers={"Accept-Language": "ko"})

    assert html_lang(english.text) == "en"
    assert html_lang(korean.text) == "ko"
    assert html_lang(unknown.text) == "ko", "an unknown choice falls back to Accept-Language"


async def test_the_switch_remembers_the_language_and_goes_back(api: httpx.AsyncClient) -> None:
    """GET /lang sets a year-long, Lax `lang` cookie and returns to the page it came from."""
    switched = await api.get("/lang", params={"to": "ko", "next": "/register?x=1"})

    assert switched.status_code == 303
    assert switched.headers["location"] == "/register?x=1"
    assert switched.headers["cache-control"] == "no-store"
    cookie = switched.headers["set-cookie"]
    assert cookie.startswith("lang=ko;")
    assert "Max-Age=31536000" in cookie
    assert "Path=/" in cookie
    assert "samesite=lax" in cookie.lower()
    assert html_lang((await api.get("/register")).text) == "ko"

    back = await api.get("/lang", params={"to": "en", "next": "/register"})
    assert back.headers["set-cookie"].startswith("lang=en;")
    assert html_lang((await api.get("/register", headers={"Accept-Language": "ko"})).text) == "en"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/login",
        "/\\evil.example",
        "\\\\evil.example",
        "http:/evil.example",
        "javascript:alert(1)",
        "evil.example",
        "/login\r\nSet-Cookie: x=1",
        "",
    ],
)
async def test_the_switch_refuses_to_leave_the_origin(api: httpx.AsyncClient, target: str) -> None:
    """`next` must be a path on this origin: anything else would make /lang an open redirect."""
    switched = await api.get("/lang", params={"to": "ko", "next": target})

    assert switched.status_code == 303
    assert switched.headers["location"] == "/dashboard"


async def test_the_switch_ignores_a_language_keyturn_does_not_speak(
    api: httpx.AsyncClient,
) -> None:
    switched = await api.get("/lang", params={"to": "fr", "next": "/login"})

    assert (switched.status_code, switched.headers["location"]) == (303, "/login")
    assert "set-cookie" not in switched.headers


async def test_the_switch_links_name_each_language_in_itself(api: httpx.AsyncClient) -> None:
    page = await api.get("/forgot-password?a=1", headers={"Accept-Language": "ko"})

    assert '<nav class="languages" aria-label="언어">' in page.text
    assert 'href="/lang?to=en&amp;next=%2Fforgot-password%3Fa%3D1" lang="en"' in page.text
    assert re.search(
        r'lang="ko"\s+hreflang="ko" data-lang-switch aria-current="true">한국어</a>', page.text
    )


@pytest.mark.parametrize("path", ["/forgot-password", "/reset-password", "/verify-email"])
async def test_email_pages_carry_security_headers(api: httpx.AsyncClient, path: str) -> None:
    """The pages a mail's link opens: strict policy, no referrer (the token is in the
    fragment, which no request carries), no inline script or style, never cached."""
    response = await api.get(path)

    assert response.status_code == 200
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["referrer-policy"] == "no-referrer"
    assert response.headers["cache-control"] == "no-store"
    assert "<script>" not in response.text
    assert ' style="' not in response.text
    assert "token" not in response.headers.get("set-cookie", "")


async def test_the_dashboard_and_404_follow_the_language(api: httpx.AsyncClient) -> None:
    await register(api)
    await api.post(
        "/api/auth/login",
        json={"email": "ada@example.com", "password": DEFAULT_PASSWORD},
        headers={"X-Auth-Mode": "cookie"},
    )
    korean = {"Accept-Language": "ko"}

    dashboard = await api.get("/dashboard", headers=korean)
    missing = await api.get("/nowhere", headers={**korean, "Accept": "text/html"})

    assert html_lang(dashboard.text) == "ko"
    assert ">모든 기기에서 로그아웃</button>" in dashboard.text
    assert ">이메일 주소</h2>" in dashboard.text
    assert missing.status_code == 404
    assert "<title>페이지를 찾을 수 없습니다 · Keyturn</title>" in missing.text


@pytest.mark.parametrize("path", ["/forgot-password", "/reset-password"])
async def test_every_input_of_the_email_pages_has_a_label(
    api: httpx.AsyncClient, path: str
) -> None:
    html = (await api.get(path, headers={"Accept-Language": "ko"})).text
    inputs = re.findall(r'<input id="([^"]+)"', html)

    assert inputs
    for input_id in inputs:
        assert f'<label for="{input_id}">' in html, input_id
