"""The Redis side of revocation: keys other services read, the channel's messages, restore."""

from __future__ import annotations

import secrets
import time
from datetime import UTC, datetime, timedelta

import pytest

from keyturn.core.sessions import KIND_KEY, KIND_SESSION, KIND_TOKEN, KIND_USER, Revocation
from keyturn.revocation.channel import RevocationChannel, decode_message, encode_message
from keyturn.storage.redis import RedisLink
from tests.support.environment import RedisDatabase
from tests.support.processes import free_port


def revocation(kind: str, subject: str, *, seconds: float = 960) -> Revocation:
    return Revocation(
        id=0, kind=kind, subject=subject, expires_at=datetime.now(UTC) + timedelta(seconds=seconds)
    )


def test_messages_round_trip() -> None:
    sent = [
        revocation(KIND_SESSION, "s1"),
        revocation(KIND_TOKEN, "t1"),
        revocation(KIND_USER, "u"),
        revocation(KIND_KEY, "kid-1"),
    ]
    origin, received = decode_message(encode_message("me", sent))
    assert origin == "me"
    assert [(r.kind, r.subject) for r in received] == [(r.kind, r.subject) for r in sent]
    assert all(
        abs((a.expires_at - b.expires_at).total_seconds()) < 0.001
        for a, b in zip(sent, received, strict=True)
    )


@pytest.mark.parametrize(
    "data",
    [
        b"", b"not json", b"[]", b"null", b'{"revocations": 5}', b'{"revocations": [[1, 2]]}',
        b'{"revocations": [["nuke", "s", 1e9]]}', b'{"revocations": [["session", "", 1e9]]}',
        b'{"revocations": [["session", "s", 1e300]]}', b'{"revocations": [["session", "s", true]]}',
        b'{"revocations": [["session", 7, 1e9]]}', "\udcff".encode("utf-8", "surrogatepass"),
    ],
)  # fmt: skip
def test_malformed_messages_are_skipped(data: bytes) -> None:
    """Anything on the channel that is not a well-formed revocation is ignored, never raised."""
    _, revocations = decode_message(data)
    assert revocations == []


@pytest.mark.redis
def test_publish_writes_keys_with_ttls(redis_database: RedisDatabase) -> None:
    """Sessions and token ids get a key alive as long as tokens they cover; users none."""
    channel = RevocationChannel(RedisLink(redis_database.url), origin="test")
    sid, jti = secrets.token_urlsafe(16), secrets.token_urlsafe(16)

    channel.publish(
        [revocation(KIND_SESSION, sid), revocation(KIND_TOKEN, jti, seconds=30),
         revocation(KIND_USER, "u1")]
    )  # fmt: skip

    client = redis_database.client
    assert client.get("keyturn:revoked:sid:" + sid) == b"1"
    assert 955_000 < client.pttl("keyturn:revoked:sid:" + sid) <= 960_000
    assert 25_000 < client.pttl("keyturn:revoked:jti:" + jti) <= 30_000
    assert redis_database.keyturn_keys() == sorted(
        ["keyturn:revoked:sid:" + sid, "keyturn:revoked:jti:" + jti]
    )


@pytest.mark.redis
def test_restore_writes_every_live_revocation(redis_database: RedisDatabase) -> None:
    channel = RevocationChannel(RedisLink(redis_database.url), origin="test")
    now = time.time()
    sessions = {f"s{n}": now + 600 for n in range(2500)} | {"gone": now - 1}
    written = channel.restore(sessions, {"t": now + 60})
    assert written == 2501
    assert len(redis_database.keyturn_keys()) == 2501
    assert redis_database.client.get("keyturn:revoked:sid:gone") is None


def test_publish_to_an_absent_redis_asks_for_a_restore() -> None:
    link = RedisLink(f"redis://127.0.0.1:{free_port()}/0")
    link.take_restore_request()
    RevocationChannel(link, origin="test").publish([revocation(KIND_SESSION, "s")])
    assert link.needs_restore and not link.is_up
