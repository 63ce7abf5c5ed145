"""The revocation feed cannot skip a committed row.

PostgreSQL: each row records the transaction that wrote it, so a reader can tell the rows its
last snapshot could not see from the rows it has read (ids are handed out before commit and
say nothing about what has committed). SQLite: ids are never reused (AUTOINCREMENT), so a row
written after the newest rows were purged still lands above every reader's cursor.

Revision ID: 0003_revocation_feed
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003_revocation_feed"
down_revision = "0002"
branch_labels = None
depends_on = None

# xid8 (PostgreSQL 13+) as a bigint: an epoch-extended id, never wrapping around.
_CURRENT_TRANSACTION = sa.text("(pg_current_xact_id()::text)::bigint")


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.add_column(
            "revocations",
            sa.Column("transaction_id", sa.BigInteger(), server_default=_CURRENT_TRANSACTION),
        )
    else:
        with op.batch_alter_table(
            "revocations", recreate="always", table_kwargs={"sqlite_autoincrement": True}
        ) as batch:
            batch.add_column(sa.Column("transaction_id", sa.BigInteger()))
    op.create_index("ix_revocations_transaction_id", "revocations", ["transaction_id"])


def downgrade() -> None:
    op.drop_index("ix_revocations_transaction_id", table_name="revocations")
    if op.get_bind().dialect.name == "postgresql":
        op.drop_column("revocations", "transaction_id")
    else:
        with op.batch_alter_table(
            "revocations", recreate="always", table_kwargs={"sqlite_autoincrement": False}
        ) as batch:
            batch.drop_column("transaction_id")
