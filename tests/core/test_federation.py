"""The pure rules of sign-in through a provider: where it may return to, the signed state
cookie, and who a provider identity signs in as."""

from __future__ import annotations

import pytest

from keyturn import errors
from keyturn.core.federation import (
    FlowState,
    Resolution,
    checked_return_to,
    read_flow_state,
    resolve_identity,
    sign_flow_state,
)

KEY = b"k" * 32
FLOW = FlowState(
    provider="corp",
    state="s" * 43,
    nonce="n" * 43,
    code_verifier="v" * 64,
    return_to="/dashboard",
    expires_at=1_000,
    link_user_id=None,
)


@pytest.mark.parametrize("path", ["/dashboard", "/dashboard?tab=sessions#top", "/a/b%2F/c"])
def test_a_path_on_this_site_is_accepted(path: str) -> None:
    assert checked_return_to(path) == path


def test_no_return_to_means_the_dashboard() -> None:
    assert checked_return_to(None) == checked_return_to("") == "/dashboard"


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example",
        "//evil.example",
        "/\\evil.example",
        "/ok\\..\\evil",
        "javascript:alert(1)",
        "evil.example/path",
        "/\x00",
        "/a\rb",
        "/a b",
        "/\x7f",
        "/" + "a" * 600,
    ],
)
def test_anything_a_browser_could_read_as_another_site_is_refused(target: str) -> None:
    with pytest.raises(errors.InvalidReturnToError):
        checked_return_to(target)


def test_a_signed_state_reads_back_until_it_expires() -> None:
    cookie = sign_flow_state(FLOW, key=KEY)

    assert read_flow_state(cookie, key=KEY, now=999) == FLOW
    assert read_flow_state(cookie, key=KEY, now=1_000) is None


@pytest.mark.parametrize(
    "mangle",
    [
        lambda cookie: cookie[:-2] + ("AA" if not cookie.endswith("AA") else "BB"),
        lambda cookie: cookie.replace(cookie[5], "A" if cookie[5] != "A" else "B", 1),
        lambda cookie: cookie.replace(".", ""),
        lambda cookie: "",
        lambda cookie: cookie + "." + cookie,
        lambda cookie: "x" * 5000,
    ],
)
def test_an_altered_state_cookie_reads_as_none(mangle) -> None:  # type: ignore[no-untyped-def]
    assert read_flow_state(mangle(sign_flow_state(FLOW, key=KEY)), key=KEY, now=0) is None


def test_a_state_cookie_signed_with_another_key_reads_as_none() -> None:
    assert read_flow_state(sign_flow_state(FLOW, key=b"o" * 32), key=KEY, now=0) is None


@pytest.mark.parametrize(
    ("identity_user", "email_user", "account_verified", "provider_verified", "expected"),
    [
        ("u1", None, False, False, Resolution.SIGN_IN),
        ("u1", "u2", True, True, Resolution.SIGN_IN),
        (None, None, False, False, Resolution.CREATE),
        (None, None, False, True, Resolution.CREATE),
        (None, "u2", True, True, Resolution.LINK_EXISTING),
        (None, "u2", False, True, Resolution.ACCOUNT_EXISTS),  # pre-account takeover
        (None, "u2", True, False, Resolution.ACCOUNT_EXISTS),  # the provider does not vouch
        (None, "u2", False, False, Resolution.ACCOUNT_EXISTS),
    ],
)
def test_who_a_provider_identity_signs_in_as(
    identity_user: str | None,
    email_user: str | None,
    account_verified: bool,
    provider_verified: bool,
    expected: Resolution,
) -> None:
    assert (
        resolve_identity(
            identity_user_id=identity_user,
            email_user_id=email_user,
            email_user_verified=account_verified,
            provider_email_verified=provider_verified,
            link_user_id=None,
        )
        is expected
    )


@pytest.mark.parametrize(
    ("identity_user", "expected"),
    [
        (None, Resolution.LINK_CURRENT),
        ("me", Resolution.ALREADY_LINKED),
        ("someone-else", Resolution.IN_USE),
    ],
)
def test_linking_joins_the_signed_in_user_or_nobody(
    identity_user: str | None, expected: Resolution
) -> None:
    """While linking, the address plays no part: the identity joins the signed-in user."""
    assert (
        resolve_identity(
            identity_user_id=identity_user,
            email_user_id="another-account",
            email_user_verified=True,
            provider_email_verified=True,
            link_user_id="me",
        )
        is expected
    )
