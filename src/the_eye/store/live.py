"""The newest stored events, for a view that follows them as they arrive.

Events come newest stored first, by `id` (ids grow as events are stored), and a view that
already shows some asks only for ids above the newest it has. Unfiltered, that is a walk
down the primary key that stops after `limit` rows. With a filter (application, category,
name) the walk is bounded too: it looks only at the newest `LOOK_BACK` stored events, so a
type that is rare or absent costs a bounded range of the primary key, never a scan of the
whole table. Older events are for the keyset-paged event list.

On PostgreSQL with several processors an event can become visible after one with a higher
id (its transaction committed later), and a follower that already moved past it misses it:
this view is for watching, the event list is the record.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store.queries import EVENT_FIELDS
from the_eye.store.tables import AnyRow, events

# How many of the newest stored events a filtered view looks through.
LOOK_BACK = 20_000


@dataclass(frozen=True, slots=True)
class LiveFilter:
    """Which events the view follows; a field left None does not filter."""

    application_id: int | None = None
    category: str | None = None
    name: str | None = None

    @property
    def filters(self) -> bool:
        return any(v is not None for v in (self.application_id, self.category, self.name))


@dataclass(frozen=True, slots=True)
class LiveRows:
    """Events newest first; `newest_id` is what the next request passes as `after` (the
    store's newest id when there were no rows, so that only later events come); `more`
    says that more events matched than `limit` (the view skips the older ones)."""

    rows: Sequence[AnyRow]
    newest_id: int
    more: bool


def newest_id(conn: Connection) -> int:
    """The highest event id stored (0 for none): one step down the primary key."""
    return int(conn.execute(sa.select(sa.func.max(events.c.id))).scalar() or 0)


def select_newest(where: LiveFilter, above: int, limit: int) -> sa.Select[Any]:
    """Events with an id above `above` that `where` matches, newest stored first."""
    stmt = sa.select(*EVENT_FIELDS).where(events.c.id > above)
    # Expressions, not the bare columns: SQLite (which keeps no statistics) would otherwise
    # read a whole category through its index and sort it, rather than walk the bounded
    # range of ids. PostgreSQL picks the id range on its own.
    if where.application_id is not None:
        stmt = stmt.where(events.c.application_id + 0 == where.application_id)
    if where.category is not None:
        stmt = stmt.where(events.c.category.concat("") == where.category)
    if where.name is not None:
        stmt = stmt.where(events.c.name.concat("") == where.name)
    return stmt.order_by(events.c.id.desc()).limit(limit)


def newest_events(conn: Connection, where: LiveFilter, after: int | None, limit: int) -> LiveRows:
    """Up to `limit` events above id `after` that `where` matches, newest stored first."""
    top = newest_id(conn)
    above = after or 0
    if where.filters:
        above = max(above, top - LOOK_BACK)
    rows = conn.execute(select_newest(where, above, limit + 1)).all()
    more = len(rows) > limit
    rows = rows[:limit]
    newest = int(rows[0].id) if rows else max(top, after or 0)
    return LiveRows(rows, newest, more)
