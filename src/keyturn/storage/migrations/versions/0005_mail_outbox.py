"""The mail outbox: messages waiting for the sender in upkeep.

Revision ID: 0005_mail_outbox
Revises: 0004_signing_key_revocation
"""

import sqlalchemy as sa
from alembic import op

from keyturn.storage.models import BigId, UTCDateTime

revision = "0005_mail_outbox"
down_revision = "0004_signing_key_revocation"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mail_outbox",
        sa.Column("id", BigId, nullable=False, autoincrement=True),
        sa.Column("name", sa.String(48), nullable=False),
        sa.Column("recipient", sa.String(320), nullable=False),
        sa.Column("user_id", sa.String(32)),
        sa.Column("message", sa.LargeBinary()),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("claimed_until", UTCDateTime()),
        sa.Column("claim_token", sa.String(32)),
        sa.Column("finished_at", UTCDateTime()),
        sa.Column("last_error", sa.String(500)),
        sa.PrimaryKeyConstraint("id", name="pk_mail_outbox"),
    )
    op.create_index(
        "ix_mail_outbox_status_next_attempt_at", "mail_outbox", ["status", "next_attempt_at"]
    )
    op.create_index("ix_mail_outbox_finished_at", "mail_outbox", ["finished_at"])


def downgrade() -> None:
    op.drop_index("ix_mail_outbox_finished_at", table_name="mail_outbox")
    op.drop_index("ix_mail_outbox_status_next_attempt_at", table_name="mail_outbox")
    op.drop_table("mail_outbox")
