"""exports: how far each incremental export got; event_changes: days edits and deletes changed

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "exports",
        sa.Column("destination", sa.String(1000), primary_key=True),
        sa.Column("format", sa.String(16), nullable=False),
        sa.Column("application", sa.String(100), nullable=True),
        sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("last_change_id", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("updated_at", sa.DateTime, nullable=False),
    )
    op.create_table(
        "event_changes",
        sa.Column("id", BigId, primary_key=True),
        sa.Column("day", sa.Date, nullable=False),
        sa.Column("changed_at", sa.DateTime, nullable=False),
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("event_changes")
    op.drop_table("exports")
