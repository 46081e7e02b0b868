"""Writes of an error replay: errors that now pass become events, the others get their new reason.

A batch of errors is locked (FOR UPDATE on PostgreSQL; the SQLite write transaction holds
the store), so two replays of the same error cannot both count it; the events go in with
ON CONFLICT DO NOTHING on the idempotency key, so replaying twice stores once.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store import dialect, stats
from the_eye.store.queries import ErrorFilter, select_errors
from the_eye.store.tables import AnyRow, errors, events
from the_eye.store.writes import WriteResult, bump_counters, upsert_sessions


def _with_payloads(where: ErrorFilter) -> sa.Select[Any]:
    return select_errors(where).add_columns(errors.c.payload)


def lock_errors(
    conn: Connection, where: ErrorFilter, after_id: int, limit: int
) -> Sequence[AnyRow]:
    """The next `limit` matching errors by id after `after_id`, locked, with payloads."""
    return conn.execute(
        _with_payloads(where)
        .where(errors.c.id > after_id)
        .order_by(errors.c.id)
        .limit(limit)
        .with_for_update()
    ).all()


def lock_error(conn: Connection, error_id: int) -> AnyRow | None:
    """The error with this id, locked, with its payload; or None."""
    return conn.execute(
        _with_payloads(ErrorFilter()).where(errors.c.id == error_id).with_for_update()
    ).first()


def store_replayed(conn: Connection, passed: list[tuple[AnyRow, dict[str, Any]]]) -> dict[int, int]:
    """Store the events of errors that now pass and mark those errors replayed.

    `passed` pairs each (locked, not yet replayed) error row with its event row. Returns
    error id -> event id: the event stored now, or the one that had the same key already.
    """
    if not passed:
        return {}
    stmt = (
        dialect.insert(conn, events)
        .on_conflict_do_nothing(index_elements=["application_id", "event_id"])
        .returning(
            events.c.id,
            events.c.application_id,
            events.c.event_id,
            events.c.session_id,
            events.c.timestamp,
            events.c.category,
            events.c.name,
        )
    )
    inserted = conn.execute(stmt, [event for _, event in passed]).all()
    upsert_sessions(conn, [(row.session_id, row.timestamp) for row in inserted])
    stats.count_events(conn, inserted)
    ids = {(row.application_id, row.event_id): row.id for row in inserted}
    known = [
        (event["application_id"], event["event_id"])
        for _, event in passed
        if (event["application_id"], event["event_id"]) not in ids
    ]
    if known:
        # Already stored (delivered again, or replayed before): link to that event.
        found = conn.execute(
            sa.select(events.c.id, events.c.application_id, events.c.event_id).where(
                sa.tuple_(events.c.application_id, events.c.event_id).in_(known)
            )
        ).all()
        ids.update({(row.application_id, row.event_id): row.id for row in found})
    links = {error.id: ids[(event["application_id"], event["event_id"])] for error, event in passed}
    conn.execute(
        sa.update(errors)
        .where(errors.c.id == sa.bindparam("error_id"))
        .values(replayed=True, replayed_event_id=sa.bindparam("event_row_id")),
        [{"error_id": e, "event_row_id": v} for e, v in sorted(links.items())],
    )
    stats.count_errors(conn, [error for error, _ in passed], -1)
    if inserted:
        bump_counters(conn, WriteResult(stored=len(inserted), duplicates=0, errored=0))
    return links


def store_still_failing(conn: Connection, failing: list[tuple[AnyRow, dict[str, Any]]]) -> None:
    """Give errors that fail again their new reason, message and details (and the session,
    category and name read from their raw event, as a new record would have).

    `failing` pairs each locked error row with its new columns (`EventRejected.record()`).
    """
    if not failing:
        return
    conn.execute(
        sa.update(errors)
        .where(errors.c.id == sa.bindparam("error_id"))
        .values(
            reason=sa.bindparam("new_reason"),
            message=sa.bindparam("new_message"),
            details=sa.bindparam("new_details", type_=errors.c.details.type),
            session_id=sa.bindparam("new_session_id"),
            category=sa.bindparam("new_category"),
            name=sa.bindparam("new_name"),
        ),
        [
            {
                "error_id": error.id,
                **{f"new_{column}": value for column, value in new.items()},
            }
            for error, new in sorted(failing, key=lambda pair: pair[0].id)
        ],
    )
    stats.move_errors(
        conn,
        removed=[error for error, _ in failing],
        added=[
            {
                "received_at": error.received_at,
                "application_id": error.application_id,
                "reason": new["reason"],
            }
            for error, new in failing
        ],
    )
