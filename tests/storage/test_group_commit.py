"""Group commit: concurrent write steps share a transaction, and one fault fails one step."""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Iterator

import pytest
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from keyturn.errors import ServiceUnavailableError
from keyturn.storage.db import Database
from keyturn.storage.group_commit import GroupCommit


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    with database.transaction() as connection:
        connection.execute(text("CREATE TABLE grouped_items (name VARCHAR(32) PRIMARY KEY)"))
    yield database
    database.dispose()


def names(database: Database) -> list[str]:
    with database.snapshot() as connection:
        rows = connection.execute(text("SELECT name FROM grouped_items ORDER BY name"))
        return [row.name for row in rows]


def insert(connection: Connection, name: str) -> str:
    connection.execute(text("INSERT INTO grouped_items (name) VALUES (:name)"), {"name": name})
    return f"wrote {name}"


def step(name: str):
    return functools.partial(insert, name=name)


async def test_steps_that_arrive_together_share_one_transaction(database: Database) -> None:
    """Twenty concurrent steps are written by one transaction, and each gets its own result."""
    group = GroupCommit(database.transaction)

    results = await asyncio.gather(*(group.run(step(f"item-{n:02}")) for n in range(20)))

    assert results == [f"wrote item-{n:02}" for n in range(20)]
    assert names(database) == [f"item-{n:02}" for n in range(20)]
    assert group.groups_written == 1


async def test_a_lone_step_is_written_at_once(database: Database) -> None:
    """With nothing else in flight a step is its own group: no waiting for company."""
    group = GroupCommit(database.transaction)

    assert await group.run(step("alone")) == "wrote alone"
    assert await group.run(step("later")) == "wrote later"

    assert names(database) == ["alone", "later"]
    assert group.groups_written == 2


async def test_a_failing_step_fails_alone_and_the_others_are_written(database: Database) -> None:
    """A step that raises rolls its group back; the others are written again, one by one."""
    group = GroupCommit(database.transaction)

    results = await asyncio.gather(
        group.run(step("first")),
        group.run(step("first")),  # the same key: this one cannot be written
        group.run(step("second")),
        return_exceptions=True,
    )

    assert results[0] == "wrote first"
    assert isinstance(results[1], IntegrityError)
    assert results[2] == "wrote second"
    assert names(database) == ["first", "second"]


async def test_an_outage_fails_every_step_of_the_group_with_503() -> None:
    """When the database cannot be reached, every waiting caller hears 503 at once."""
    unreachable = Database("postgresql://postgres@127.0.0.1:1/keyturn")
    group = GroupCommit(unreachable.transaction)
    try:
        results = await asyncio.gather(
            *(group.run(step(f"item-{n}")) for n in range(3)),
            return_exceptions=True,
        )
    finally:
        unreachable.dispose()

    assert all(isinstance(result, ServiceUnavailableError) for result in results)
    assert group.groups_written == 0
