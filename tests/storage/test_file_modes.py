"""The SQLite database holds password hashes and sealed secrets: owner-only on disk."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest

from keyturn.storage.db import Database
from keyturn.storage.migrations import upgrade_database


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common umask (022), under which files are created world-readable by default."""
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_new_database_file_and_folder_are_owner_only(tmp_path: Path, usual_umask: None) -> None:
    """A new database: its folder 0700; the file and its -wal and -shm files 0600."""
    path = tmp_path / "data" / "keyturn.db"
    database = Database(f"sqlite:///{path}")
    try:
        upgrade_database(database)
        with database.snapshot() as connection:  # a connection holds the -wal and -shm open
            connection.exec_driver_sql("SELECT 1")
            assert mode_of(path.parent) == 0o700
            for name in (
                "keyturn.db",
                "keyturn.db-wal",
                "keyturn.db-shm",
                "keyturn.db.migrate-lock",
            ):
                assert mode_of(path.parent / name) == 0o600, name
    finally:
        database.dispose()


def test_existing_readable_database_file_is_narrowed(tmp_path: Path, usual_umask: None) -> None:
    """A file created world-readable by an earlier version becomes owner-only when opened."""
    path = tmp_path / "keyturn.db"
    first = Database(f"sqlite:///{path}")
    upgrade_database(first)
    first.dispose()
    for file in tmp_path.iterdir():
        file.chmod(0o644)

    database = Database(f"sqlite:///{path}")
    try:
        with database.snapshot() as connection:
            connection.exec_driver_sql("SELECT 1")
        assert mode_of(path) == 0o600
    finally:
        database.dispose()
