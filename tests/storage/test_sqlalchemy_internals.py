"""The SQLAlchemy internals storage/prepared.py leans on still behave as it expects.

The prepared fast path compiles hot statements once and runs them on the driver's own
connection, reading SQLAlchemy's compiled form and type processors directly. None of that is
a promise of SQLAlchemy's public API: when an upgrade changes it, these tests fail with the
name of what changed, before a refresh reads a wrong value or an outage is mistaken for a bug.
"""

from __future__ import annotations

import inspect
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import Boolean, LargeBinary, bindparam, exc, insert, select
from sqlalchemy.engine import Connection
from sqlalchemy.sql.compiler import SQLCompiler

from keyturn.storage import prepared
from keyturn.storage import refresh_tokens as refresh_token_store
from keyturn.storage.db import Database
from keyturn.storage.models import UTCDateTime, refresh_tokens, sessions

WHEN = datetime(2026, 12, 2, 9, 30, 15, 250_000, tzinfo=UTC)


@pytest.fixture
def connection(database_url: str) -> Iterator[Connection]:
    database = Database(database_url)
    try:
        with database.snapshot() as connection:
            yield connection
    finally:
        database.dispose()


def test_our_drivers_are_the_ones_the_fast_path_drives(connection: Connection) -> None:
    """`dialect.driver` names sqlite3 and psycopg as prepared.py's `_DIRECT` expects; a new
    name would silently send every hot statement through SQLAlchemy's slow path."""
    assert connection.dialect.driver in prepared._DIRECT


def test_the_compiled_form_names_every_bind_in_order(connection: Connection) -> None:
    """`compiled.positiontup` (qmark) or `compiled.binds` (pyformat) lists each bind name,
    and `compiled.string` is the SQL the driver runs."""
    dialect = connection.dialect
    statement = select(sessions.c.id).where(
        sessions.c.id == bindparam("session_id"), sessions.c.ended_at > bindparam("now")
    )
    compiled = statement.compile(dialect=dialect)

    assert isinstance(compiled, SQLCompiler)
    assert isinstance(compiled.string, str) and "sessions" in compiled.string
    assert set(compiled.binds) >= {"session_id", "now"}
    if dialect.positional:
        assert compiled.positiontup == ["session_id", "now"]
    assert compiled.binds["now"].type.__class__ is UTCDateTime


def test_type_processors_convert_as_the_fast_path_applies_them(connection: Connection) -> None:
    """`dialect_impl(dialect).bind_processor(dialect)` and `.result_processor(dialect, None)`
    still exist, and a value bound and read back through them on the driver's connection is
    the value we gave: UTC datetimes stay aware, booleans stay booleans, bytes stay bytes."""
    dialect = connection.dialect
    for column_type, value in (
        (UTCDateTime(), WHEN),
        (Boolean(), True),
        (LargeBinary(), b"sealed"),
    ):
        impl = column_type.dialect_impl(dialect)
        assert callable(getattr(impl, "bind_processor", None)), column_type
        assert callable(getattr(impl, "result_processor", None)), column_type
        statement = select(bindparam("value", type_=column_type).label("v"))
        plan = prepared._Plan.of(statement, dialect)
        cursor = plan.execute(connection, {"value": value})
        (raw,) = cursor.fetchone()
        cursor.close()
        ((_key, process),) = plan.columns
        assert (raw if process is None else process(raw)) == value, column_type


def test_a_plan_reads_the_selected_columns_by_key(connection: Connection) -> None:
    """`selected_columns` of a select gives each column's key, in the order the driver
    returns them; a write statement has none."""
    plan = prepared._Plan.of(
        refresh_token_store._FIND_REFRESH_TOKEN_WITH_USER.statement, connection.dialect
    )
    keys = [key for key, _process in plan.columns]
    assert "token_expires_at" in keys and "remember_me" in keys
    assert len(keys) == len(set(keys))

    write = prepared._Plan.of(
        insert(refresh_tokens).values(session_id=bindparam("session_id")), connection.dialect
    )
    assert write.columns == []
    assert [name for name, _process in write.binds] == ["session_id"]


def test_the_driver_connection_runs_sql_and_returns_a_cursor(connection: Connection) -> None:
    """`connection.connection.driver_connection.execute(sql, values)` returns a cursor with
    fetchone(), rowcount and close(), as prepared.py and the SQLite BEGIN hook use it."""
    plan = prepared._Plan.of(
        select(sessions.c.id).where(sessions.c.id == bindparam("sid")), connection.dialect
    )
    cursor = plan.execute(connection, {"sid": "no such session"})
    assert cursor.fetchone() is None
    assert isinstance(cursor.rowcount, int)
    cursor.close()


def test_driver_errors_are_wrapped_as_sqlalchemy_wraps_them(connection: Connection) -> None:
    """`dialect.loaded_dbapi.Error` is the driver's base error, and `DBAPIError.instance`
    still takes (statement, params, orig, dbapi_base_err, dialect=) and picks the subclass
    (OperationalError for an outage) that storage/outages.py tells apart."""
    dialect = connection.dialect
    driver_error = dialect.loaded_dbapi.Error
    assert issubclass(driver_error, Exception)
    parameters = inspect.signature(exc.DBAPIError.instance).parameters
    assert list(parameters)[:4] == ["statement", "params", "orig", "dbapi_base_err"]
    assert "dialect" in parameters

    operational = dialect.loaded_dbapi.OperationalError("the server went away")
    wrapped = exc.DBAPIError.instance("SELECT 1", [], operational, driver_error, dialect=dialect)
    assert isinstance(wrapped, exc.OperationalError)
    assert wrapped.orig is operational
