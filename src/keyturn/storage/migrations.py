"""Schema migrations (Alembic), applied under a lock so parallel starts do not race."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterator
from importlib import resources
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection, make_url

from keyturn.storage.db import SQLITE_FILE_MODE, SQLITE_FOLDER_MODE, Database

_PG_MIGRATION_LOCK = 0x6B657974  # an arbitrary application-wide advisory lock id


def _alembic_config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option(
        "script_location", str(resources.files("keyturn.storage").joinpath("migrations"))
    )
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str | None:
    return ScriptDirectory.from_config(_alembic_config()).get_current_head()


def current_revision(database: Database) -> str | None:
    with database.snapshot() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def upgrade_database(database: Database) -> None:
    """Bring the schema to the newest revision; a no-op when it is there already."""
    with _migration_lock(database), database.engine.begin() as connection:
        command.upgrade(_alembic_config(connection), "head")


@contextlib.contextmanager
def _migration_lock(database: Database) -> Iterator[None]:
    if database.is_sqlite:
        path = make_url(database.url).database or ""
        if not path or path == ":memory:":
            yield
            return
        lock_path = Path(path + ".migrate-lock")
        lock_path.parent.mkdir(mode=SQLITE_FOLDER_MODE, parents=True, exist_ok=True)
        # Owner-only like the database beside it; it holds nothing, but says who runs Keyturn.
        descriptor = os.open(lock_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, SQLITE_FILE_MODE)
        with os.fdopen(descriptor, "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
        return
    with database.engine.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({_PG_MIGRATION_LOCK})")
        connection.commit()
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({_PG_MIGRATION_LOCK})")
            connection.commit()
