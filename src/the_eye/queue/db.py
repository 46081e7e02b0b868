"""The `db` queue: an inbox table in the store's own database.

Processing claims rows by deleting them in the transaction that writes their events and
errors, so each accepted request is processed exactly once, or, after a crash, not yet.
On PostgreSQL the claim skips rows other processors hold (`FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.dml import ReturningDelete

from the_eye.queue.base import Delivery, Message, Prepare, Queue, QueueUnavailable
from the_eye.queue.group_commit import ThreadGroupCommit
from the_eye.store.dialect import param_mark
from the_eye.store.tables import AnyRow, counters, inbox

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


def _peek(limit: int) -> sa.Select[*tuple[Any, ...]]:
    return sa.select(*_COLUMNS).order_by(inbox.c.id).limit(limit)


def _claim_ids(ids: list[int]) -> ReturningDelete[*tuple[Any, ...]]:
    return sa.delete(inbox).where(inbox.c.id.in_(ids)).returning(inbox.c.id)


def _claim(limit: int) -> ReturningDelete[*tuple[Any, ...]]:
    oldest = (
        sa.select(inbox.c.id).order_by(inbox.c.id).limit(limit).with_for_update(skip_locked=True)
    )
    return sa.delete(inbox).where(inbox.c.id.in_(oldest.scalar_subquery())).returning(*_COLUMNS)


class DatabaseQueue(Queue):
    """The inbox table; the default queue, needing no service beyond the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._one_writer = engine.dialect.name == "sqlite"
        self._group = ThreadGroupCommit(
            self._insert,
            name="inbox-writer",
            write_now=self._insert_if_free if self._one_writer else None,
        )
        self._inline: Any = None
        self._inline_writes = 0
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
        with self.engine.connect() as conn:
            if self._one_writer:
                yield from self._consume_prepared_first(conn, limit, prepare)
                return
            with conn.begin():
                messages = _messages(conn.execute(_claim(limit)).all())
                yield Delivery(messages, conn, prepare(messages))

    def _consume_prepared_first(
        self, conn: Connection, limit: int, prepare: Prepare
    ) -> Iterator[Delivery]:
        """SQLite has one write lock for the whole file, which ingest needs too: read and
        prepare the oldest messages first, then take the lock only to claim and write."""
        messages = _messages(conn.execute(_peek(limit)).all())
        conn.rollback()  # end the read snapshot, so the write below starts from a fresh one
        prepared = prepare(messages)
        if not messages:
            yield Delivery(messages, conn, prepared)
            return
        with conn.begin():
            claimed = _claim_ids([m.queue_id for m in messages])
            owned = set(conn.execute(claimed).scalars())
            if len(owned) != len(messages):
                # Another processor claimed some of them meanwhile: keep only ours.
                messages = [m for m in messages if m.queue_id in owned]
                prepared = prepare(messages)
            yield Delivery(messages, conn, prepared)

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
