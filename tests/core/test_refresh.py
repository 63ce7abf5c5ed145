"""The refresh-token verdict and the sealed successor, as pure rules."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from keyturn.core.refresh import (
    RefreshVerdict,
    StoredRefreshToken,
    hash_refresh_token,
    is_refresh_token_shaped,
    judge_refresh,
    new_refresh_token,
    open_successor,
    seal_successor,
)

NOW = datetime(2030, 1, 1, tzinfo=UTC)
GRACE = timedelta(seconds=10)


def stored(*, rotated_ago: float | None = None, expires_in: float = 3600) -> StoredRefreshToken:
    return StoredRefreshToken(
        id=1,
        session_id="s",
        expires_at=NOW + timedelta(seconds=expires_in),
        rotated_at=None if rotated_ago is None else NOW - timedelta(seconds=rotated_ago),
        sealed_successor=None if rotated_ago is None else b"sealed",
    )


def test_unused_live_token_rotates() -> None:
    assert judge_refresh(stored(), now=NOW, grace=GRACE) is RefreshVerdict.ROTATE


def test_unused_expired_token_is_expired() -> None:
    assert judge_refresh(stored(expires_in=0), now=NOW, grace=GRACE) is RefreshVerdict.EXPIRED


def test_rotated_token_within_grace_shares_the_successor() -> None:
    verdict = judge_refresh(stored(rotated_ago=10), now=NOW, grace=GRACE)
    assert verdict is RefreshVerdict.WITHIN_GRACE


def test_rotated_token_after_grace_is_reuse() -> None:
    assert judge_refresh(stored(rotated_ago=10.001), now=NOW, grace=GRACE) is RefreshVerdict.REUSED


def test_zero_grace_is_strict() -> None:
    verdict = judge_refresh(stored(rotated_ago=0.5), now=NOW, grace=timedelta(0))
    assert verdict is RefreshVerdict.REUSED


def test_successor_opens_only_with_the_parent_token() -> None:
    parent, successor, stranger = new_refresh_token(), new_refresh_token(), new_refresh_token()
    sealed = seal_successor(parent, successor)
    assert successor.encode() not in sealed
    assert open_successor(parent, sealed) == successor
    assert open_successor(stranger, sealed) is None
    assert open_successor(parent, sealed[:-1] + bytes([sealed[-1] ^ 1])) is None


def test_refresh_tokens_are_random_prefixed_and_hashed() -> None:
    tokens = {new_refresh_token() for _ in range(100)}
    assert len(tokens) == 100
    token = tokens.pop()
    assert is_refresh_token_shaped(token) and token.count(".") == 0
    assert len(hash_refresh_token(token)) == 64 and token not in hash_refresh_token(token)
    assert not is_refresh_token_shaped("eyJhbGciOi.x.y")
