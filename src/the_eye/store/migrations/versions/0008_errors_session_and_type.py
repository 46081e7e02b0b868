"""errors: the raw event's session id, category and name, each with an index, newest first (and
one for an application's errors);
replay_jobs: the progress of bulk replays started from the console

Revision ID: 0008
Revises: 0007

Errors already kept get them from their payload, a batch of rows at a time, as a new record
would have them: only for per-event errors (those with an `event_id`), and only values a
valid event could hold (strings of 1 to 128 or 100 characters, without NUL); a payload that
is not a JSON object (cut to its first bytes, say) leaves them null.
"""

import json
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

COLUMNS = {"session_id": 128, "category": 100, "name": 100}
# The errors list filters by each of these newest first; an application's errors too (a
# rare application's would otherwise be looked for through all errors).
INDEXED = ("application_id", *COLUMNS)
BATCH = 1000


def upgrade() -> None:
    with op.batch_alter_table("errors", schema=None) as batch_op:
        for column, length in COLUMNS.items():
            batch_op.add_column(sa.Column(column, sa.String(length=length), nullable=True))
    _backfill(op.get_bind())
    with op.batch_alter_table("errors", schema=None) as batch_op:
        for column in INDEXED:
            batch_op.create_index(
                f"ix_errors_{column}_received_at", [column, "received_at", "id"], unique=False
            )
    op.create_table(
        "replay_jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column(
            "filters",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("started_by", sa.String(100), nullable=False),
        sa.Column("started_at", sa.DateTime, nullable=False),
        sa.Column("updated_at", sa.DateTime, nullable=False),
        sa.Column("finished_at", sa.DateTime, nullable=True),
        sa.Column("total", sa.BigInteger, nullable=True),
        sa.Column("replayed", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("still_failing", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("skipped", sa.BigInteger, nullable=False, server_default="0"),
        sa.Column("failure", sa.Text, nullable=True),
    )


def downgrade() -> None:
    op.drop_table("replay_jobs")
    # Plain ALTER TABLE ... DROP COLUMN (SQLite 3.35+) once the indexes are gone: copying the
    # table, as batch mode otherwise does on SQLite, would rebuild its partial indexes.
    with op.batch_alter_table("errors", schema=None, recreate="never") as batch_op:
        for column in INDEXED:
            batch_op.drop_index(f"ix_errors_{column}_received_at")
        for column in COLUMNS:
            batch_op.drop_column(column)


def _backfill(conn: sa.Connection) -> None:
    """Fill the new columns of per-event errors from their payloads, by id, `BATCH` rows a
    statement, so memory stays bounded however many errors there are."""
    errors = sa.table(
        "errors",
        sa.column("id", sa.BigInteger),
        sa.column("event_id", sa.String),
        sa.column("payload", sa.Text),
        *(sa.column(column, sa.String) for column in COLUMNS),
    )
    update = (
        sa.update(errors)
        .where(errors.c.id == sa.bindparam("error_id"))
        .values({column: sa.bindparam(f"new_{column}") for column in COLUMNS})
    )
    after = 0
    while True:
        rows = conn.execute(
            sa.select(errors.c.id, errors.c.payload)
            .where(errors.c.id > after, errors.c.event_id.is_not(None))
            .order_by(errors.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        after = rows[-1].id
        found = [(row.id, _keys(row.payload)) for row in rows]
        changes = [
            {"error_id": error_id, **{f"new_{c}": keys.get(c) for c in COLUMNS}}
            for error_id, keys in found
            if keys
        ]
        if changes:
            conn.execute(update, changes)


def _keys(payload: str) -> dict[str, str]:
    """The session id, category and name a raw event holds, as the processor reads them."""
    try:
        raw = json.loads(payload)
    except ValueError:
        return {}
    if not isinstance(raw, dict):
        return {}
    values: dict[str, Any] = {
        "session_id": raw.get("session_id"),
        "category": raw.get("category"),
        "name": raw.get("name"),
    }
    if values["session_id"] is None and isinstance(raw.get("session"), dict):
        values["session_id"] = raw["session"].get("id")
    return {
        column: value
        for column, value in values.items()
        if isinstance(value, str) and 0 < len(value) <= COLUMNS[column] and "\x00" not in value
    }
