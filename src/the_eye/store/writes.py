"""Set-based writes of a processed batch: events, sessions, errors and counters.

No statement reads before it writes, so any number of processors can run at once: events
are inserted with ON CONFLICT DO NOTHING on the idempotency key, and sessions are upserted
from only the events that were really inserted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, CursorResult

from the_eye.store import dialect, stats
from the_eye.store.engine import dump_json
from the_eye.store.tables import AnyRow, counters, errors
from the_eye.timestamps import utcnow


@dataclass(slots=True)
class WriteResult:
    """What a batch write did, in accepted events (each counted once: stored, duplicate or
    errored) and in bodies refused at ingest (`rejected`, kept as error records)."""

    stored: int
    duplicates: int
    errored: int
    rejected: int = 0


# The processor's two statements per batch are written as plain SQL: building and binding
# Core constructs row by row cost more than SQLite's own work (profiled on 100,000 events).
# The columns they fill, in the order of their parameters.
INSERTED_EVENT_COLUMNS = (
    "application_id",
    "event_id",
    "session_id",
    "category",
    "name",
    "data",
    "timestamp",
    "received_at",
)
ROWS_PER_INSERT = 500


def _sqlite_time(value: datetime) -> str:
    # The text form SQLAlchemy's SQLite DateTime reads back, and sorts in time order.
    return value.isoformat(" ", "microseconds")


# Binds a datetime as this connection's driver stores it (SQLite's text, or as it is).
_TimeBinder = Callable[[datetime], Any]


def _binders(conn: Connection) -> tuple[_TimeBinder, Callable[[Any], str]]:
    """How a datetime and a JSON value are bound on this connection's driver."""
    as_time: _TimeBinder = _sqlite_time if conn.dialect.name == "sqlite" else (lambda v: v)
    return as_time, dump_json


