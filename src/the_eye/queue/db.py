"""The `db` queue: an inbox table, in the store's own database or, when the store is a
SQLite file, in a SQLite file of its own beside it.

A processor first takes the oldest free rows in a short transaction of its own, which
counts the delivery (`attempts`) and reserves the rows to it (`taken_at`) for
`inbox_claim_idle` seconds, and checks them outside any lock. What happens next depends on
where the inbox is:

- In the store's database (PostgreSQL): the processor claims the rows by deleting them in
  the transaction that writes their events and errors. So each accepted request is
  processed exactly once, or, after a crash, not yet.
- In a file of its own (SQLite): SQLite has one write lock per file, so ingest appends
  to the inbox without ever waiting for a processor's transaction in the store. A
  processor writes the events and errors, commits the store, then deletes the rows from
  the inbox. A processor that dies between the two (or whose reservation lapsed in a
  batch longer than `inbox_claim_idle`) leaves the rows to be delivered again, at least
  once as with the Redis queue, and the second delivery stores nothing twice: events are
  kept once by `(application, event_id)`, and error records by the message's
  `delivery_key` (the inbox file's own random key and the row's id). It counts its
  events again, as duplicates; and, as on Redis, it is checked again, so a schema
  registered in between may keep as an error an event the first delivery stored. The
  file also keeps the count of received events, bumped in the transaction that appends.
  Rows that an earlier version queued in the store's own inbox table are moved into the
  file whenever a queue opens.

A processor that dies leaves its rows reserved until the reservation lapses, and its
attempt counted, so that a request that kills every processor taking it can be set aside.
A processor that fails cleanly (the store went away) gives its rows back with their attempt
uncounted.

A crash counts an attempt of every row of the batch, though one request alone may have
caused it. So a take that finds a row delivered before keeps that row alone and gives the
others back uncounted, and the next takes hold one row each until they find one never
delivered: only a request's first delivery is shared with others, and a request is set
aside only after it killed processors that held it alone.
"""

from __future__ import annotations

import logging
import secrets
import sqlite3
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.sql.dml import ReturningDelete, ReturningUpdate

from the_eye.config import Settings
from the_eye.queue.base import Delivery, Message, Prepare, Queue, QueueUnavailable
from the_eye.queue.group_commit import ThreadGroupCommit
from the_eye.store.dialect import param_mark
from the_eye.store.engine import sqlite_engine, sqlite_file, write_transaction
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

# An inbox file's own tables: the inbox and its received counter as in the store, and the
# file's random key, which keeps the delivery keys of its rows apart from those of any
# earlier inbox file (ids start again in a new file).
_inbox_file_metadata = sa.MetaData()
for _table in (inbox, counters):
    _table.to_metadata(_inbox_file_metadata)
_inbox_key = sa.Table(
    "inbox_key", _inbox_file_metadata, sa.Column("key", sa.String(64), primary_key=True)
)
# The store ids of the rows moved in from the store's own inbox table, so that a move that
# stopped half way is finished without taking a row twice.
_inbox_moved = sa.Table(
    "inbox_moved", _inbox_file_metadata, sa.Column("store_id", sa.BigInteger, primary_key=True)
)
# How much of the store's count of received events the file's count holds already.
_CARRIED = "received_in_store"
MOVE_CHUNK = 1000


def inbox_file(store: Path) -> Path:
    """Where the inbox of a SQLite store lives: `the-eye.db` keeps it in `the-eye.inbox.db`."""
    return store.with_name(f"{store.stem}.inbox{store.suffix}")


def open_database_queue(settings: Settings, engine: Engine) -> DatabaseQueue:
    """The `db` queue of this store: in a file of its own beside a SQLite file, else in the
    store's database."""
    store = sqlite_file(str(engine.url)) if engine.dialect.name == "sqlite" else None
    if store is None:
        return DatabaseQueue(engine, settings.inbox_claim_idle)
    inbox_engine = sqlite_engine(f"sqlite:///{inbox_file(store)}", settings)
    try:
        key = _prepare_inbox_file(inbox_engine, engine)
    except BaseException:
        inbox_engine.dispose()
        raise
    busy_timeout = settings.sqlite_busy_timeout_ms / 1000
    return DatabaseQueue(engine, settings.inbox_claim_idle, inbox_engine, key, busy_timeout)


