"""The store's tables, as SQLAlchemy Core metadata shared by SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any, TypeAlias

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.engine import Row

# A result row of any columns, read by name (`row.id`) or position. (`Row[Any]` would be a
# row of exactly one column: SQLAlchemy types a row's columns as a variadic tuple.)
AnyRow: TypeAlias = Row[*tuple[Any, ...]]

metadata = sa.MetaData()

# SQLite only aliases the rowid for a column declared exactly INTEGER PRIMARY KEY.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
Json = sa.JSON().with_variant(JSONB(), "postgresql")

applications = sa.Table(
    "applications",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False, unique=True),
    sa.Column("write_key_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("strict", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

api_tokens = sa.Table(
    "api_tokens",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("token_hash", sa.String(64), nullable=False, unique=True),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("active", sa.Boolean, nullable=False, server_default=sa.true()),
    sa.Column("created_at", sa.DateTime, nullable=False),
)

sessions = sa.Table(
    "sessions",
    metadata,
    sa.Column("id", sa.String(128), primary_key=True),
    sa.Column("first_seen", sa.DateTime, nullable=True),
    sa.Column("last_seen", sa.DateTime, nullable=True),
    sa.Column("event_count", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Index("ix_sessions_last_seen", "last_seen", "id"),
    sa.Index("ix_sessions_created_at", "created_at", "id"),
)

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("application_id", sa.Integer, nullable=False),
    sa.Column("event_id", sa.String(128), nullable=False),
    sa.Column("session_id", sa.String(128), nullable=False),
    sa.Column("category", sa.String(100), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("data", Json, nullable=False),
    sa.Column("timestamp", sa.DateTime, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("application_id", "event_id", name="uq_events_application_event_id"),
    sa.Index("ix_events_session_timestamp", "session_id", "timestamp", "id"),
    sa.Index("ix_events_category_timestamp", "category", "timestamp", "id"),
    sa.Index("ix_events_timestamp", "timestamp", "id"),
    sqlite_autoincrement=True,
)

errors = sa.Table(
    "errors",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("application_id", sa.Integer, nullable=True),
    sa.Column("event_id", sa.String(128), nullable=True),
    sa.Column("reason", sa.String(32), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", Json, nullable=True),
    sa.Column("payload", sa.Text, nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("replayed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("replayed_event_id", sa.BigInteger, nullable=True),
    # Where the error came from in an at-least-once queue (message key and position), so
    # that a message delivered twice writes its errors once. Empty for the `db` queue of a
    # PostgreSQL store, which delivers once.
    sa.Column("delivery_key", sa.String(255), nullable=True),
    # The raw event's own session id, category and name, when it has usable ones (null for
    # whole-body errors), so that errors are found as events are.
    sa.Column("session_id", sa.String(128), nullable=True),
    sa.Column("category", sa.String(100), nullable=True),
    sa.Column("name", sa.String(100), nullable=True),
    sa.Index("ix_errors_received_at", "received_at", "id"),
    sa.Index("ix_errors_reason_received_at", "reason", "received_at", "id"),
    # `GET /errors/?replayed=...`, newest first, without walking the other kind.
    sa.Index("ix_errors_replayed_received_at", "replayed", "received_at", "id"),
    sa.Index("ix_errors_application_id_received_at", "application_id", "received_at", "id"),
    sa.Index("ix_errors_session_id_received_at", "session_id", "received_at", "id"),
    sa.Index("ix_errors_category_received_at", "category", "received_at", "id"),
    sa.Index("ix_errors_name_received_at", "name", "received_at", "id"),
    sa.Index(
        "uq_errors_delivery_key",
        "delivery_key",
        unique=True,
        postgresql_where=sa.text("delivery_key IS NOT NULL"),
        sqlite_where=sa.text("delivery_key IS NOT NULL"),
    ),
    # An invalid event retried with the same event_id is kept once, as a valid one is.
    sa.Index(
        "uq_errors_application_event_id",
        "application_id",
        "event_id",
        unique=True,
        postgresql_where=sa.text("event_id IS NOT NULL"),
        sqlite_where=sa.text("event_id IS NOT NULL"),
    ),
    sqlite_autoincrement=True,
)

# Who is signed in to the console: the cookie's secret is stored hashed, with the API token
# it was opened with (or a hash of `THE_EYE_ADMIN_TOKEN`), so that revoking the token, or
# changing the admin token, closes the console sessions opened with it.
console_sessions = sa.Table(
    "console_sessions",
    metadata,
    sa.Column("id_hash", sa.String(64), primary_key=True),
    sa.Column("token_id", sa.Integer, nullable=True),
    sa.Column("admin_token_hash", sa.String(64), nullable=True),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("scope", sa.String(16), nullable=False),
    sa.Column("csrf_token", sa.String(64), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.Column("expires_at", sa.DateTime, nullable=False),
    sa.Index("ix_console_sessions_expires_at", "expires_at"),
)

# Bulk replays started from the console: run by a thread of the API process that started
# one, and read by whichever process a progress page asks.
replay_jobs = sa.Table(
    "replay_jobs",
    metadata,
    sa.Column("id", sa.String(32), primary_key=True),
    sa.Column("filters", Json, nullable=False),
    sa.Column("started_by", sa.String(100), nullable=False),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("updated_at", sa.DateTime, nullable=False),
    sa.Column("finished_at", sa.DateTime, nullable=True),
    # Null until counted: the errors the filters matched when the job started.
    sa.Column("total", sa.BigInteger, nullable=True),
    sa.Column("replayed", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("still_failing", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("skipped", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("failure", sa.Text, nullable=True),
)

# JSON Schemas for the `data` of one event type; the highest version of a type is the one in force.
schemas = sa.Table(
    "schemas",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("category", sa.String(100), nullable=False),
    sa.Column("name", sa.String(100), nullable=False),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("schema", Json, nullable=False),
    # SHA-256 of the canonical JSON, so that reloading an unchanged file makes no new version.
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("source", sa.String(255), nullable=False),
    sa.Column("created_at", sa.DateTime, nullable=False),
    sa.UniqueConstraint("category", "name", "version", name="uq_schemas_type_version"),
)

# Rollups for /stats/: how many events (by type) and open errors (by reason) fell in each
# minute, hour and day, kept by every write that adds, changes or removes one, so that a
# query sums a few rows per slot instead of counting big tables. A row covers `width`
# minutes from `start`, in whole minutes since 1970 (UTC), which buckets with plain integer
# arithmetic on every backend; application 0 stands for errors without an application.
# SQLite keeps them WITHOUT ROWID, clustered on the key that queries scan by range.
event_counts = sa.Table(
    "event_counts",
    metadata,
    sa.Column("width", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("application_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("category", sa.String(100), primary_key=True),
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

error_counts = sa.Table(
    "error_counts",
    metadata,
    sa.Column("width", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("start", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("application_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("reason", sa.String(32), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,
)

# The `db` queue: one row per accepted request, deleted once it is processed (on PostgreSQL in
# the transaction that processes it; a SQLite store keeps this table in an inbox file of its
# own). Ids are never reused (AUTOINCREMENT on SQLite), so a processor that read a row can
# tell whether the row it claims later is still that one.
inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("application_id", sa.Integer, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("received_at", sa.DateTime, nullable=False),
    sa.Column("event_ids", sa.Text, nullable=False),
    sa.Column("body", sa.LargeBinary, nullable=False),
    # Times processors took the row; counted in a transaction of its own before processing,
    # so a processor that dies with the row in hand (a crash, out of memory) still counts.
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    # When a processor took the row: others leave it alone until `inbox_claim_idle` passes.
    sa.Column("taken_at", sa.DateTime, nullable=True),
    sqlite_autoincrement=True,
)

# One row per running processor, its heartbeat upserted every few seconds even when idle, so
# that `/ready/` and `/metrics` tell a processor that died or hangs.
processors = sa.Table(
    "processors",
    metadata,
    sa.Column("name", sa.String(255), primary_key=True),
    sa.Column("started_at", sa.DateTime, nullable=False),
    sa.Column("beat_at", sa.DateTime, nullable=False),
)

# Running totals for /metrics, bumped once per batch rather than counted over big tables.
counters = sa.Table(
    "counters",
    metadata,
    sa.Column("name", sa.String(32), primary_key=True),
    sa.Column("value", sa.BigInteger, nullable=False, server_default="0"),
)

COUNTER_NAMES = ("received", "stored", "errored", "duplicates", "rejected")

# Where each incremental export (`the-eye export DIR`) got to, by its directory: the last
# event id it wrote and the last change it took into account, saved only once the files
# that hold them are in place. A directory keeps its format and application filter.
exports = sa.Table(
    "exports",
    metadata,
    sa.Column("destination", sa.String(1000), primary_key=True),
    sa.Column("format", sa.String(16), nullable=False),
    sa.Column("application", sa.String(100), nullable=True),
    sa.Column("last_event_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("last_change_id", sa.BigInteger, nullable=False, server_default="0"),
    sa.Column("updated_at", sa.DateTime, nullable=False),
)

# The days (of event timestamps) whose stored events an edit or a delete changed, one row
# per day and writing transaction, written in that transaction: exports rewrite those days.
event_changes = sa.Table(
    "event_changes",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("day", sa.Date, nullable=False),
    sa.Column("changed_at", sa.DateTime, nullable=False),
    sqlite_autoincrement=True,
)
