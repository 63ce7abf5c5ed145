"""Signing keys can be revoked: a revoked key signs, verifies and publishes nothing.

Revision ID: 0004_signing_key_revocation
Revises: 0003_revocation_feed
"""

import sqlalchemy as sa
from alembic import op

from keyturn.storage.models import UTCDateTime

revision = "0004_signing_key_revocation"
down_revision = "0003_revocation_feed"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("signing_keys") as table:
        table.add_column(sa.Column("revoked_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("signing_keys") as table:
        table.drop_column("revoked_at")
