"""errors: one record per (application, event_id), as for events

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("errors", schema=None) as batch_op:
        batch_op.create_index(
            "uq_errors_application_event_id",
            ["application_id", "event_id"],
            unique=True,
            postgresql_where=sa.text("event_id IS NOT NULL"),
            sqlite_where=sa.text("event_id IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("errors", schema=None) as batch_op:
        batch_op.drop_index("uq_errors_application_event_id")
