"""SQLite's write-ahead log is checkpointed by upkeep, off the path of every commit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import text

from keyturn.config import Settings
from keyturn.services import upkeep
from keyturn.services.container import build_services
from keyturn.storage.db import Database
from keyturn.storage.migrations import upgrade_database

PAGE = 4096


def write_pages(database: Database, *, transactions: int, rows: int) -> None:
    with database.transaction() as connection:
        connection.execute(text("CREATE TABLE filler (n INTEGER PRIMARY KEY, data BLOB)"))
    for batch in range(transactions):
        with database.transaction() as connection:
            connection.execute(
                text("INSERT INTO filler (n, data) VALUES (:n, randomblob(:size))"),
                [{"n": batch * rows + row, "size": PAGE} for row in range(rows)],
            )


@pytest.mark.parametrize("in_background", [True, False])
def test_commits_checkpoint_only_when_not_left_to_upkeep(tmp_path: Path, in_background) -> None:
    """In background mode no commit copies the log (its fsync would stall the commit and every
    refresh grouped behind it); upkeep's checkpoint() copies all of it, without blocking."""
    database = Database(f"sqlite:///{tmp_path}/log.db", checkpoint_in_background=in_background)
    try:
        write_pages(database, transactions=30, rows=100)  # about 3,000 pages of log

        copied = database.checkpoint()

        if in_background:
            assert copied >= 3000
        else:  # SQLite checkpointed (and restarted the log) every 1,000 pages by itself
            assert copied < 1500
    finally:
        database.dispose()


def test_postgresql_has_nothing_to_checkpoint() -> None:
    database = Database("postgresql://postgres@127.0.0.1:1/unused", checkpoint_in_background=True)
    try:
        assert not database.checkpoint_in_background
        assert database.checkpoint() == 0
    finally:
        database.dispose()


async def test_a_running_server_checkpoints_its_log(tmp_path: Path, monkeypatch) -> None:
    """Upkeep copies the log into the database file by itself, about once a second."""
    monkeypatch.setattr(upkeep, "CHECKPOINT_EVERY_SECONDS", 0.05)
    settings = Settings(  # type: ignore[call-arg]
        _env_file=None, database_url=f"sqlite:///{tmp_path}/served.db", issuer="http://k.test"
    )
    services = build_services(settings)
    upgrade_database(services.database)
    services.keyring.ensure_signing_key()
    await services.start()
    try:
        database_file = tmp_path / "served.db"
        before = database_file.stat().st_size
        write_pages(services.database, transactions=3, rows=100)  # 300 pages, in the log
        # The pages reach the database file itself only through a checkpoint.
        for _ in range(100):
            if database_file.stat().st_size >= before + 300 * PAGE:
                break
            await asyncio.sleep(0.05)
        assert database_file.stat().st_size >= before + 300 * PAGE
    finally:
        await services.stop()
