"""Set-based writes of a processed batch: events, sessions, errors and counters.

No statement reads before it writes, so any number of processors can run at once: events
are inserted with ON CONFLICT DO NOTHING on the idempotency key, and sessions are upserted
from only the events that were really inserted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store import dialect, stats
from the_eye.store.engine import dump_json
from the_eye.store.tables import AnyRow, counters
from the_eye.timestamps import utcnow


@dataclass(slots=True)
class WriteResult:
    """What a batch write did, in accepted events (each counted once: stored, duplicate or
    errored) and in bodies refused at ingest (`rejected`, kept as error records)."""

    stored: int
    duplicates: int
    errored: int
    rejected: int = 0


# The processor's statements per batch are written as plain SQL: building and binding Core
# constructs row by row cost more than SQLite's own work (profiled on 100,000 events), and a
# multi-row VALUES statement is parsed again in Python by psycopg at every execution.
ROWS_PER_INSERT = 500


def _sqlite_time(value: datetime) -> str:
    # The text form SQLAlchemy's SQLite DateTime reads back, and sorts in time order.
    return value.isoformat(" ", "microseconds")


# Binds a datetime as this connection's driver stores it (SQLite's text, or as it is).
_TimeBinder = Callable[[datetime], Any]


def _binders(dialect_name: str) -> tuple[_TimeBinder, Callable[[Any], str]]:
    """How a datetime and a JSON value are bound on this dialect's driver."""
    as_time: _TimeBinder = _sqlite_time if dialect_name == "sqlite" else (lambda v: v)
    return as_time, dump_json


@dataclass(frozen=True, slots=True)
class _NewRows:
    """A batch insert that skips rows whose key is kept already: the table, its columns
    with their PostgreSQL array types, the conflict it skips, and the columns the rollups
    need of the rows it inserts (`moment` the one that holds their time)."""

    table: str
    columns: tuple[tuple[str, str], ...]
    conflict: str
    returning: tuple[str, ...]
    moment: str

    def insert_all(self, conn: Connection, values: list[tuple[Any, ...]]) -> bool:
        """Insert every row of driver values (in column order), or say that a key was kept
        already (False): some rows may then be in, and the caller undoes the insert."""
        names = ", ".join(name for name, _ in self.columns)
        if conn.dialect.name == "postgresql":
            return _copy(conn, f"COPY {self.table} ({names}) FROM STDIN", values)
        mark = dialect.param_mark(conn)
        sql = (
            f"INSERT INTO {self.table} ({names}) VALUES ({', '.join([mark] * len(self.columns))})"
            f" ON CONFLICT {self.conflict}DO NOTHING"
        )
        # One prepared statement over every row; the driver counts the rows inserted.
        return bool(conn.exec_driver_sql(sql, values).rowcount == len(values))

    def insert_new(self, conn: Connection, values: list[tuple[Any, ...]]) -> list[AnyRow]:
        """Insert the rows whose keys are not kept yet; return those it inserted."""
        names = ", ".join(name for name, _ in self.columns)
        head = f"INSERT INTO {self.table} ({names})"
        tail = f" ON CONFLICT {self.conflict}DO NOTHING RETURNING {', '.join(self.returning)}"
        if conn.dialect.name == "postgresql":
            # One array per column: a short statement that the driver parses once.
            arrays = ", ".join(f"%b::{kind}" for _, kind in self.columns)
            columns = tuple(map(list, zip(*values, strict=True)))
            return list(
                conn.exec_driver_sql(f"{head} SELECT * FROM unnest({arrays}){tail}", columns)
            )
        mark = dialect.param_mark(conn)
        one_row = "(" + ", ".join([mark] * len(self.columns)) + ")"
        inserted: list[AnyRow] = []  # SQLite returns no rows from executemany
        for start in range(0, len(values), ROWS_PER_INSERT):
            chunk = values[start : start + ROWS_PER_INSERT]
            sql = f"{head} VALUES {', '.join([one_row] * len(chunk))}{tail}"
            inserted += conn.exec_driver_sql(sql, tuple(v for row in chunk for v in row)).all()
        return inserted

    def new_rows(
        self, conn: Connection, rows: list[dict[str, Any]], values: list[tuple[Any, ...]]
    ) -> list[dict[str, Any]]:
        """Insert `rows` (bound as `values`); the rows that were new.

        Nearly always every row is new: the rows themselves are then what was inserted,
        and nothing is read back (reading every row back cost a quarter of the write).
        When some were not, that insert is undone and made again returning the rows it
        inserts, so that sessions and rollups count exactly what the store kept.
        """
        savepoint = conn.begin_nested()
        try:
            all_new = self.insert_all(conn, values)
        except BaseException:
            savepoint.rollback()
            raise
        if all_new:
            savepoint.commit()
            return rows
        savepoint.rollback()
        inserted = [dict(row._mapping) for row in self.insert_new(conn, values)]
        for fields in inserted:
            if isinstance(fields[self.moment], str):  # SQLite returns its text form
                fields[self.moment] = datetime.fromisoformat(fields[self.moment])
        return inserted


