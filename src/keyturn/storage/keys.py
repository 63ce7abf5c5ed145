"""The signing_keys table; private keys are stored sealed (see core.sealing)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import insert, select, update
from sqlalchemy.engine import Connection

from keyturn.core.keys import SigningKey, load_signing_key
from keyturn.core.sealing import Sealer
from keyturn.storage.models import signing_keys
from keyturn.storage.secrets import reseal_column


def load_keys(connection: Connection, *, algorithm: str, sealer: Sealer) -> list[SigningKey]:
    """Every key of `algorithm`, revoked ones included (they verify nothing)."""
    rows = connection.execute(
        select(signing_keys).where(signing_keys.c.algorithm == algorithm)
    ).mappings()
    return [
        load_signing_key(
            kid=row["kid"],
            algorithm=row["algorithm"],
            private_key_pem=sealer.unseal(row["private_key_pem"]),
            created_at=row["created_at"],
            retired_at=row["retired_at"],
            publish_until=row["publish_until"],
            revoked_at=row["revoked_at"],
        )
        for row in rows
    ]


def insert_key(
    connection: Connection,
    *,
    kid: str,
    algorithm: str,
    private_key_pem: bytes,
    now: datetime,
    sealer: Sealer,
) -> None:
    connection.execute(
        insert(signing_keys).values(
            kid=kid,
            algorithm=algorithm,
            private_key_pem=sealer.seal(private_key_pem),
            created_at=now,
        )
    )


def retire_active_keys(
    connection: Connection, *, algorithm: str, now: datetime, publish_until: datetime
) -> int:
    result = connection.execute(
        update(signing_keys)
        .where(
            signing_keys.c.algorithm == algorithm,
            signing_keys.c.retired_at.is_(None),
            signing_keys.c.revoked_at.is_(None),
        )
        .values(retired_at=now, publish_until=publish_until)
    )
    return int(result.rowcount or 0)


def newest_active_key(connection: Connection, *, algorithm: str) -> tuple[str, datetime] | None:
    """(kid, created_at) of the newest key of `algorithm` neither retired nor revoked."""
    row = connection.execute(
        select(signing_keys.c.kid, signing_keys.c.created_at)
        .where(
            signing_keys.c.algorithm == algorithm,
            signing_keys.c.retired_at.is_(None),
            signing_keys.c.revoked_at.is_(None),
        )
        .order_by(signing_keys.c.created_at.desc())
        .limit(1)
    ).first()
    return None if row is None else (row.kid, row.created_at)


def retire_key(connection: Connection, kid: str, *, now: datetime, publish_until: datetime) -> bool:
    """Retire `kid` if it is still active; False when someone else retired (or revoked) it
    first. A conditional write: of writers racing on one key, exactly one sees True."""
    result = connection.execute(
        update(signing_keys)
        .where(
            signing_keys.c.kid == kid,
            signing_keys.c.retired_at.is_(None),
            signing_keys.c.revoked_at.is_(None),
        )
        .values(retired_at=now, publish_until=publish_until)
    )
    return int(result.rowcount or 0) == 1


def key_algorithm(connection: Connection, kid: str) -> tuple[str, bool] | None:
    """(algorithm, is_revoked) of the key `kid`; None when there is no such key."""
    row = connection.execute(
        select(signing_keys.c.algorithm, signing_keys.c.revoked_at).where(signing_keys.c.kid == kid)
    ).first()
    return None if row is None else (row.algorithm, row.revoked_at is not None)


def revoke_key(connection: Connection, kid: str, *, now: datetime) -> bool:
    """Mark `kid` revoked (and retired, unpublished) at `now`; False when already revoked."""
    row = connection.execute(
        select(signing_keys.c.retired_at).where(
            signing_keys.c.kid == kid, signing_keys.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return False
    connection.execute(
        update(signing_keys)
        .where(signing_keys.c.kid == kid)
        .values(revoked_at=now, retired_at=row.retired_at or now, publish_until=now)
    )
    return True


def reseal_keys(connection: Connection, sealer: Sealer) -> int:
    """Seal plain-text private keys (and renew older seals) with the current key."""
    return reseal_column(
        connection, sealer, key=signing_keys.c.kid, value=signing_keys.c.private_key_pem
    )
