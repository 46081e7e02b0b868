"""Read-only queries of the store, keyset-paginated: never OFFSET over a big table."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from the_eye.store.tables import AnyRow, applications, counters, errors, events, sessions


@dataclass(slots=True)
class Keyset:
    """A sort order a list can be paged through: a key column, then the row id, ascending or not."""

    key: sa.Column[Any]
    id: sa.Column[Any]
    descending: bool

    def order_by(self) -> list[sa.ColumnElement[Any]]:
        if self.descending:
            return [self.key.desc(), self.id.desc()]
        return [self.key.asc(), self.id.asc()]

    def after(self, key: Any, row_id: Any) -> sa.ColumnElement[bool]:
        """Rows that come after (key, row_id) in this order."""
        if self.descending:
            return sa.or_(self.key < key, sa.and_(self.key == key, self.id < row_id))
        return sa.or_(self.key > key, sa.and_(self.key == key, self.id > row_id))


EVENTS_NEWEST_FIRST = Keyset(events.c.timestamp, events.c.id, descending=True)
EVENTS_OLDEST_FIRST = Keyset(events.c.timestamp, events.c.id, descending=False)
SESSIONS_NEWEST_FIRST = Keyset(sessions.c.created_at, sessions.c.id, descending=True)
ERRORS_NEWEST_FIRST = Keyset(errors.c.received_at, errors.c.id, descending=True)
ERRORS_OLDEST_FIRST = Keyset(errors.c.received_at, errors.c.id, descending=False)

EVENT_FIELDS = (
    events.c.id,
    events.c.event_id,
    events.c.session_id,
    events.c.application_id,
    events.c.category,
    events.c.name,
    events.c.data,
    events.c.timestamp,
    events.c.received_at,
)
ERROR_LIST_COLUMNS = (
    errors.c.id,
    errors.c.application_id,
    errors.c.event_id,
    errors.c.reason,
    errors.c.message,
    errors.c.details,
    errors.c.received_at,
    errors.c.replayed,
    errors.c.replayed_event_id,
    errors.c.session_id,
    errors.c.category,
    errors.c.name,
)


def page(
    conn: Connection,
    stmt: sa.Select[Any],
    keyset: Keyset,
    after: tuple[Any, Any] | None,
    limit: int,
) -> tuple[Sequence[AnyRow], tuple[Any, Any] | None]:
    """One page of `stmt` in `keyset` order, and the position to continue from (or None)."""
    if after is not None:
        stmt = stmt.where(keyset.after(*after))
    rows = conn.execute(stmt.order_by(*keyset.order_by()).limit(limit + 1)).all()
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    last = rows[-1]._mapping
    return rows, (last[keyset.key.key], last[keyset.id.key])


def application_names(conn: Connection) -> dict[int, str]:
    return dict(conn.execute(sa.select(applications.c.id, applications.c.name)).all())


def application_id(conn: Connection, name: str) -> int | None:
    return conn.execute(sa.select(applications.c.id).where(applications.c.name == name)).scalar()


def select_events(
    *,
    session: str | None = None,
    category: str | None = None,
    name: str | None = None,
    application_id: int | None = None,
    timestamp_gte: datetime | None = None,
    timestamp_lte: datetime | None = None,
) -> sa.Select[Any]:
    stmt = sa.select(*EVENT_FIELDS)
    for column, value in (
        (events.c.session_id, session),
        (events.c.category, category),
        (events.c.name, name),
        # An expression, not the bare column: SQLite keeps no statistics and would otherwise
        # walk the (application_id, event_id) index through every event of the application
        # instead of the timestamp index.
        (events.c.application_id + 0, application_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if timestamp_gte is not None:
        stmt = stmt.where(events.c.timestamp >= timestamp_gte)
    if timestamp_lte is not None:
        stmt = stmt.where(events.c.timestamp <= timestamp_lte)
    return stmt


def get_event(conn: Connection, event_id: int) -> AnyRow | None:
    return conn.execute(sa.select(*EVENT_FIELDS).where(events.c.id == event_id)).first()


def select_sessions(
    *,
    application_id: int | None = None,
    last_seen_gte: datetime | None = None,
    last_seen_lte: datetime | None = None,
) -> sa.Select[Any]:
    stmt = sa.select(sessions)
    if application_id is not None:
        stmt = stmt.where(
            sa.exists().where(
                events.c.session_id == sessions.c.id, events.c.application_id == application_id
            )
        )
    if last_seen_gte is not None:
        stmt = stmt.where(sessions.c.last_seen >= last_seen_gte)
    if last_seen_lte is not None:
        stmt = stmt.where(sessions.c.last_seen <= last_seen_lte)
    return stmt


def get_session(conn: Connection, session_id: str) -> AnyRow | None:
    return conn.execute(sa.select(sessions).where(sessions.c.id == session_id)).first()


@dataclass(slots=True, frozen=True)
class ErrorFilter:
    """Which errors a list or a bulk replay takes; a field left None does not filter."""

    reason: str | None = None
    application_id: int | None = None
    received_at_gte: datetime | None = None
    received_at_lte: datetime | None = None
    replayed: bool | None = None
    session_id: str | None = None
    category: str | None = None
    name: str | None = None


def select_errors(where: ErrorFilter) -> sa.Select[Any]:
    """The errors `where` matches, without their payloads."""
    stmt = sa.select(*ERROR_LIST_COLUMNS)
    for column, value in (
        (errors.c.reason, where.reason),
        (errors.c.application_id, where.application_id),
        (errors.c.session_id, where.session_id),
        (errors.c.category, where.category),
        (errors.c.name, where.name),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if where.received_at_gte is not None:
        stmt = stmt.where(errors.c.received_at >= where.received_at_gte)
    if where.received_at_lte is not None:
        stmt = stmt.where(errors.c.received_at <= where.received_at_lte)
    if where.replayed is not None:
        stmt = stmt.where(errors.c.replayed == where.replayed)
    return stmt


def count_errors(conn: Connection, where: ErrorFilter) -> int:
    """How many errors `where` matches (what a bulk replay with it goes through)."""
    return conn.execute(
        sa.select(sa.func.count()).select_from(select_errors(where).subquery())
    ).scalar_one()


def get_error(conn: Connection, error_id: int) -> AnyRow | None:
    return conn.execute(sa.select(errors).where(errors.c.id == error_id)).first()


def counter_values(conn: Connection) -> dict[str, int]:
    return dict(conn.execute(sa.select(counters.c.name, counters.c.value)).all())
