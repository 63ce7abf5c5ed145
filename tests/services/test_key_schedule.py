"""KEYTURN_KEY_ROTATION_DAYS: upkeep rotates the signing key on schedule, exactly as
`keyturn keys rotate` does, once across instances."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from keyturn.clock import FrozenClock
from keyturn.config import Settings
from keyturn.services.container import Services, build_services
from keyturn.services.keyring import KEY_ACTIVATION_DELAY
from tests.support.environment import TEST_ISSUER, TEST_SECRETS_KEY

ACCESS_TTL = 300


@pytest.fixture
def make_instance(database_url: str, clock: FrozenClock) -> Iterator[Callable[..., Services]]:
    """Services of one instance on the test's database (SQLite or PostgreSQL)."""
    built: list[Services] = []

    def make(**overrides: Any) -> Services:
        values: dict[str, Any] = {
            "database_url": database_url,
            "issuer": TEST_ISSUER,
            "secrets_key": TEST_SECRETS_KEY,
            "argon2_memory_kib": 1024,
            "argon2_time_cost": 1,
            "access_ttl_seconds": ACCESS_TTL,
            "key_rotation_days": 90,
        }
        values.update(overrides)
        services = build_services(Settings(_env_file=None, **values), clock=clock)  # type: ignore[call-arg]
        services.keyring.ensure_signing_key()
        built.append(services)
        return services

    yield make
    for services in built:
        services.database.dispose()
        services.password_hashing.close()


def published(services: Services) -> set[str]:
    return {key["kid"] for key in services.keyring.jwks()["keys"]}


def test_a_key_younger_than_the_schedule_stays(make_instance, clock: FrozenClock) -> None:
    services = make_instance()
    clock.advance(days=89, seconds=86399)

    assert services.upkeep.rotate_keys_if_due() is None
    assert len(services.keyring.key_states()) == 1


def test_without_a_schedule_keys_never_rotate(make_instance, clock: FrozenClock) -> None:
    services = make_instance(key_rotation_days=0)
    clock.advance(days=3650)

    assert services.upkeep.rotate_keys_if_due() is None
    assert len(services.keyring.key_states()) == 1


def test_a_due_key_is_replaced_published_first_and_retired_after_its_tokens(
    make_instance, clock: FrozenClock
) -> None:
    """The successor is in the JWKS before it signs; the old key signs until then and
    stays published until the last token it signed has expired, then leaves."""
    services = make_instance()
    old = services.keyring.signing_key().kid
    clock.advance(days=90)

    new = services.upkeep.rotate_keys_if_due()

    assert new is not None and new != old
    assert published(services) == {old, new}
    assert services.keyring.signing_key().kid == old
    clock.advance(seconds=KEY_ACTIVATION_DELAY.total_seconds())
    assert services.keyring.signing_key().kid == new
    assert published(services) == {old, new}
    clock.advance(seconds=ACCESS_TTL + 30)
    assert published(services) == {new}
    assert services.upkeep.rotate_keys_if_due() is None  # the new key is not due for 90 days
    clock.advance(days=90)
    assert services.upkeep.rotate_keys_if_due() not in (None, new)


def test_another_instance_picks_up_the_scheduled_key(make_instance, clock: FrozenClock) -> None:
    first, second = make_instance(), make_instance()
    clock.advance(days=90)

    new = first.upkeep.rotate_keys_if_due()
    second.keyring.reload()  # as its upkeep does every few polls

    assert new in published(second)
    clock.advance(seconds=KEY_ACTIVATION_DELAY.total_seconds())
    assert second.keyring.signing_key().kid == new


def test_instances_rotating_together_rotate_once(make_instance, clock: FrozenClock) -> None:
    """Every instance's upkeep finds the key due at the same moment; one new key results."""
    instances = [make_instance() for _ in range(4)]
    clock.advance(days=90)
    start = threading.Barrier(len(instances))
    results: list[str | None] = []

    def rotate(services: Services) -> None:
        start.wait()
        results.append(services.upkeep.rotate_keys_if_due())

    threads = [threading.Thread(target=rotate, args=(services,)) for services in instances]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    winners = [kid for kid in results if kid is not None]
    assert len(results) == len(instances) and len(winners) == 1
    states = instances[0].keyring.key_states()
    assert [state.kid for state in states if state.state == "next"] == winners
    assert len(states) == 2
