"""errors.delivery_key: a message delivered twice writes its error records once

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("errors", schema=None) as batch_op:
        batch_op.add_column(sa.Column("delivery_key", sa.String(length=255), nullable=True))
        batch_op.create_index(
            "uq_errors_delivery_key",
            ["delivery_key"],
            unique=True,
            postgresql_where=sa.text("delivery_key IS NOT NULL"),
            sqlite_where=sa.text("delivery_key IS NOT NULL"),
        )


def downgrade() -> None:
    with op.batch_alter_table("errors", schema=None) as batch_op:
        batch_op.drop_index("uq_errors_delivery_key")
        batch_op.drop_column("delivery_key")
