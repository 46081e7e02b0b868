"""errors: an index for listing replayed (or open) errors, newest first

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("errors", schema=None) as batch_op:
        batch_op.create_index(
            "ix_errors_replayed_received_at", ["replayed", "received_at", "id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("errors", schema=None) as batch_op:
        batch_op.drop_index("ix_errors_replayed_received_at")
