"""Which database failures are outages (503 `service_unavailable`) and which are the caller's."""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Iterator

from sqlalchemy import exc

from keyturn.errors import InvalidRequestError, ServiceUnavailableError

# sqlite3.OperationalError: BEGIN on SQLite is sent on the raw connection (see storage/db.py),
# so "database is locked" past the busy timeout arrives unwrapped.
_OUTAGES = (exc.OperationalError, exc.InterfaceError, exc.TimeoutError, sqlite3.OperationalError)


@contextlib.contextmanager
def translate_outages() -> Iterator[None]:
    """Raise ServiceUnavailableError for a database out of reach, InvalidRequestError for a
    value it cannot store; anything else passes unchanged."""
    try:
        yield
    except _OUTAGES as error:
        raise ServiceUnavailableError("The database is unavailable; try again shortly.") from error
    except exc.DataError as error:
        # Input validation should have caught it; a value the database cannot store is
        # still the caller's mistake, not a server failure.
        raise InvalidRequestError("The request holds a value that cannot be stored.") from error
