"""Shared fixtures: settings, a frozen clock, fresh databases (SQLite or PostgreSQL), the API.

A test that needs PostgreSQL, Redis or Chromium skips with the reason when the service is
missing locally, and fails instead under CI=true, where every service must be there.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from keyturn.clock import FrozenClock
from keyturn.config import Settings
from keyturn.http.app import create_app
from keyturn.storage.db import Database, normalize_database_url
from keyturn.storage.migrations import upgrade_database
from keyturn.storage.models import metadata
from tests.support.environment import (
    POSTGRES_ADMIN_URL,
    REDIS_TEST_URL,
    TEST_CLIENT_ADDRESS,
    TEST_ISSUER,
    TEST_SECRETS_KEY,
    ApiFactory,
    RedisDatabase,
    SettingsFactory,
    missing_service,
)
from tests.support.oidc import OidcProvider, missing_tools


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """No KEYTURN_* variable of the developer's shell leaks into a test."""
    for name in list(os.environ):
        if name.startswith("KEYTURN_") and not name.startswith("KEYTURN_TEST_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _own_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test runs in its own directory: without KEYTURN_SMTP_URL an app writes every mail
    it sends (registration sends one) as a file under ./.keyturn/mail/, never the checkout's."""
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock()


# Databases ------------------------------------------------------------------------------------


class PostgresDatabases:
    """This run's PostgreSQL databases, made from a migrated template and dropped at the end.

    A test gets a database no other test is using, migrated and empty. When it ends, its
    database is emptied (every row deleted, every sequence restarted) and handed to the next
    test: CREATE and DROP DATABASE each cost a checkpoint, a second or more on a busy machine,
    against a few milliseconds for the DELETEs (TRUNCATE makes new files: ten times slower
    on these small tables). A database whose schema a test changed, or that something else
    is still connected to, is dropped instead."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = normalize_database_url(admin_url)
        self.engine = create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.prefix = f"keyturn_test_{secrets.token_hex(4)}"
        self.template = f"{self.prefix}_template"
        self.created: list[str] = []
        self.free: list[str] = []
        self.revision = ""
        # Children before parents, so that no foreign key stops a DELETE.
        self.tables = list(reversed(metadata.sorted_tables))

    def url_of(self, name: str) -> str:
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def create_template(self) -> None:
        with self.engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{self.template}"'))
        self.created.append(self.template)
        database = Database(self.url_of(self.template))
        upgrade_database(database)
        database.dispose()
        self.revision = self._revision_of(self.url_of(self.template))

    def new(self, *, migrated: bool = True) -> str:
        if migrated and self.free:
            return self.url_of(self.free.pop())
        name = f"{self.prefix}_{len(self.created)}"
        template = f' TEMPLATE "{self.template}"' if migrated else ""
        with self.engine.connect() as connection:
            connection.execute(text(f'CREATE DATABASE "{name}"{template}'))
        self.created.append(name)
        return self.url_of(name)

    def release(self, url: str) -> None:
        """Empty the database for the next test, or drop it when that is not safe."""
        try:
            emptied = self._empty(url)
        except SQLAlchemyError:
            emptied = False
        if emptied:
            self.free.append(str(make_url(url).database))
        else:
            self.drop(url)

    def _revision_of(self, url: str) -> str:
        engine = create_engine(url)
        try:
            with engine.connect() as connection:
                revision = connection.execute(text("SELECT version_num FROM alembic_version"))
                return str(revision.scalar_one())
        finally:
            engine.dispose()

    def _empty(self, url: str) -> bool:
        """Delete every row and restart every sequence, when the schema is the template's and
        nothing else is connected (a server still running could write again after it)."""
        engine = create_engine(url)
        try:
            with engine.begin() as connection:
                revision = connection.execute(text("SELECT version_num FROM alembic_version"))
                tables = connection.execute(
                    text("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'")
                )
                others = connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                if (
                    revision.scalar_one_or_none() != self.revision
                    or tables.scalar_one() != len(self.tables) + 1  # and alembic_version
                    or others.scalar_one()
                ):
                    return False
                connection.execute(text("SET LOCAL lock_timeout = '2s'"))
                for table in self.tables:
                    connection.execute(table.delete())
                sequences = connection.execute(
                    text("SELECT sequencename FROM pg_sequences WHERE schemaname = 'public'")
                )
                for (sequence,) in sequences.all():
                    connection.execute(text(f'ALTER SEQUENCE "{sequence}" RESTART'))
                return True
        finally:
            engine.dispose()

    def drop(self, url: str) -> None:
        name = make_url(url).database
        with self.engine.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.created.remove(name)

    def drop_all(self) -> None:
        with self.engine.connect() as connection:
            for name in reversed(self.created):
                connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.engine.dispose()


@pytest.fixture(scope="session")
def postgres_databases() -> Iterator[PostgresDatabases | None]:
    databases = PostgresDatabases(POSTGRES_ADMIN_URL)
    try:
        with databases.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except Exception:
        databases.engine.dispose()
        yield None
        return
    databases.create_template()
    yield databases
    databases.drop_all()


@pytest.fixture
def postgres_url(postgres_databases: PostgresDatabases | None) -> Iterator[str]:
    """A migrated, empty PostgreSQL database that only this test uses."""
    if postgres_databases is None:
        missing_service(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}")
    assert postgres_databases is not None
    url = postgres_databases.new()
    yield url
    postgres_databases.release(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "keyturn.db"
    database = Database(f"sqlite:///{path}")
    upgrade_database(database)
    database.dispose()
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    """A fresh, migrated SQLite file for this test."""
    path = tmp_path / "keyturn.db"
    shutil.copyfile(sqlite_template, path)
    return f"sqlite:///{path}"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Each test using this runs once on SQLite and once on PostgreSQL."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    url: str = request.getfixturevalue(fixture)
    return url


# Redis ----------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def redis_databases() -> Iterator[RedisDatabase | None]:
    try:
        database = RedisDatabase(REDIS_TEST_URL)
    except Exception:
        yield None
        return
    yield database
    database.release()


@pytest.fixture
def redis_database(redis_databases: RedisDatabase | None) -> Iterator[RedisDatabase]:
    """This run's logical Redis database, empty of Keyturn keys before and after the test."""
    if redis_databases is None:
        missing_service(f"Redis is not reachable at {REDIS_TEST_URL}")
    assert redis_databases is not None
    redis_databases.delete_keyturn_keys()
    yield redis_databases
    redis_databases.delete_keyturn_keys()


@pytest.fixture
def redis_url(redis_database: RedisDatabase) -> str:
    """A redis:// URL of this run's own logical database."""
    return redis_database.url


# Settings and the API -------------------------------------------------------------------------


@pytest.fixture
def make_settings(database_url: str) -> SettingsFactory:
    """Settings for tests: the test's database, light Argon2 parameters, a fixed issuer."""

    def make(**overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "database_url": database_url,
            "issuer": TEST_ISSUER,
            "argon2_memory_kib": 1024,
            "argon2_time_cost": 1,
            "revocation_poll_seconds": 0.1,
            # Set, so that apps do not depend on the directory a test runs in (the generated
            # development key lives under the working directory).
            "secrets_key": TEST_SECRETS_KEY,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)  # type: ignore[call-arg]

    return make


@pytest.fixture
async def make_api(make_settings: SettingsFactory, clock: FrozenClock) -> AsyncIterator[ApiFactory]:
    """Start an app on the test's database and return an httpx client bound to it.

    Several calls give several apps on the same database: two instances of one deployment.
    """
    async with contextlib.AsyncExitStack() as stack:

        async def make(**overrides: Any) -> httpx.AsyncClient:
            app = create_app(make_settings(**overrides), clock=clock)
            await stack.enter_async_context(app.router.lifespan_context(app))
            transport = httpx.ASGITransport(app=app, client=TEST_CLIENT_ADDRESS)
            client = httpx.AsyncClient(transport=transport, base_url=TEST_ISSUER)
            await stack.enter_async_context(client)
            client.app = app  # type: ignore[attr-defined]
            return client

        yield make


@pytest.fixture
async def api(make_api: ApiFactory) -> httpx.AsyncClient:
    client: httpx.AsyncClient = await make_api()
    return client


# A real OpenID Connect provider --------------------------------------------------------------


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcProvider]:
    """oidc-provider (npm) under Node, for the whole run; skipped without Node locally."""
    reason = missing_tools()
    if reason is not None:
        missing_service(reason)
    provider = OidcProvider().start()
    yield provider
    provider.stop()
