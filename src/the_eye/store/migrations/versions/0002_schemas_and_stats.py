"""schema registry and per-minute statistics rollups

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00.000000
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _minute(column: str) -> str:
    """SQL for whole minutes since 1970 of a naive UTC timestamp column, rounded down."""
    if op.get_bind().dialect.name == "sqlite":
        seconds = f"CAST(strftime('%s', {column}) AS INTEGER)"
        # SQLite's integer division truncates toward zero; round down for times before 1970.
        return f"(({seconds}) - ((({seconds}) % 60) + 60) % 60) / 60"
    return f"CAST(floor(extract(epoch FROM {column}) / 60) AS BIGINT)"


def upgrade() -> None:
    op.create_table(
        "schemas",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column(
            "schema",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("source", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("category", "name", "version", name="uq_schemas_type_version"),
    )
    op.create_table(
        "event_counts",
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("application_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "application_id", "category", "name"),
    )
    op.create_table(
        "error_counts",
        sa.Column("minute", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("application_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("minute", "application_id", "reason"),
    )
    # Stores that already hold events start with rollups that match them.
    op.execute(
        "INSERT INTO event_counts (minute, application_id, category, name, count) "
        f"SELECT {_minute('timestamp')}, application_id, category, name, count(*) "
        f"FROM events GROUP BY {_minute('timestamp')}, application_id, category, name"
    )
    op.execute(
        "INSERT INTO error_counts (minute, application_id, reason, count) "
        f"SELECT {_minute('received_at')}, coalesce(application_id, 0), reason, count(*) "
        "FROM errors WHERE NOT replayed "
        f"GROUP BY {_minute('received_at')}, coalesce(application_id, 0), reason"
    )


def downgrade() -> None:
    op.drop_table("error_counts")
    op.drop_table("event_counts")
    op.drop_table("schemas")
