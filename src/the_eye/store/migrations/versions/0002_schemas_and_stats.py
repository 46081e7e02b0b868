"""schema registry and statistics rollups

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

WIDTHS = (1, 60, 1440)  # minutes: a minute, an hour, a day


def _start(column: str, width: int) -> str:
    """SQL for the first minute since 1970 of the `width`-minute slot a naive UTC time is in."""
    if op.get_bind().dialect.name == "sqlite":
        # Whole seconds first: SQLite rounds a fraction like .999999 up to the next second.
        seconds = f"CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER)"
        size = 60 * width
        # SQLite's integer division truncates toward zero; round down for times before 1970.
        return f"((({seconds}) - ((({seconds}) % {size}) + {size}) % {size}) / 60)"
    return f"(CAST(floor(extract(epoch FROM {column}) / {60 * width}) AS BIGINT) * {width})"


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
        sa.Column("width", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("application_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("category", sa.String(length=100), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("width", "start", "application_id", "category", "name"),
        sqlite_with_rowid=False,
    )
    op.create_table(
        "error_counts",
        sa.Column("width", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("start", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("application_id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("reason", sa.String(length=32), nullable=False),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("width", "start", "application_id", "reason"),
        sqlite_with_rowid=False,
    )
    # Stores that already hold events start with rollups that match them.
    for width in WIDTHS:
        start = _start("timestamp", width)
        op.execute(
            "INSERT INTO event_counts (width, start, application_id, category, name, count) "
            f"SELECT {width}, {start}, application_id, category, name, count(*) "
            f"FROM events GROUP BY {start}, application_id, category, name"
        )
        start = _start("received_at", width)
        op.execute(
            "INSERT INTO error_counts (width, start, application_id, reason, count) "
            f"SELECT {width}, {start}, coalesce(application_id, 0), reason, count(*) "
            "FROM errors WHERE NOT replayed "
            f"GROUP BY {start}, coalesce(application_id, 0), reason"
        )


def downgrade() -> None:
    op.drop_table("error_counts")
    op.drop_table("event_counts")
    op.drop_table("schemas")