def _copy(conn: Connection, sql: str, values: list[tuple[Any, ...]]) -> bool:
    """PostgreSQL: COPY the rows in, the server's bulk path (its CPU a quarter below an
    INSERT of the same rows); False when a unique key was kept already, which fails it."""
    dbapi = conn.dialect.loaded_dbapi
    driver = conn.connection.driver_connection
    assert driver is not None, "a connection in use has its driver's connection"
    try:
        with driver.cursor() as cursor, cursor.copy(sql) as copy:
            for row in values:
                copy.write_row(row)
    except dbapi.IntegrityError:
        return False
    except dbapi.Error as exc:
        # As SQLAlchemy raises a driver's errors everywhere else: an outage stays an
        # OperationalError, which the processor waits out.
        raise sa.exc.DBAPIError.instance(sql, None, exc, dbapi.Error) from exc
    return True


_NEW_EVENTS = _NewRows(
    "events",
    (
        ("application_id", "integer[]"),
        ("event_id", "text[]"),
        ("session_id", "text[]"),
        ("category", "text[]"),
        ("name", "text[]"),
        ("data", "text[]::jsonb[]"),
        ("timestamp", "timestamp[]"),
        ("received_at", "timestamp[]"),
    ),
    "(application_id, event_id) ",
    ("session_id", "timestamp", "application_id", "category", "name"),
    "timestamp",
)
# Either key may repeat, so no conflict is named: the delivery (a message delivered twice)
# or the event's idempotency key (a client retrying an invalid event); both leave one record.
_NEW_ERRORS = _NewRows(
    "errors",
    (
        ("application_id", "integer[]"),
        ("event_id", "text[]"),
        ("reason", "text[]"),
        ("message", "text[]"),
        ("details", "text[]::jsonb[]"),
        ("payload", "text[]"),
        ("received_at", "timestamp[]"),
        ("replayed", "boolean[]"),
        ("delivery_key", "text[]"),
        ("session_id", "text[]"),
        ("category", "text[]"),
        ("name", "text[]"),
    ),
    "",
    ("application_id", "reason", "received_at", "replayed"),
    "received_at",
)
# The columns the processor fills in `events`, in the order of their parameters.
INSERTED_EVENT_COLUMNS = tuple(name for name, _ in _NEW_EVENTS.columns)


def event_values(dialect_name: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """Event rows as the driver of this dialect (`sqlite`, `postgresql`) takes them, in
    `INSERTED_EVENT_COLUMNS` order."""
    as_time, as_json = _binders(dialect_name)
    return [
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


def store_events(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert events, skipping known idempotency keys, and update their sessions.

    Returns how many were new.
    """
    if not rows:
        return 0
    inserted = _NEW_EVENTS.new_rows(conn, rows, event_values(conn.dialect.name, rows))
    upsert_sessions(conn, [(row["session_id"], row["timestamp"]) for row in inserted])
    stats.count_events(conn, inserted)
    return len(inserted)


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
    as_time, _ = _binders(conn.dialect.name)
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
    as_time, as_json = _binders(conn.dialect.name)
    values = [
        (
            row["application_id"],
            row["event_id"],
            row["reason"],
            row["message"],
            # None is kept as JSON null, as the JSON column type keeps it.
            as_json(row["details"]),
            row["payload"],
            as_time(row["received_at"]),
            row.get("replayed", False),
            row.get("delivery_key"),
            row.get("session_id"),
            row.get("category"),
            row.get("name"),
        )
        for row in rows
    ]
    inserted = _NEW_ERRORS.new_rows(conn, rows, values)
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
