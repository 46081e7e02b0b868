"""Writes of sessions: made ahead of their events, erased, or recounted from their events.

Processors only ever add events, so they fold them into sessions with atomic increments.
Edits, deletes and purges may take events away, so they lock the sessions they touch and
recount them from the events in the same transaction: a processor adding an event to the
same session either commits before the lock is granted (and is counted) or waits for it
and then adds its increment to the recounted row. A session is erased the same way: locked
first, so that no event committed meanwhile outlives it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store import dialect, exports, stats
from the_eye.store.tables import events, sessions


def lock_sessions(conn: Connection, ids: Iterable[str], create_at: datetime | None = None) -> None:
    """Lock the rows of these sessions in id order; with `create_at`, make the missing ones.

    The order matches the processors' upserts, so the two never deadlock. (SQLite ignores
    FOR UPDATE; there the transaction holds the write lock from its start.)
    """
    ordered = sorted(set(ids))
    if not ordered:
        return
    if create_at is not None:
        create_sessions(conn, ordered, create_at)
    conn.execute(
        sa.select(sessions.c.id)
        .where(sessions.c.id.in_(ordered))
        .order_by(sessions.c.id)
        .with_for_update()
    ).all()


def create_sessions(conn: Connection, ids: Iterable[str], now: datetime) -> None:
    """Make the sessions of these ids that do not exist yet, with no events, created `now`."""
    ordered = sorted(set(ids))
    if not ordered:
        return
    conn.execute(
        dialect.insert(conn, sessions).on_conflict_do_nothing(index_elements=["id"]),
        [
            {"id": i, "first_seen": None, "last_seen": None, "event_count": 0, "created_at": now}
            for i in ordered
        ],
    )


def delete_session(conn: Connection, session_id: str) -> bool:
    """Erase a session and every event of it; False when there was no such session.

    The session's row is locked first, as processors lock it when they add events: an event
    committed meanwhile is then seen, and erased too, instead of outliving its session."""
    lock_sessions(conn, [session_id])
    erased = conn.execute(
        sa.delete(events)
        .where(events.c.session_id == session_id)
        .returning(events.c.application_id, events.c.category, events.c.name, events.c.timestamp)
    ).all()
    stats.count_events(conn, erased, -1)
    exports.mark_changed(conn, [row.timestamp for row in erased])
    return conn.execute(sa.delete(sessions).where(sessions.c.id == session_id)).rowcount > 0


def recount_sessions(conn: Connection, ids: Iterable[str]) -> None:
    """Set first_seen, last_seen and event_count of these (locked) sessions from their events."""
    ordered = sorted(set(ids))
    if not ordered:
        return
    of_session = events.c.session_id == sessions.c.id
    conn.execute(
        sa.update(sessions)
        .where(sessions.c.id.in_(ordered))
        .values(
            event_count=sa.select(sa.func.count()).where(of_session).scalar_subquery(),
            first_seen=sa.select(sa.func.min(events.c.timestamp))
            .where(of_session)
            .scalar_subquery(),
            last_seen=sa.select(sa.func.max(events.c.timestamp))
            .where(of_session)
            .scalar_subquery(),
        )
    )


def delete_empty_sessions(conn: Connection, ids: Iterable[str]) -> int:
    """Delete those of these (locked, recounted) sessions that have no event left."""
    ordered = sorted(set(ids))
    if not ordered:
        return 0
    return conn.execute(
        sa.delete(sessions).where(sessions.c.id.in_(ordered), sessions.c.event_count == 0)
    ).rowcount
