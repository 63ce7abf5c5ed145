"""Use cases run directly on their services: a fresh SQLite database, a frozen clock, no HTTP."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from keyturn.clock import FrozenClock
from keyturn.config import Settings
from keyturn.services.container import Services, build_services
from tests.support.environment import TEST_ISSUER, TEST_SECRETS_KEY

ServicesFactory = Callable[..., Services]


@pytest.fixture
def make_services(sqlite_url: str, clock: FrozenClock) -> Iterator[ServicesFactory]:
    """Build the services of one process on the test's SQLite database (already migrated),
    with light Argon2 parameters; keyword arguments are Settings fields."""
    built: list[Services] = []

    def make(**overrides: Any) -> Services:
        values: dict[str, Any] = {
            "database_url": sqlite_url,
            "issuer": TEST_ISSUER,
            "argon2_memory_kib": 1024,
            "argon2_time_cost": 1,
            "secrets_key": TEST_SECRETS_KEY,
        }
        values.update(overrides)
        services = build_services(Settings(_env_file=None, **values), clock=clock)  # type: ignore[call-arg]
        services.keyring.ensure_signing_key()
        services.feed.sync_now()
        built.append(services)
        return services

    yield make
    for services in built:
        services.database.dispose()
        services.password_hashing.close()


@pytest.fixture
def services(make_services: ServicesFactory) -> Services:
    return make_services()