def _prepare_inbox_file(inbox_engine: Engine, store: Engine) -> str:
    """Create the inbox file's tables once, move into it what the store's own inbox table
    holds, and return the file's key."""
    with write_transaction(inbox_engine) as conn:
        _inbox_file_metadata.create_all(conn)
        key = conn.execute(sa.select(_inbox_key.c.key)).scalar()
        if key is None:
            key = secrets.token_hex(8)
            conn.execute(sa.insert(_inbox_key).values(key=key))
            conn.execute(
                sa.insert(counters),
                [{"name": "received", "value": 0}, {"name": _CARRIED, "value": 0}],
            )
    if sa.inspect(store).has_table(inbox.name):
        _move_from_store(store, inbox_engine)
    return str(key)


def _move_from_store(store: Engine, inbox_engine: Engine) -> None:
    """Move the requests queued in the store's own inbox table (by an earlier version, or by
    one still running during an upgrade) into the file, `MOVE_CHUNK` at a time, with the
    received events the store counted since the last move.

    Each chunk goes into the file with the store ids it came from, in one transaction, and
    only then out of the store: a crash in between leaves rows in both, and the next move,
    finding their ids taken, only deletes them from the store."""
    moved = 0
    while True:
        with store.begin() as conn:  # the rows and the count they were counted in, together
            rows = [
                dict(row._mapping)
                for row in conn.execute(sa.select(inbox).order_by(inbox.c.id).limit(MOVE_CHUNK))
            ]
            query = sa.select(counters.c.value).where(counters.c.name == "received")
            received = conn.execute(query).scalar() or 0
        ids = [row.pop("id") for row in rows]
        with write_transaction(inbox_engine) as conn:
            _carry_received(conn, received)
            taken = set(
                conn.execute(
                    sa.select(_inbox_moved.c.store_id).where(_inbox_moved.c.store_id.in_(ids))
                ).scalars()
            )
            new = [(id_, row) for id_, row in zip(ids, rows, strict=True) if id_ not in taken]
            if new:
                conn.execute(sa.insert(inbox), [row for _, row in new])
                conn.execute(sa.insert(_inbox_moved), [{"store_id": id_} for id_, _ in new])
        if not ids:
            break
        with store.begin() as conn:
            conn.execute(sa.delete(inbox).where(inbox.c.id.in_(ids)))
        moved += len(new)
    if moved:
        log.info("moved %d queued requests from the store into the inbox file", moved)


def _carry_received(conn: Connection, store_received: int) -> None:
    """Add to the file's count what the store's count gained since it was last carried."""
    carried = conn.execute(
        sa.select(counters.c.value).where(counters.c.name == _CARRIED)
    ).scalar_one()
    if store_received > carried:
        gained = store_received - carried
        bump = counters.c.value + gained
        conn.execute(sa.update(counters).where(counters.c.name == "received").values(value=bump))
        conn.execute(
            sa.update(counters).where(counters.c.name == _CARRIED).values(value=store_received)
        )


