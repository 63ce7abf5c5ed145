"""An index of ended sessions, so the purge finds them without reading every session.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

_ENDED = sa.text("ended_at IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_sessions_ended_at",
        "sessions",
        ["ended_at"],
        sqlite_where=_ENDED,
        postgresql_where=_ENDED,
    )


def downgrade() -> None:
    op.drop_index("ix_sessions_ended_at", table_name="sessions")
