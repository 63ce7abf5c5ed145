"""The database handle: engine set-up per backend, transactions, outage translation."""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any, cast

from sqlalchemy import Engine, create_engine, event, exc
from sqlalchemy.engine import Connection, Dialect, make_url
from sqlalchemy.sql.expression import Executable

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


SQLITE_FILE_MODE = 0o600
SQLITE_FOLDER_MODE = 0o700


def prepare_sqlite_file(path: Path) -> None:
    """Create the database file owner-only (0600), in an owner-only folder (0700) when the
    folder is new: it holds password hashes and sealed secrets, and other users of a shared
    host must not read them. An existing file, and its -wal and -shm files (SQLite creates
    those with the database file's mode), are narrowed to 0600 too; an existing folder is
    the operator's and keeps its mode."""
    if not path.parent.exists():
        # mkdir's mode passes through the umask, which only ever removes bits.
        path.parent.mkdir(mode=SQLITE_FOLDER_MODE, parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, SQLITE_FILE_MODE))
    for file in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if file.stat().st_mode & 0o777 != SQLITE_FILE_MODE:
                file.chmod(SQLITE_FILE_MODE)


class Database:
    """One engine; write transactions are serialized up front on SQLite (BEGIN IMMEDIATE).

    With `checkpoint_in_background`, SQLite's write-ahead log is copied into the database file
    only when `checkpoint()` is called (the server's upkeep does, every second), never by a
    committing transaction: a checkpoint ends with an fsync, which on a busy disk takes
    hundreds of milliseconds, and the commit that triggered it, with every refresh grouped
    behind it, would wait that long.
    """

    def __init__(
        self, url: str, *, pool_size: int = 10, checkpoint_in_background: bool = False
    ) -> None:
        self.url = normalize_database_url(url)
        parsed = make_url(self.url)
        self.is_sqlite = parsed.get_backend_name() == "sqlite"
        self.checkpoint_in_background = self.is_sqlite and checkpoint_in_background
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
                prepare_sqlite_file(Path(parsed.database))
            self.engine = create_engine(
                self.url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=2 * pool_size,
                pool_timeout=30,
                # The connection used last has the warmest page cache: in WAL mode a
                # connection keeps its cache only while no other connection has written.
                pool_use_lifo=True,
            )
            _configure_sqlite(self.engine, automatic_checkpoints=not checkpoint_in_background)
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

    def checkpoint(self) -> int:
        """SQLite: copy the write-ahead log into the database file; returns the log's frames
        now in the file. PASSIVE: it neither waits for nor blocks readers and writers.
        Nothing to do elsewhere (0)."""
        if not self.is_sqlite:
            return 0
        with self._translate_outages(), self.engine.connect() as connection:
            _busy, _log, copied = (
                _driver(connection).execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
            )
        return int(copied)

    def ping(self) -> None:
        with self.snapshot() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()


def _configure_sqlite(engine: Engine, *, automatic_checkpoints: bool) -> None:
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
        # Pages are read from a mapping of the file rather than by a read() each: the
        # refresh path reads a handful of index pages per request. Mapped pages count in the
        # resident set, so the map is bounded at 64 MiB.
        cursor.execute("PRAGMA mmap_size=67108864")
        if not automatic_checkpoints:
            cursor.execute("PRAGMA wal_autocheckpoint=0")
        # After a checkpoint the log starts over from its beginning; a file grown past this
        # (a burst of writes) is cut back to it.
        cursor.execute("PRAGMA journal_size_limit=67108864")
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


class Prepared:
    """A statement of a hot path: compiled once and run on the driver's own connection.

    SQLAlchemy's work around each execution (cache key, execution context, result object)
    costs several times what SQLite spends on a lookup by key, and on PostgreSQL more than
    psycopg's own work for the statement. The conversions that matter (UTC datetimes,
    booleans, bytes) still come from the column types' own processors, and the driver's
    errors reach the caller wrapped as SQLAlchemy would wrap them, so outages are told apart
    the same way. Drivers other than sqlite3 and psycopg take `connection.execute`.
    """

    def __init__(self, statement: Executable) -> None:
        self.statement = statement
        self._plans: dict[str, _Plan | None] = {}

    def first(self, connection: Connection, params: Mapping[str, Any]) -> Mapping[Any, Any] | None:
        """The first row as a mapping of column keys, or None."""
        plan = self._plan(connection.dialect)
        if plan is None:
            row: Mapping[Any, Any] | None = (
                connection.execute(self.statement, params).mappings().first()
            )
            return row
        cursor = plan.execute(connection, params)
        found = cursor.fetchone()
        cursor.close()
        if found is None:
            return None
        return {
            key: value if process is None else process(value)
            for (key, process), value in zip(plan.columns, found, strict=True)
        }

    def run(self, connection: Connection, params: Mapping[str, Any]) -> int:
        """Execute a write; the number of rows it touched."""
        plan = self._plan(connection.dialect)
        if plan is None:
            return int(connection.execute(self.statement, params).rowcount)
        cursor = plan.execute(connection, params)
        count = int(cursor.rowcount)
        cursor.close()
        return count

    def _plan(self, dialect: Dialect) -> _Plan | None:
        try:
            return self._plans[dialect.driver]
        except KeyError:
            plan = _Plan.of(self.statement, dialect) if dialect.driver in _DIRECT else None
            self._plans[dialect.driver] = plan
            return plan


# The drivers whose connections Prepared drives itself: sqlite3 (qmark) and psycopg 3
# (pyformat), both with an execute() on the connection that returns a cursor.
_DIRECT = frozenset({"pysqlite", "psycopg"})

_Processor = Callable[[Any], Any] | None


class _Plan:
    """A statement compiled for one dialect: its SQL, how to bind its parameters, and how
    to read its columns."""

    def __init__(
        self,
        *,
        sql: str,
        binds: list[tuple[str, _Processor]],
        positional: bool,
        columns: list[tuple[str, _Processor]],
        dialect: Dialect,
    ) -> None:
        self.sql = sql
        self.binds = binds
        self.positional = positional
        self.columns = columns
        self.dialect = dialect
        self.driver_error: type[Exception] = dialect.loaded_dbapi.Error

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> _Plan:
        compiled: Any = cast(Any, statement).compile(dialect=dialect)
        names = compiled.positiontup if dialect.positional else list(compiled.binds)
        binds = [
            (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect))
            for name in names
        ]
        selected = getattr(statement, "selected_columns", ())
        columns = [
            (column.key, column.type.dialect_impl(dialect).result_processor(dialect, None))
            for column in selected
        ]
        return cls(
            sql=compiled.string,
            binds=binds,
            positional=dialect.positional,
            columns=columns,
            dialect=dialect,
        )

    def execute(self, connection: Connection, params: Mapping[str, Any]) -> Any:
        values: list[Any] | dict[str, Any]
        if self.positional:
            values = [
                params[name] if process is None else process(params[name])
                for name, process in self.binds
            ]
        else:
            values = {
                name: params[name] if process is None else process(params[name])
                for name, process in self.binds
            }
        try:
            return _driver(connection).execute(self.sql, values)
        except self.driver_error as error:
            raise exc.DBAPIError.instance(
                self.sql, values, error, self.driver_error, dialect=self.dialect
            ) from error


def _driver(connection: Connection) -> Any:
    return connection.connection.driver_connection
