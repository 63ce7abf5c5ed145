"""The tokens of mailed links and the verdict on a presented one, as pure rules."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import pytest

from keyturn.core.email_tokens import (
    Purpose,
    StoredEmailToken,
    TokenVerdict,
    hash_email_token,
    is_email_token_shaped,
    judge_email_token,
    new_email_token,
    password_fingerprint,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
HASH = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA"
RESET = frozenset({Purpose.RESET})
VERIFYING = frozenset({Purpose.VERIFY, Purpose.EMAIL_CHANGE})


def stored(purpose: Purpose = Purpose.RESET, **changes: object) -> StoredEmailToken:
    token = StoredEmailToken(
        id=1,
        purpose=purpose,
        user_id="u1",
        email="ada@example.com",
        password_fingerprint=password_fingerprint(HASH) if purpose is Purpose.RESET else None,
        created_at=NOW - timedelta(minutes=5),
        expires_at=NOW + timedelta(minutes=25),
        used_at=None,
    )
    return dataclasses.replace(token, **changes)  # type: ignore[arg-type]


def judge(
    token: StoredEmailToken | None,
    purposes: frozenset[Purpose] = RESET,
    *,
    email: str | None = "ada@example.com",
    password_hash: str | None = HASH,
) -> TokenVerdict:
    return judge_email_token(
        token,
        purposes=purposes,
        now=NOW,
        current_email=email,
        current_password_hash=password_hash,
    )


def test_a_new_token_has_256_random_bits_and_is_stored_as_its_sha256() -> None:
    tokens = {new_email_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert is_email_token_shaped(token) and len(token) == 43
    assert hash_email_token(token) != token and len(hash_email_token(token)) == 64


@pytest.mark.parametrize("value", ["", "short", "x" * 44, "a" * 42 + "!", "a" * 42 + "="])
def test_anything_else_is_not_token_shaped(value: str) -> None:
    assert not is_email_token_shaped(value)


def test_a_fresh_token_for_its_purpose_may_be_used() -> None:
    assert judge(stored()) is TokenVerdict.USE
    assert judge(stored(Purpose.VERIFY), VERIFYING) is TokenVerdict.USE


def test_unknown_and_other_purpose_tokens_are_unknown() -> None:
    assert judge(None) is TokenVerdict.UNKNOWN
    assert judge(stored(Purpose.VERIFY)) is TokenVerdict.UNKNOWN
    assert judge(stored(), VERIFYING) is TokenVerdict.UNKNOWN


def test_a_used_or_expired_token_is_refused() -> None:
    assert judge(stored(used_at=NOW - timedelta(seconds=1))) is TokenVerdict.USED
    assert judge(stored(expires_at=NOW)) is TokenVerdict.EXPIRED


def test_a_reset_link_ends_with_a_change_of_password_or_address() -> None:
    assert judge(stored(), password_hash=HASH + "x") is TokenVerdict.STALE
    assert judge(stored(), email="ada@new.example") is TokenVerdict.STALE
    assert judge(stored(Purpose.VERIFY), VERIFYING, email="ada@new.example") is TokenVerdict.STALE


def test_an_email_change_link_names_the_new_address_not_the_current() -> None:
    change = stored(Purpose.EMAIL_CHANGE, email="ada@new.example")
    assert judge(change, VERIFYING) is TokenVerdict.USE


def test_a_gone_or_disabled_account_makes_its_tokens_unknown() -> None:
    assert judge(stored(), email=None, password_hash=None) is TokenVerdict.UNKNOWN