def _messages(rows: Sequence[AnyRow], key: str | None) -> list[Message]:
    return [
        Message(
            application_id=row.application_id,
            kind=row.kind,
            received_at=row.received_at,
            event_ids=_decode_ids(row.event_ids),
            body=row.body,
            queue_id=row.id,
            delivery_key=None if key is None else f"{key}:{row.id}",
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
    limit: int, now: datetime, idle: timedelta, skip_locked: bool, columns: Sequence[Any]
) -> ReturningUpdate[*tuple[Any, ...]]:
    """Reserve the oldest free rows and count this delivery of each; return `columns`."""
    free = sa.or_(inbox.c.taken_at.is_(None), inbox.c.taken_at < now - idle)
    oldest = sa.select(inbox.c.id).where(free).order_by(inbox.c.id).limit(limit)
    if skip_locked:
        oldest = oldest.with_for_update(skip_locked=True)
    return (
        sa.update(inbox)
        .where(inbox.c.id.in_(oldest.scalar_subquery()))
        .values(attempts=inbox.c.attempts + 1, taken_at=now)
        .returning(*columns, inbox.c.attempts)
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
    """The inbox table; the default queue, needing no service beyond the store.

    `inbox_engine`, when given, is the SQLite file the inbox lives in, apart from the store
    (`engine`), and `inbox_key` that file's key; without it the inbox is a table of the store.
    """

    def __init__(
        self,
        engine: Engine,
        claim_idle: float = 30.0,
        inbox_engine: Engine | None = None,
        inbox_key: str | None = None,
        busy_timeout: float = 5.0,
    ) -> None:
        self.engine = engine
        self.busy_timeout = busy_timeout
        self.inbox_engine = inbox_engine or engine
        self._separate = inbox_engine is not None
        self._inbox_key = inbox_key if self._separate else None
        self.claim_idle = timedelta(seconds=claim_idle)
        self._one_writer = self.inbox_engine.dialect.name == "sqlite"
        self._group = ThreadGroupCommit(
            self._insert,
            name="inbox-writer",
            write_now=self._insert_if_free if self._one_writer else None,
        )
        self._inline: Any = None
        self._writer: Any = None
        # Rows a clean failure could not give back (the store was down): returned first.
        self._unreturned: list[int] = []
        # Rows whose events the store has committed but the inbox file still holds.
        self._undeleted: list[int] = []
        self._inline_writes = 0
        self._checkpointer = ThreadPoolExecutor(1, thread_name_prefix="inbox-checkpoint")
        self._checkpointing = False
        # The last take found a row delivered before: take one at a time for a while.
        self._isolating = False
        # The hot path's two statements as plain SQL: compiling Core constructs for every
        # group commit costs more than the insert itself.
        mark = param_mark(self.inbox_engine)
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
        cannot stall the event loop that calls it; every few hundredth group asks a thread
        of its own to checkpoint, which no write waits for.
        """
        self._inline_writes += 1
        if self._inline_writes % 256 == 0:
            self._checkpoint_soon()
        if self._inline is None:
            self._inline = self._impatient_connection()
        return self._write_if_free(self._inline, messages)

    def _impatient_connection(self) -> Any:
        conn = self.inbox_engine.raw_connection()
        conn.execute("PRAGMA busy_timeout=0")
        conn.execute("PRAGMA wal_autocheckpoint=0")
        return conn

    def _write_if_free(self, conn: Any, messages: list[Message]) -> bool:
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED):
                return False
            raise QueueUnavailable(str(exc)) from exc
        try:
            conn.executemany(self._insert_sql, _rows(messages))
            conn.execute(self._bump_sql, (sum(len(m.event_ids) for m in messages),))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise QueueUnavailable(str(exc)) from exc
        return True

    def _insert_when_free(self, messages: list[Message]) -> None:
        """The writer thread's write on SQLite: it asks for the lock every millisecond until
        the busy timeout, where SQLite's own busy handler would sleep in steps that grow to
        100 ms, keeping a whole group waiting long after a processor's short hold ended."""
        if self._writer is None:
            self._writer = self._impatient_connection()
        deadline = time.monotonic() + self.busy_timeout
        while not self._write_if_free(self._writer, messages):
            if time.monotonic() > deadline:
                raise QueueUnavailable("the inbox stayed locked past the busy timeout")
            time.sleep(0.001)

    def _checkpoint_soon(self) -> None:
        if not self._checkpointing:
            self._checkpointing = True
            self._checkpointer.submit(self._checkpoint)

    def _checkpoint(self) -> None:
        """Copy the WAL back into the inbox file, PASSIVE: it waits for no reader or writer,
        and leaves what it cannot copy now to the next time."""
        try:
            with self.inbox_engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA wal_checkpoint(PASSIVE)")
        except Exception as exc:
            log.warning("inbox checkpoint failed (%s)", type(exc).__name__)
        finally:
            self._checkpointing = False

    def _insert(self, messages: list[Message]) -> None:
        if self._one_writer:
            self._insert_when_free(messages)
            return
        rows = _rows(messages)
        try:
            with self.inbox_engine.begin() as conn:
                conn.exec_driver_sql(self._insert_sql, rows)
                conn.exec_driver_sql(self._bump_sql, (sum(len(m.event_ids) for m in messages),))
        except OperationalError as exc:
            raise QueueUnavailable(str(exc.orig)) from exc

    @contextmanager
    def consume(self, limit: int, prepare: Prepare | None = None) -> Iterator[Delivery]:
        prepare = prepare or _nothing
        if self._unreturned:
            self._give_back([])
        if self._undeleted:
            self._delete([])
        messages = self._take(1 if self._isolating else limit)
        with self.engine.connect() as conn:
            if not messages:
                yield Delivery(messages, conn, prepare(messages))
            elif self._separate:
                yield from self._write_then_delete(conn, messages, prepare)
            else:
                yield from self._claim_prepared(conn, messages, prepare)

    def _take(self, limit: int) -> list[Message]:
        """Reserve and count, committed before any processing, so a crash still counts;
        a row delivered before comes alone, the others taken with it go back uncounted.

        On SQLite the write lock is ingest's too: it is held to reserve ids alone, and the
        rows, bodies and all, are read once it is released."""
        columns = (inbox.c.id,) if self._one_writer else _COLUMNS
        statement = _take(limit, utcnow(), self.claim_idle, not self._one_writer, columns)
        with self.inbox_engine.begin() as conn:
            taken = self._alone_if_suspect(conn, conn.execute(statement).all())
        if self._one_writer and taken:
            read = sa.select(*_COLUMNS, inbox.c.attempts)
            with self.inbox_engine.connect() as conn:
                taken = conn.execute(read.where(inbox.c.id.in_([r.id for r in taken]))).all()
        return _messages(taken, self._inbox_key)

    def _alone_if_suspect(self, conn: Connection, taken: Sequence[AnyRow]) -> Sequence[AnyRow]:
        suspect = next((row for row in taken if row.attempts > 1), None)
        self._isolating = suspect is not None
        if suspect is None or len(taken) == 1:
            return taken
        conn.execute(_give_back([row.id for row in taken if row is not suspect]))
        return [suspect]

    def _claim_prepared(
        self, conn: Connection, messages: list[Message], prepare: Prepare
    ) -> Iterator[Delivery]:
        """Prepare outside any lock, then claim and write in one transaction."""
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

    def _write_then_delete(
        self, conn: Connection, messages: list[Message], prepare: Prepare
    ) -> Iterator[Delivery]:
        """Prepare outside any lock, write and commit the store, then delete the rows from
        the inbox file; delivered again after a crash in between, they change nothing."""
        prepared = prepare(messages)
        ids = [m.queue_id for m in messages]
        try:
            with conn.begin():
                yield Delivery(messages, conn, prepared)
        except BaseException:
            self._give_back(ids)
            raise
        self._delete(ids)

    def _delete(self, ids: list[int]) -> None:
        """Remove rows the store has committed. When the inbox file cannot be written now,
        the next `consume` tries again first; until then the rows stay reserved."""
        self._undeleted += ids
        with self.inbox_engine.begin() as conn:
            conn.execute(sa.delete(inbox).where(inbox.c.id.in_(self._undeleted)))
        self._undeleted = []

    def _give_back(self, ids: list[int]) -> None:
        """Release rows a processor failed cleanly on, their attempt uncounted: a store
        outage is not the request's fault. When the store is still down, the next
        `consume` tries again before it takes anything."""
        self._unreturned += ids
        try:
            with self.inbox_engine.begin() as conn:
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
        with self.inbox_engine.connect() as conn:
            return conn.execute(sa.select(inbox.c.id).limit(1)).first() is not None

    def depth(self) -> int:
        with self.inbox_engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar_one()

    def oldest_received_at(self) -> datetime | None:
        # Ids follow arrival, and the primary key finds the first without a scan.
        with self.inbox_engine.connect() as conn:
            oldest = sa.select(inbox.c.received_at).order_by(inbox.c.id).limit(1)
            return conn.execute(oldest).scalar()

    def received_total(self) -> int:
        with self.inbox_engine.connect() as conn:
            query = sa.select(counters.c.value).where(counters.c.name == "received")
            return conn.execute(query).scalar() or 0

    def ping(self) -> None:
        with self.inbox_engine.connect() as conn:
            conn.execute(sa.select(inbox.c.id).limit(1))

    def close(self) -> None:
        self._group.close()
        self._checkpointer.shutdown(wait=True)
        for conn in (self._inline, self._writer):
            if conn is not None:
                conn.close()
        if self._separate:
            self.inbox_engine.dispose()
