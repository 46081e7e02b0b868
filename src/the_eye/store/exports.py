"""The store's side of exports: rows read as export columns, the commit horizon, the days that
edits and deletes changed, and how far each incremental export got.

Rows are read for export as plain values, without the per-row decoding the API's queries do:
`data` and `details` as their JSON text, times as the store's `YYYY-MM-DD HH:MM:SS.ffffff`
UTC text (SQLite keeps them so; PostgreSQL formats them so), the application as its name.

**The horizon.** Ids come from a sequence, and on PostgreSQL a transaction that took id 100
may commit after one that took id 101: "every id above the last one exported" would skip
it for ever. `horizon` therefore reads the highest id while no transaction that writes
events is in flight: on PostgreSQL it takes `LOCK TABLE events IN SHARE MODE`, which waits
for every open transaction that inserted, changed or deleted events to end and holds new
ones back until it commits (a pause of at most one processor batch, once per export run);
every id at or below what it then reads is final, and every later one will be higher. On
SQLite one writer at a time commits ids in their order, so any snapshot's highest id is
final already. Edits and deletes write their `event_changes` row in the transaction that
changes `events`, so the same horizon holds for changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store.tables import AnyRow, applications, errors, event_changes, events, exports
from the_eye.timestamps import utcnow

# The text every exported time is read as, on both backends.
_PG_TIME_FORMAT = "YYYY-MM-DD HH24:MI:SS.US"


def _time_text(conn: Connection, column: sa.Column[Any]) -> sa.ColumnElement[Any]:
    if conn.dialect.name == "postgresql":
        return sa.func.to_char(column, _PG_TIME_FORMAT)
    return sa.type_coerce(column, sa.String)  # SQLite's stored text, as it is


def _application_name(application_id: sa.Column[Any]) -> sa.ColumnElement[Any]:
    return (
        sa.select(applications.c.name)
        .where(applications.c.id == application_id)
        .scalar_subquery()
        .label("application")
    )


def event_columns(conn: Connection) -> list[sa.ColumnElement[Any]]:
    """The columns of an exported event, in `EVENT_COLUMNS` order (`the_eye.export.formats`)."""
    return [
        events.c.id,
        events.c.event_id,
        events.c.session_id,
        _application_name(events.c.application_id),
        events.c.category,
        events.c.name,
        sa.cast(events.c.data, sa.Text).label("data"),
        _time_text(conn, events.c.timestamp).label("timestamp"),
        _time_text(conn, events.c.received_at).label("received_at"),
    ]


def error_columns(conn: Connection) -> list[sa.ColumnElement[Any]]:
    """The columns of an exported error, in `ERROR_COLUMNS` order (`the_eye.export.formats`)."""
    return [
        errors.c.id,
        errors.c.reason,
        errors.c.message,
        sa.cast(errors.c.details, sa.Text).label("details"),
        errors.c.event_id,
        errors.c.session_id,
        errors.c.category,
        errors.c.name,
        _application_name(errors.c.application_id),
        _time_text(conn, errors.c.received_at).label("received_at"),
        errors.c.replayed,
        errors.c.replayed_event_id,
    ]


def parse_time_text(text: str) -> datetime:
    """A time as `event_columns` reads it, as a naive UTC datetime (to page from)."""
    return datetime.fromisoformat(text)


@dataclass(slots=True, frozen=True)
class Horizon:
    """Every event id and change id at or below these is committed (or never will be)."""

    last_event_id: int
    last_change_id: int


def horizon(conn: Connection) -> Horizon:
    """The highest final event and change ids (see the module's doc). Run it in a
    transaction of its own: on PostgreSQL it holds writers of events back until it ends."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("LOCK TABLE events IN SHARE MODE")
    last_event = conn.execute(sa.select(sa.func.max(events.c.id))).scalar()
    last_change = conn.execute(sa.select(sa.func.max(event_changes.c.id))).scalar()
    return Horizon(last_event or 0, last_change or 0)


def mark_changed(conn: Connection, timestamps: Iterable[datetime]) -> None:
    """Record that events of these timestamps' days changed, for exports to rewrite those
    days; call it in the transaction that changes or deletes the events."""
    days = sorted({moment.date() for moment in timestamps})
    if days:
        now = utcnow()
        conn.execute(event_changes.insert(), [{"day": day, "changed_at": now} for day in days])


def changed_days(conn: Connection, after: int, upto: int) -> list[date]:
    """The days of the changes with ids in (after, upto], oldest first."""
    return list(
        conn.execute(
            sa.select(event_changes.c.day)
            .where(event_changes.c.id > after, event_changes.c.id <= upto)
            .distinct()
            .order_by(event_changes.c.day)
        ).scalars()
    )


def forget_changes(conn: Connection) -> None:
    """Delete the changes every export has taken into account."""
    oldest = conn.execute(sa.select(sa.func.min(exports.c.last_change_id))).scalar()
    if oldest is not None:
        conn.execute(sa.delete(event_changes).where(event_changes.c.id <= oldest))


def new_events(
    conn: Connection, after: int, upto: int, limit: int, application_id: int | None
) -> list[tuple[Any, ...]]:
    """Up to `limit` events with ids in (after, upto], by id, as export columns."""
    stmt = (
        sa.select(*event_columns(conn))
        .where(events.c.id > after, events.c.id <= upto)
        .order_by(events.c.id)
        .limit(limit)
    )
    if application_id is not None:
        # Not the bare column: SQLite would walk the (application_id, event_id) index.
        stmt = stmt.where(events.c.application_id + 0 == application_id)
    if conn.dialect.name == "postgresql":
        # Walk the primary key in order, always. Without statistics (a table just loaded)
        # PostgreSQL expects a few thousand rows and sorts every remaining one instead, for
        # each chunk: measured over 1,000,000 fresh rows, 11.8 s for the first chunk, not 0.34 s.
        for setting in ("enable_seqscan", "enable_bitmapscan", "enable_sort"):
            conn.exec_driver_sql(f"SET LOCAL {setting} = off")
    return _driver_rows(conn, stmt)


def _driver_rows(conn: Connection, stmt: sa.Select[Any]) -> list[tuple[Any, ...]]:
    """The rows of `stmt` as the driver returns them, without SQLAlchemy's work per row,
    which takes as long as the driver's own on an export's hot path. Only for statements
    whose parameters are integers, which are rendered in the SQL."""
    sql = str(stmt.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    try:
        cursor.execute(sql)
        return list(cursor.fetchall())
    finally:
        cursor.close()


def events_of_day(
    conn: Connection,
    day: date,
    upto: int,
    after: tuple[datetime, int] | None,
    limit: int,
    application_id: int | None,
) -> Sequence[AnyRow]:
    """Up to `limit` events of `day` (by timestamp, UTC) with ids at most `upto`, in
    (timestamp, id) order after the position `after`, as export columns."""
    start = datetime(day.year, day.month, day.day)
    stmt = sa.select(*event_columns(conn)).where(
        events.c.timestamp >= start,
        events.c.timestamp < start + timedelta(days=1),
        events.c.id <= upto,
    )
    if application_id is not None:
        stmt = stmt.where(events.c.application_id + 0 == application_id)
    if after is not None:
        moment, row_id = after
        stmt = stmt.where(
            sa.or_(
                events.c.timestamp > moment,
                sa.and_(events.c.timestamp == moment, events.c.id > row_id),
            )
        )
    stmt = stmt.order_by(events.c.timestamp, events.c.id).limit(limit)
    return conn.execute(stmt).all()


def count_new_events(conn: Connection, after: int, upto: int, application_id: int | None) -> int:
    stmt = sa.select(sa.func.count()).where(events.c.id > after, events.c.id <= upto)
    if application_id is not None:
        stmt = stmt.where(events.c.application_id + 0 == application_id)
    return int(conn.execute(stmt).scalar_one())


def get_progress(conn: Connection, destination: str) -> AnyRow | None:
    return conn.execute(sa.select(exports).where(exports.c.destination == destination)).first()


def save_progress(
    conn: Connection,
    destination: str,
    format: str,
    application: str | None,
    last_event_id: int,
    last_change_id: int,
) -> None:
    """Record how far the export to `destination` got (made on its first save)."""
    values = {
        "last_event_id": last_event_id,
        "last_change_id": last_change_id,
        "updated_at": utcnow(),
    }
    updated = conn.execute(
        sa.update(exports).where(exports.c.destination == destination).values(**values)
    ).rowcount
    if not updated:
        conn.execute(
            exports.insert().values(
                destination=destination, format=format, application=application, **values
            )
        )
