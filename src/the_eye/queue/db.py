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
  the inbox. A processor that dies between the two leaves the rows to be delivered again,
  and the second delivery changes nothing: events are kept once by `(application,
  event_id)`, and error records by the message's `delivery_key` (the inbox file's own
  random key and the row's id), as with the Redis queue. The file also keeps the count of
  received events, bumped in the transaction that appends. Rows that an earlier version
  queued in the store's own inbox table are moved into the file when it is created.

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
    return DatabaseQueue(engine, settings.inbox_claim_idle, inbox_engine, key)


def _prepare_inbox_file(inbox_engine: Engine, store: Engine) -> str:
    """Create the inbox file's tables once, move into it what the store's own inbox table
    holds, and return the file's key.

    The move commits in the inbox file first, then empties the store's table: a crash in
    between leaves rows in both, and the next start, finding the file made, empties the
    store's table again. No version that writes to the file writes to the store's table.
    """
    with write_transaction(inbox_engine) as conn:
        _inbox_file_metadata.create_all(conn)
        key = conn.execute(sa.select(_inbox_key.c.key)).scalar()
        if key is None:
            key = secrets.token_hex(8)
            conn.execute(sa.insert(_inbox_key).values(key=key))
            _move_from_store(store, conn)
    if sa.inspect(store).has_table(inbox.name):
        with store.begin() as conn:
            conn.execute(sa.delete(inbox))
    return str(key)


def _move_from_store(store: Engine, into: Connection) -> None:
    received = 0
    rows: list[dict[str, Any]] = []
    if sa.inspect(store).has_table(inbox.name):
        with store.connect() as conn:
            rows = [dict(row._mapping) for row in conn.execute(sa.select(inbox))]
            query = sa.select(counters.c.value).where(counters.c.name == "received")
            received = conn.execute(query).scalar() or 0
    if rows:
        into.execute(sa.insert(inbox), rows)  # ids kept, so the next ones follow them
    into.execute(sa.insert(counters).values(name="received", value=received))
    if rows:
        log.info("moved %d queued requests from the store into the inbox file", len(rows))


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
    ) -> None:
        self.engine = engine
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
            self._inline = self.inbox_engine.raw_connection()
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
        a row delivered before comes alone, the others taken with it go back uncounted."""
        statement = _take(limit, utcnow(), self.claim_idle, skip_locked=not self._one_writer)
        with self.inbox_engine.begin() as conn:
            messages = _messages(conn.execute(statement).all(), self._inbox_key)
            suspect = next((m for m in messages if m.deliveries > 1), None)
            self._isolating = suspect is not None
            if suspect is None or len(messages) == 1:
                return messages
            conn.execute(_give_back([m.queue_id for m in messages if m is not suspect]))
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
        if self._inline is not None:
            self._inline.close()
        if self._separate:
            self.inbox_engine.dispose()