def store_events(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert events, skipping known idempotency keys, and update their sessions.

    Returns how many were new.
    """
    if not rows:
        return 0
    inserted = _insert_events(conn, rows)
    upsert_sessions(conn, [(row["session_id"], row["timestamp"]) for row in inserted])
    stats.count_events(conn, inserted)
    return len(inserted)


def _insert_events(conn: Connection, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows that were new, inserted.

    Nearly always every row is new, and the driver's count of inserted rows says so: the
    rows themselves are then what was inserted, and nothing is read back (reading every row
    back cost a quarter of the write). When some were not new, that insert is undone and
    made again returning the rows it inserts, so that sessions and rollups count exactly
    what the store kept.
    """
    savepoint = conn.begin_nested()
    if conn.dialect.name == "postgresql":
        new = _insert_events_unnest(conn, rows, returning=False).rowcount
    else:
        new = _insert_events_many(conn, rows)
    if new == len(rows):
        savepoint.commit()
        return rows
    savepoint.rollback()
    if conn.dialect.name == "postgresql":
        returned = _insert_events_unnest(conn, rows, returning=True).all()
    else:
        returned = _insert_events_values(conn, rows)
    return [_inserted(row) for row in returned]


def _inserted(row: AnyRow) -> dict[str, Any]:
    """A row an insert returned, with its timestamp as a datetime."""
    fields = dict(row._mapping)
    if isinstance(fields["timestamp"], str):  # SQLite returns its text form
        fields["timestamp"] = datetime.fromisoformat(fields["timestamp"])
    return fields


_RETURNING = " RETURNING session_id, timestamp, application_id, category, name"
_ON_CONFLICT = " ON CONFLICT (application_id, event_id) DO NOTHING"
_INSERT_EVENTS = f"INSERT INTO events ({', '.join(INSERTED_EVENT_COLUMNS)})"


def _insert_events_unnest(
    conn: Connection, rows: list[dict[str, Any]], returning: bool
) -> CursorResult[Any]:
    """PostgreSQL: one array per column and a short statement, which the driver parses once
    (a multi-row VALUES statement is parsed again in Python at every execution)."""
    sql = (
        _INSERT_EVENTS + " SELECT * FROM unnest("
        "%b::integer[], %b::text[], %b::text[], %b::text[], %b::text[], %b::text[]::jsonb[],"
        " %b::timestamp[], %b::timestamp[])" + _ON_CONFLICT + (_RETURNING if returning else "")
    )
    columns = (
        [row["application_id"] for row in rows],
        [row["event_id"] for row in rows],
        [row["session_id"] for row in rows],
        [row["category"] for row in rows],
        [row["name"] for row in rows],
        [dump_json(row["data"]) for row in rows],
        [row["timestamp"] for row in rows],
        [row["received_at"] for row in rows],
    )
    return conn.exec_driver_sql(sql, columns)


def _insert_events_many(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """SQLite: one prepared single-row statement run over every row; how many were new."""
    as_time, as_json = _binders(conn)
    mark = dialect.param_mark(conn)
    sql = (
        _INSERT_EVENTS
        + " VALUES ("
        + ", ".join([mark] * len(INSERTED_EVENT_COLUMNS))
        + ")"
        + _ON_CONFLICT
    )
    params = [
        (
            row["application_id"],
            row["event_id"],
            row["session_id"],
            row["category"],
            row["name"],
            as_json(row["data"]),
            as_time(row["timestamp"]),
            as_time(row["received_at"]),
        )
        for row in rows
    ]
    return conn.exec_driver_sql(sql, params).rowcount


def _insert_events_values(conn: Connection, rows: list[dict[str, Any]]) -> Sequence[AnyRow]:
    """SQLite, returning the rows inserted: multi-row VALUES, a few hundred rows a statement."""
    as_time, as_json = _binders(conn)
    mark = dialect.param_mark(conn)
    one_row = "(" + ", ".join([mark] * len(INSERTED_EVENT_COLUMNS)) + ")"
    inserted: list[AnyRow] = []
    for start in range(0, len(rows), ROWS_PER_INSERT):
        chunk = rows[start : start + ROWS_PER_INSERT]
        params: list[Any] = []
        for row in chunk:
            params += (
                row["application_id"],
                row["event_id"],
                row["session_id"],
                row["category"],
                row["name"],
                as_json(row["data"]),
                as_time(row["timestamp"]),
                as_time(row["received_at"]),
            )
        sql = (
            _INSERT_EVENTS
            + " VALUES "
            + ", ".join([one_row] * len(chunk))
            + _ON_CONFLICT
            + _RETURNING
        )
        inserted += conn.exec_driver_sql(sql, tuple(params)).all()
    return inserted


def _bound(moment: Any, as_time: _TimeBinder) -> Any:
    # Driver text (SQLite's RETURNING) goes back as it came; datetimes in the stored form.
    return moment if isinstance(moment, str) else as_time(moment)


def upsert_sessions(conn: Connection, inserted: Iterable[tuple[str, Any]]) -> None:
    """Fold (session_id, timestamp) pairs of new events into their sessions' rows.

    Timestamps are whatever the driver returned (datetimes, or SQLite's sortable text), and
    are bound back unchanged.
    """
    spans: dict[str, list[Any]] = {}
    for session_id, timestamp in inserted:
        span = spans.get(session_id)
        if span is None:
            spans[session_id] = [timestamp, timestamp, 1]
        else:
            if timestamp < span[0]:
                span[0] = timestamp
            if timestamp > span[1]:
                span[1] = timestamp
            span[2] += 1
    if not spans:
        return
    as_time, _ = _binders(conn)
    now = as_time(utcnow())
    m = dialect.param_mark(conn)
    sql = (
        "INSERT INTO sessions (id, first_seen, last_seen, event_count, created_at) "
        f"VALUES ({m}, {m}, {m}, {m}, {m}) ON CONFLICT (id) DO UPDATE SET "
        "first_seen = CASE WHEN sessions.first_seen IS NULL"
        " OR excluded.first_seen < sessions.first_seen"
        " THEN excluded.first_seen ELSE sessions.first_seen END, "
        "last_seen = CASE WHEN sessions.last_seen IS NULL"
        " OR excluded.last_seen > sessions.last_seen"
        " THEN excluded.last_seen ELSE sessions.last_seen END, "
        "event_count = sessions.event_count + excluded.event_count"
    )
    # A fixed order keeps concurrent processors from deadlocking on each other's rows.
    conn.exec_driver_sql(
        sql,
        [
            (sid, _bound(first, as_time), _bound(last, as_time), count, now)
            for sid, (first, last, count) in sorted(spans.items())
        ],
    )


def store_errors(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert error records, skipping those already kept (same delivery, or same event_id).

    Returns how many were new.
    """
    if not rows:
        return 0
    for row in rows:
        # PostgreSQL cannot store NUL in text; a raw body may hold one.
        for key in ("payload", "message"):
            if "\x00" in row[key]:
                row[key] = row[key].replace("\x00", "\ufffd")
    stmt = (
        dialect.insert(conn, errors)
        # Either key may repeat: the delivery (a message delivered twice) or the event's
        # idempotency key (a client retrying an invalid event); both leave one record.
        .on_conflict_do_nothing()
        .returning(
            errors.c.application_id, errors.c.reason, errors.c.received_at, errors.c.replayed
        )
    )
    inserted = conn.execute(stmt, rows).all()
    stats.count_errors(conn, inserted)
    return len(inserted)


def bump_counters(conn: Connection, result: WriteResult) -> None:
    """Add a batch's numbers to the running totals that /metrics shows."""
    amounts = {
        "stored": result.stored,
        "duplicates": result.duplicates,
        "errored": result.errored,
        "rejected": result.rejected,
    }
    amounts = {name: n for name, n in amounts.items() if n}
    if not amounts:
        return
    conn.execute(
        sa.update(counters)
        .where(counters.c.name.in_(list(amounts)))
        .values(value=counters.c.value + sa.case(amounts, value=counters.c.name, else_=0))
    )
