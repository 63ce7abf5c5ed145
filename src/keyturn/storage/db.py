"""The database handle: engine set-up per backend, and its transactions.

Outages are told apart in storage/outages.py; the statements of hot paths skip SQLAlchemy's
execution layer through storage/prepared.py."""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection, make_url

from keyturn.storage.outages import translate_outages

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
            translate_outages(),
            self.engine.connect() as connection,
        ):
            connection = connection.execution_options(**{_WRITE_OPTION: True})
            with connection.begin():
                yield connection

    @contextlib.contextmanager
    def snapshot(self) -> Iterator[Connection]:
        """A read-only transaction."""
        with translate_outages(), self.engine.connect() as connection, connection.begin():
            yield connection

    def checkpoint(self) -> int:
        """SQLite: copy the write-ahead log into the database file; returns the log's frames
        now in the file. PASSIVE: it neither waits for nor blocks readers and writers.
        Nothing to do elsewhere (0)."""
        if not self.is_sqlite:
            return 0
        with translate_outages(), self.engine.connect() as connection:
            raw: Any = connection.connection.driver_connection
            _busy, _log, copied = raw.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
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
