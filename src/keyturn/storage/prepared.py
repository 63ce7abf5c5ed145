"""The prepared-statement fast path: hot statements compiled once and run on the driver.

This is the one module of Keyturn that leans on SQLAlchemy's internals: the compiled
statement's `positiontup` and `binds`, the column types' bind and result processors for a
dialect, `dialect.loaded_dbapi`, `DBAPIError.instance` and the driver's own connection. An
upgrade of SQLAlchemy that changes any of them fails tests/storage/test_sqlalchemy_internals.py
loudly, before a refresh can read a wrong value.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, cast

from sqlalchemy import exc
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.sql.expression import Executable


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
