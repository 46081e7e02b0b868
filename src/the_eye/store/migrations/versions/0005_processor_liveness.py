"""processors: heartbeats; inbox: delivery attempts and the reservation of a taken row

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "processors",
        sa.Column("name", sa.String(255), primary_key=True),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("beat_at", sa.DateTime, nullable=False),
    )
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attempts", sa.Integer, nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("taken_at", sa.DateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("inbox", schema=None) as batch_op:
        batch_op.drop_column("taken_at")
        batch_op.drop_column("attempts")
    op.drop_table("processors")
