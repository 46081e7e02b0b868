"""Set-based writes of a processed batch: events, sessions, errors and counters.

No statement reads before it writes, so any number of processors can run at once: events
are inserted with ON CONFLICT DO NOTHING on the idempotency key, and sessions are upserted
from only the events that were really inserted.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from the_eye.store.credentials import utcnow
from the_eye.store.tables import counters, errors, events, sessions

_INSERTS = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}


@dataclass(slots=True)
class WriteResult:
    """What a batch write did."""

    stored: int
    duplicates: int
    errored: int


def _insert(conn: Connection, table: sa.Table):
    return _INSERTS[conn.dialect.name](table)


def store_events(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert events, skipping known idempotency keys, and update their sessions.

    Returns how many were new.
    """
    if not rows:
        return 0
    stmt = (
        _insert(conn, events)
        .on_conflict_do_nothing(index_elements=["application_id", "event_id"])
        .returning(events.c.session_id, events.c.timestamp)
    )
    inserted = conn.execute(stmt, rows).all()
    upsert_sessions(conn, inserted)
    return len(inserted)


def upsert_sessions(conn: Connection, inserted: list[Any]) -> None:
    """Fold (session_id, timestamp) pairs of new events into their sessions' rows."""
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
    stmt = _insert(conn, sessions)
    excluded = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["id"],
        set_={
            "first_seen": sa.case(
                (sessions.c.first_seen.is_(None), excluded.first_seen),
                (excluded.first_seen < sessions.c.first_seen, excluded.first_seen),
                else_=sessions.c.first_seen,
            ),
            "last_seen": sa.case(
                (sessions.c.last_seen.is_(None), excluded.last_seen),
                (excluded.last_seen > sessions.c.last_seen, excluded.last_seen),
                else_=sessions.c.last_seen,
            ),
            "event_count": sessions.c.event_count + excluded.event_count,
        },
    )
    now = utcnow()
    # A fixed order keeps concurrent processors from deadlocking on each other's rows.
    conn.execute(
        stmt,
        [
            {
                "id": sid,
                "first_seen": first,
                "last_seen": last,
                "event_count": count,
                "created_at": now,
            }
            for sid, (first, last, count) in sorted(spans.items())
        ],
    )


def store_errors(conn: Connection, rows: list[dict[str, Any]]) -> int:
    """Insert error records, skipping those an earlier delivery of their message wrote.

    Returns how many were new.
    """
    if not rows:
        return 0
    stmt = (
        _insert(conn, errors)
        .on_conflict_do_nothing(
            index_elements=["delivery_key"], index_where=errors.c.delivery_key.is_not(None)
        )
        .returning(errors.c.id)
    )
    return len(conn.execute(stmt, rows).all())


def bump_counters(conn: Connection, result: WriteResult) -> None:
    """Add a batch's numbers to the running totals that /metrics shows."""
    amounts = {
        "stored": result.stored,
        "duplicates": result.duplicates,
        "errored": result.errored,
    }
    amounts = {name: n for name, n in amounts.items() if n}
    if not amounts:
        return
    conn.execute(
        sa.update(counters)
        .where(counters.c.name.in_(list(amounts)))
        .values(value=counters.c.value + sa.case(amounts, value=counters.c.name, else_=0))
    )


def session_create(conn: Connection, session_id: str, now: datetime) -> None:
    """Register a session the server named, before any event arrives for it."""
    conn.execute(
        _insert(conn, sessions).on_conflict_do_nothing(index_elements=["id"]),
        {
            "id": session_id,
            "first_seen": None,
            "last_seen": None,
            "event_count": 0,
            "created_at": now,
        },
    )
