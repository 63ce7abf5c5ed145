"""The origin check of browser mode and the binding of CSRF tokens to sessions."""

from __future__ import annotations

from typing import Any

import pytest

from keyturn.clock import FrozenClock
from keyturn.config import Settings
from keyturn.core.sealing import Sealer, new_sealing_key
from keyturn.errors import CsrfFailedError
from keyturn.services.browser import BrowserService, origin_of


def service(**values: Any) -> BrowserService:
    settings = Settings(_env_file=None, **values)  # type: ignore[call-arg]
    browser = BrowserService(
        settings,
        database=None,  # type: ignore[arg-type]
        clock=FrozenClock(),
        sealer=Sealer([new_sealing_key()]),
    )
    browser._key = b"k" * 32  # what load_key() reads from the database
    return browser


@pytest.mark.parametrize(
    ("url", "origin"),
    [
        ("https://Auth.Example.com", "https://auth.example.com"),
        ("https://auth.example.com:443/keyturn/", "https://auth.example.com"),
        ("http://127.0.0.1:8000", "http://127.0.0.1:8000"),
        ("http://[::1]:80", "http://[::1]"),
        ("ftp://example.com", None),
        ("null", None),
        ("https://", None),
        ("http://example.com:99999", None),
    ],
)
def test_origin_of_normalizes_like_browsers(url: str, origin: str | None) -> None:
    assert origin_of(url) == origin


def test_loopback_names_are_one_origin_in_development_only() -> None:
    """localhost and 127.0.0.1 of the same port are the same machine while developing."""
    development = service(issuer="http://127.0.0.1:8000")
    assert development.is_origin_allowed("http://localhost:8000")
    assert development.is_origin_allowed("http://[::1]:8000")
    assert not development.is_origin_allowed("http://localhost:8001")
    assert not development.is_origin_allowed("https://localhost:8000")

    production = service(env="production", issuer="http://127.0.0.1:8000")
    assert production.is_origin_allowed("http://127.0.0.1:8000")
    assert not production.is_origin_allowed("http://localhost:8000")


def test_foreign_origin_message_names_the_expected_origin() -> None:
    browser = service(public_origin="https://auth.example.com")
    with pytest.raises(CsrfFailedError, match=r"https://auth\.example\.com"):
        browser.check_origin("https://evil.example")
    browser.check_origin(None)  # no Origin header: nothing to compare


def test_csrf_token_is_bound_to_its_session_and_key() -> None:
    browser = service()
    token = browser.new_csrf_token("session-a")
    assert browser.is_csrf_token_of(token, "session-a")
    assert not browser.is_csrf_token_of(token, "session-b")
    assert token != browser.new_csrf_token("session-a")  # a fresh nonce each time

    other_key = service()
    other_key._key = b"x" * 32
    assert not other_key.is_csrf_token_of(token, "session-a")
    for garbage in ["", ".", "abc", "a.b.c", "é.é", "\udcff.x", "A" * 300, None]:
        assert not browser.is_csrf_token_of(garbage, "session-a")
