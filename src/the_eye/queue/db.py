"""The `db` queue: an inbox table in the store's own database.

A processor first takes the oldest free rows in a short transaction of its own, which
counts the delivery (`attempts`) and reserves the rows to it (`taken_at`) for
`inbox_claim_idle` seconds; it checks them outside any lock, then claims them by deleting
them in the transaction that writes their events and errors. So each accepted request is
processed exactly once, or, after a crash, not yet; a processor that dies leaves its rows
reserved until the reservation lapses, and its attempt counted, so that a request that
kills every processor taking it can be set aside. A processor that fails cleanly (the store
went away mid-batch) gives its rows back with their attempt uncounted.

A crash counts an attempt of every row of the batch, though one request alone may have
caused it. So a take that finds a row delivered before keeps that row alone and gives the
others back uncounted, and the next takes hold one row each until they find one never
delivered: only a request's first delivery is shared with others, and a request is set
aside only after it killed processors that held it alone.
"""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.dml import ReturningDelete, ReturningUpdate

from the_eye.queue.base import Delivery, Message, Prepare, Queue, QueueUnavailable
from the_eye.queue.group_commit import ThreadGroupCommit
from the_eye.store.dialect import param_mark
from the_eye.store.tables import AnyRow, counters, inbox
from the_eye.timestamps import utcnow

log = logging.getLogger(__name__)

_COLUMNS = (
    inbox.c.id,
    inbox.c.application_id,
    inbox.c.kind,
    inbox.c.received_at,
    inbox.c.event_ids,
    inbox.c.body,
)

_encode_ids = msgspec.json.Encoder().encode
_decode_ids = msgspec.json.Decoder().decode


def _messages(rows: Sequence[AnyRow]) -> list[Message]:
    return [
        Message(
            application_id=row.application_id,
            kind=row.kind,
            received_at=row.received_at,
            event_ids=_decode_ids(row.event_ids),
            body=row.body,
            queue_id=row.id,
            deliveries=row.attempts,
        )
        for row in sorted(rows, key=lambda r: r.id)
    ]


def _nothing(messages: list[Message]) -> None:
    return None


def _rows(messages: list[Message]) -> list[tuple[Any, ...]]:
    return [
        (
            m.application_id,
            m.kind,
            m.received_at.isoformat(" ", "microseconds"),
            _encode_ids(m.event_ids).decode(),
            m.body,
        )
        for m in messages
    ]


def _take(
    limit: int, now: datetime, idle: timedelta, skip_locked: bool
) -> ReturningUpdate[*tuple[Any, ...]]:
    """Reserve the oldest free rows and count this delivery of each."""
    free = sa.or_(inbox.c.taken_at.is_(None), inbox.c.taken_at < now - idle)
    oldest = sa.select(inbox.c.id).where(free).order_by(inbox.c.id).limit(limit)
    if skip_locked:
        oldest = oldest.with_for_update(skip_locked=True)
    return (
        sa.update(inbox)
        .where(inbox.c.id.in_(oldest.scalar_subquery()))
        .values(attempts=inbox.c.attempts + 1, taken_at=now)
        .returning(*_COLUMNS, inbox.c.attempts)
    )


def _give_back(ids: list[int]) -> sa.Update:
    return (
        sa.update(inbox)
        .where(inbox.c.id.in_(ids))
        .values(attempts=inbox.c.attempts - 1, taken_at=None)
    )


def _claim_ids(ids: list[int]) -> ReturningDelete[*tuple[Any, ...]]:
    return sa.delete(inbox).where(inbox.c.id.in_(ids)).returning(inbox.c.id)


