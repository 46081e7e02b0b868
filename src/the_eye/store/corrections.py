"""Writes that correct stored events: change one, or delete one, keeping sessions and stats right.

Each runs inside a `write_transaction`: the event row is locked first, then its sessions
(in id order), then the rollup rows, the same order every other writer uses.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store import exports, stats
from the_eye.store.queries import EVENT_FIELDS
from the_eye.store.sessions import lock_sessions, recount_sessions
from the_eye.store.tables import AnyRow, events


class EventIdTaken(ValueError):
    """Another event of the same application already has that idempotency key."""


def lock_event(conn: Connection, row_id: int) -> AnyRow | None:
    """The event with this server id, locked until the transaction ends, or None."""
    return conn.execute(
        sa.select(*EVENT_FIELDS).where(events.c.id == row_id).with_for_update()
    ).first()


def change_event(
    conn: Connection, current: AnyRow, values: dict[str, Any], now: datetime
) -> AnyRow:
    """Write the row `values` over the (locked) event `current`; return the changed row.

    `values` is a checked event's row; its application and receipt time are `current`'s."""
    if values["event_id"] != current.event_id:
        taken = conn.execute(
            sa.select(events.c.id).where(
                events.c.application_id == current.application_id,
                events.c.event_id == values["event_id"],
                events.c.id != current.id,
            )
        ).first()
        if taken is not None:
            raise EventIdTaken(
                f"Event {taken.id} of the same application has event_id {values['event_id']!r}."
            )
    try:
        with conn.begin_nested():
            changed = conn.execute(
                sa.update(events)
                .where(events.c.id == current.id)
                .values(**values)
                .returning(*EVENT_FIELDS)
            ).one()
    except sa.exc.IntegrityError:
        # An event with that key was stored between the look-up and the update.
        raise EventIdTaken(f"Another event already has event_id {values['event_id']!r}.") from None
    touched = {current.session_id, changed.session_id}
    lock_sessions(conn, touched, create_at=now)
    recount_sessions(conn, touched)
    stats.move_events(conn, removed=[current], added=[changed])
    exports.mark_changed(conn, [current.timestamp, changed.timestamp])
    return changed


def remove_event(conn: Connection, row_id: int) -> AnyRow | None:
    """Delete one event and recount its session; return the deleted row, or None."""
    deleted = conn.execute(
        sa.delete(events).where(events.c.id == row_id).returning(*EVENT_FIELDS)
    ).first()
    if deleted is None:
        return None
    lock_sessions(conn, [deleted.session_id])
    recount_sessions(conn, [deleted.session_id])
    stats.move_events(conn, removed=[deleted], added=[])
    exports.mark_changed(conn, [deleted.timestamp])
    return deleted
