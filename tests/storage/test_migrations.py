"""Migrations build exactly the schema the code describes, on SQLite and PostgreSQL."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from keyturn.storage.db import Database
from keyturn.storage.migrations import current_revision, head_revision, upgrade_database
from keyturn.storage.models import metadata


def test_migrated_schema_matches_the_models(database_url: str) -> None:
    database = Database(database_url)
    try:
        upgrade_database(database)  # a second run is a no-op
        assert current_revision(database) == head_revision()
        with database.engine.connect() as connection:
            differences = compare_metadata(MigrationContext.configure(connection), metadata)
        assert differences == []
    finally:
        database.dispose()


def test_migrations_apply_to_an_empty_database(tmp_path) -> None:
    database = Database(f"sqlite:///{tmp_path}/nested/dir/fresh.db")
    try:
        assert current_revision(database) is None
        upgrade_database(database)
        assert current_revision(database) == head_revision()
    finally:
        database.dispose()
