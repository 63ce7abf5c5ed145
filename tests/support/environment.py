"""What the tests run against: the services they need (PostgreSQL, Redis), the names the
fixtures share, and how a missing service is reported (skip locally, fail under CI=true)."""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from cryptography.fernet import Fernet

from keyturn.config import Settings

IN_CI = os.environ.get("CI", "").lower() == "true"
POSTGRES_ADMIN_URL = os.environ.get(
    "KEYTURN_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REDIS_TEST_URL = os.environ.get("KEYTURN_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
TEST_ISSUER = "http://keyturn.test"
TEST_CLIENT_ADDRESS = ("203.0.113.7", 40000)
TEST_SECRETS_KEY = Fernet.generate_key().decode()


def missing_service(reason: str) -> None:
    """Skip locally; under CI a missing service is a failure, not a skip."""
    if IN_CI:
        pytest.fail(f"{reason}; CI must run this test", pytrace=False)
    pytest.skip(reason)


class RedisDatabase:
    """A logical database of the test Redis claimed for this run (never 0: other runs and
    tools share the server), so parallel runs do not see each other's keys. Only the keys
    Keyturn writes (`keyturn:*`) are ever deleted; the server is never flushed."""

    CLAIM_KEY = "keyturn-test:claim"

    def __init__(self, base_url: str) -> None:
        import redis

        self.client: Any = None
        self.url = ""
        token = secrets.token_hex(8)
        for number in range(1, 16):
            url = _redis_url_with_db(base_url, number)
            client = redis.Redis.from_url(url, socket_connect_timeout=1)
            if client.set(self.CLAIM_KEY, token, nx=True, ex=3600):
                self.client, self.url = client, url
                return
            client.close()
        raise RuntimeError("every logical Redis database 1-15 is claimed by another test run")

    def keyturn_keys(self) -> list[str]:
        return sorted(key.decode() for key in self.client.scan_iter(match="keyturn:*", count=1000))

    def delete_keyturn_keys(self) -> None:
        keys = list(self.client.scan_iter(match="keyturn:*", count=1000))
        for start in range(0, len(keys), 1000):
            self.client.delete(*keys[start : start + 1000])

    def release(self) -> None:
        self.delete_keyturn_keys()
        self.client.delete(self.CLAIM_KEY)
        self.client.close()


def _redis_url_with_db(base_url: str, number: int) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(base_url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{number}", parts.query, ""))


SettingsFactory = Callable[..., Settings]
ApiFactory = Callable[..., Any]
