"""The database handle: engine set-up per backend, transactions, outage translation."""

from __future__ import annotations

import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import Connection, make_url

from keyturn.errors import InvalidRequestError, ServiceUnavailableError

# sqlite3.OperationalError: BEGIN on SQLite is sent on the raw connection (see _on_begin),
# so "database is locked" past the busy timeout arrives unwrapped.
_OUTAGES = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, sqlite3.OperationalError)
_WRITE_OPTION = "keyturn_write"


def normalize_database_url(url: str) -> str:
    """Accept the contract's postgresql:// form and pick the psycopg 3 driver."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Database:
    """One engine; write transactions are serialized up front on SQLite (BEGIN IMMEDIATE)."""

    def __init__(self, url: str, *, pool_size: int = 10) -> None:
        self.url = normalize_database_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.engine: Engine
        # SQLite has one writer at a time. Threads of this process queue here, and each is
        # woken the moment the lock is free; left to SQLite's busy handler they would sleep
        # and poll with back-off (up to 100 ms a try) while the lock sits idle. Other
        # processes (workers) still meet at BEGIN IMMEDIATE.
        self._write_lock: contextlib.AbstractContextManager[object] = (
            threading.Lock() if self.is_sqlite else contextlib.nullcontext()
        )
        if self.is_sqlite:
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            self.engine = create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=2 * pool_size,
                pool_timeout=30,
            )
            _configure_sqlite(self.engine)
        else:
            self.engine = create_engine(
                self.url,
                pool_size=pool_size,
                max_overflow=2 * pool_size,
                pool_timeout=10,
                pool_pre_ping=True,
                connect_args={"connect_timeout": 5},
            )

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A read-write transaction, committed when the block ends without an exception."""
        with (
            self._write_lock,
            self._translate_outages(),
            self.engine.connect() as connection,
        ):
            connection = connection.execution_options(**{_WRITE_OPTION: True})
            with connection.begin():
                yield connection

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction."""
        with self._translate_outages(), self.engine.connect() as connection, connection.begin():
            yield connection

    @contextlib.contextmanager
    def _translate_outages(self) -> Iterator[None]:
        try:
            yield
        except _OUTAGES as error:
            raise ServiceUnavailableError(
                "The database is unavailable; try again shortly."
            ) from error
        except exc.DataError as error:
            # Input validation should have caught it; a value the database cannot store is
            # still the caller's mistake, not a server failure.
            raise InvalidRequestError("The request holds a value that cannot be stored.") from error

    def ping(self) -> None:
        with self.snapshot() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from the sqlite3 module so BEGIN is ours to emit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a commit survives a crash of the process (kill -9), fsync at checkpoints.
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Connection) -> None:
        # A deferred transaction that reads, then writes, fails at once with SQLITE_BUSY when
        # another writer got in between; taking the write lock first makes writers queue.
        # On the driver's connection: through exec_driver_sql this statement cost as much as
        # a query, on every transaction.
        raw: Any = connection.connection.driver_connection
        if connection.get_execution_options().get(_WRITE_OPTION):
            raw.execute("BEGIN IMMEDIATE")
        else:
            raw.execute("BEGIN")
