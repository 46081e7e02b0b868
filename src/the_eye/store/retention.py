"""Deleting what is older than the retention cutoff, one bounded batch per transaction.

Each batch picks the oldest rows by the time index, deletes them (re-checking the cutoff,
in case an edit moved one meanwhile), then recounts and locks their sessions and takes
them out of the rollups, like any other write that removes events.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store import stats
from the_eye.store.sessions import delete_empty_sessions, lock_sessions, recount_sessions
from the_eye.store.tables import errors, events, sessions


def _oldest_ids(
    conn: Connection, moment: sa.Column[Any], row_id: sa.Column[Any], cutoff: datetime, limit: int
) -> list[int]:
    """Ids of up to `limit` rows whose `moment` is before `cutoff`, oldest first."""
    return list(
        conn.execute(
            sa.select(row_id).where(moment < cutoff).order_by(moment, row_id).limit(limit)
        ).scalars()
    )


def purge_events(conn: Connection, cutoff: datetime, limit: int) -> tuple[int, int]:
    """Delete up to `limit` events that happened before `cutoff`, and the sessions that this
    leaves empty; return (events, sessions) deleted."""
    oldest = _oldest_ids(conn, events.c.timestamp, events.c.id, cutoff, limit)
    if not oldest:
        return 0, 0
    deleted = conn.execute(
        sa.delete(events)
        .where(events.c.id.in_(oldest), events.c.timestamp < cutoff)
        .returning(
            events.c.session_id,
            events.c.application_id,
            events.c.category,
            events.c.name,
            events.c.timestamp,
        )
    ).all()
    touched = {row.session_id for row in deleted}
    lock_sessions(conn, touched)
    recount_sessions(conn, touched)
    emptied = delete_empty_sessions(conn, touched)
    stats.count_events(conn, deleted, -1)
    return len(deleted), emptied


def purge_errors(conn: Connection, cutoff: datetime, limit: int) -> int:
    """Delete up to `limit` errors received before `cutoff`; return how many."""
    oldest = _oldest_ids(conn, errors.c.received_at, errors.c.id, cutoff, limit)
    if not oldest:
        return 0
    deleted = conn.execute(
        sa.delete(errors)
        .where(errors.c.id.in_(oldest), errors.c.received_at < cutoff)
        .returning(
            errors.c.received_at, errors.c.application_id, errors.c.reason, errors.c.replayed
        )
    ).all()
    stats.count_errors(conn, [row for row in deleted if not row.replayed], -1)
    return len(deleted)


def purge_empty_sessions(
    conn: Connection, cutoff: datetime, after: str, limit: int
) -> tuple[int, str | None]:
    """Delete sessions with no events created before `cutoff` (made by `POST /sessions/` and
    never used, or emptied by deletes), looking at up to `limit` of them with ids after
    `after`; return how many were deleted and the id to go on after (None at the end)."""
    empty = [
        row.id
        for row in conn.execute(
            sa.select(sessions.c.id)
            .where(
                sessions.c.event_count == 0,
                sessions.c.created_at < cutoff,
                sessions.c.id > after,
            )
            .order_by(sessions.c.id)
            .limit(limit)
        )
    ]
    if not empty:
        return 0, None
    lock_sessions(conn, empty)
    # An event may have arrived since the count was read: recount before deleting.
    recount_sessions(conn, empty)
    return delete_empty_sessions(conn, empty), empty[-1]