class DatabaseQueue(Queue):
    """The inbox table; the default queue, needing no service beyond the store."""

    def __init__(self, engine: Engine, claim_idle: float = 30.0) -> None:
        self.engine = engine
        self.claim_idle = timedelta(seconds=claim_idle)
        self._one_writer = engine.dialect.name == "sqlite"
        self._group = ThreadGroupCommit(
            self._insert,
            name="inbox-writer",
            write_now=self._insert_if_free if self._one_writer else None,
        )
        self._inline: Any = None
        # Rows a clean failure could not give back (the store was down): returned first.
        self._unreturned: list[int] = []
        self._inline_writes = 0
        # The last take found a row delivered before: take one at a time for a while.
        self._isolating = False
        # The hot path's two statements as plain SQL: compiling Core constructs for every
        # group commit costs more than the insert itself.
        mark = param_mark(engine)
        self._insert_sql = (
            "INSERT INTO inbox (application_id, kind, received_at, event_ids, body) "
            f"VALUES ({mark}, {mark}, {mark}, {mark}, {mark})"
        )
        self._bump_sql = f"UPDATE counters SET value = value + {mark} WHERE name = 'received'"

    async def publish(self, messages: list[Message]) -> None:
        await self._group.submit(messages)

    def _insert_if_free(self, messages: list[Message]) -> bool:
        """Write at once on the calling thread if SQLite's write lock is free, else say no.

        Its own connection never waits for the lock and never checkpoints the WAL, so it
        cannot stall the event loop that calls it; every few hundredth group goes to the
        writer thread instead, whose commit checkpoints when the WAL has grown.
        """
        self._inline_writes += 1
        if self._inline_writes % 256 == 0:
            return False
        if self._inline is None:
            self._inline = self.engine.raw_connection()
            self._inline.execute("PRAGMA busy_timeout=0")
            self._inline.execute("PRAGMA wal_autocheckpoint=0")
        conn = self._inline
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return False
        try:
            conn.executemany(self._insert_sql, _rows(messages))
            conn.execute(self._bump_sql, (sum(len(m.event_ids) for m in messages),))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise QueueUnavailable(str(exc)) from exc
        return True

    def _insert(self, messages: list[Message]) -> None:
        rows = _rows(messages)
        try:
            with self.engine.begin() as conn:
                conn.exec_driver_sql(self._insert_sql, rows)
                conn.exec_driver_sql(self._bump_sql, (sum(len(m.event_ids) for m in messages),))
        except OperationalError as exc:
            raise QueueUnavailable(str(exc.orig)) from exc

    @contextmanager
    def consume(self, limit: int, prepare: Prepare | None = None) -> Iterator[Delivery]:
        prepare = prepare or _nothing
        if self._unreturned:
            self._give_back([])
        messages = self._take(1 if self._isolating else limit)
        with self.engine.connect() as conn:
            if not messages:
                yield Delivery(messages, conn, prepare(messages))
                return
            yield from self._claim_prepared(conn, messages, prepare)

    def _take(self, limit: int) -> list[Message]:
        """Reserve and count, committed before any processing, so a crash still counts;
        a row delivered before comes alone, the others taken with it go back uncounted."""
        statement = _take(limit, utcnow(), self.claim_idle, skip_locked=not self._one_writer)
        with self.engine.begin() as conn:
            messages = _messages(conn.execute(statement).all())
            suspect = next((m for m in messages if m.deliveries > 1), None)
            self._isolating = suspect is not None
            if suspect is None or len(messages) == 1:
                return messages
            conn.execute(_give_back([m.queue_id for m in messages if m is not suspect]))
            return [suspect]

    def _claim_prepared(
        self, conn: Connection, messages: list[Message], prepare: Prepare
    ) -> Iterator[Delivery]:
        """Prepare outside any lock (SQLite's one write lock is ingest's too), then claim
        and write in one transaction."""
        prepared = prepare(messages)
        try:
            with conn.begin():
                owned = set(conn.execute(_claim_ids([m.queue_id for m in messages])).scalars())
                if len(owned) != len(messages):
                    # Our reservation lapsed and another processor took some: keep ours.
                    messages = [m for m in messages if m.queue_id in owned]
                    prepared = prepare(messages)
                yield Delivery(messages, conn, prepared)
        except BaseException:
            self._give_back([m.queue_id for m in messages])
            raise

    def _give_back(self, ids: list[int]) -> None:
        """Release rows a processor failed cleanly on, their attempt uncounted: a store
        outage is not the request's fault. When the store is still down, the next
        `consume` tries again before it takes anything."""
        self._unreturned += ids
        try:
            with self.engine.begin() as conn:
                conn.execute(_give_back(self._unreturned))
        except Exception as exc:
            log.warning(
                "could not give back %d inbox rows yet (%s)",
                len(self._unreturned),
                type(exc).__name__,
            )
            if not ids:
                raise
        else:
            self._unreturned = []

    def has_messages(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(inbox.c.id).limit(1)).first() is not None

    def depth(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar_one()

    def oldest_received_at(self) -> datetime | None:
        # Ids follow arrival, and the primary key finds the first without a scan.
        with self.engine.connect() as conn:
            oldest = sa.select(inbox.c.received_at).order_by(inbox.c.id).limit(1)
            return conn.execute(oldest).scalar()

    def received_total(self) -> int:
        with self.engine.connect() as conn:
            query = sa.select(counters.c.value).where(counters.c.name == "received")
            return conn.execute(query).scalar() or 0

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.select(inbox.c.id).limit(1))

    def close(self) -> None:
        self._group.close()
        if self._inline is not None:
            self._inline.close()
