"""The signing_keys table."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from keyturn.core.keys import SigningKey, load_signing_key
from keyturn.storage.models import signing_keys


def load_keys(connection: Connection, *, algorithm: str) -> list[SigningKey]:
    rows = connection.execute(
        select(signing_keys).where(signing_keys.c.algorithm == algorithm)
    ).mappings()
    return [
        load_signing_key(
            kid=row["kid"],
            algorithm=row["algorithm"],
            private_key_pem=row["private_key_pem"].encode(),
            created_at=row["created_at"],
            retired_at=row["retired_at"],
            publish_until=row["publish_until"],
        )
        for row in rows
    ]


def insert_key(
    connection: Connection, *, kid: str, algorithm: str, private_key_pem: bytes, now: datetime
) -> None:
    connection.execute(
        insert(signing_keys).values(
            kid=kid,
            algorithm=algorithm,
            private_key_pem=private_key_pem.decode(),
            created_at=now,
        )
    )


def retire_active_keys(
    connection: Connection, *, algorithm: str, now: datetime, publish_until: datetime
) -> int:
    result = connection.execute(
        update(signing_keys)
        .where(signing_keys.c.algorithm == algorithm, signing_keys.c.retired_at.is_(None))
        .values(retired_at=now, publish_until=publish_until)
    )
    return int(result.rowcount or 0)
