"""The `db` queue: an inbox table in the store's own database.

Processing claims rows by deleting them in the transaction that writes their events and
errors, so each accepted request is processed exactly once, or, after a crash, not yet.
On PostgreSQL the claim skips rows other processors hold (`FOR UPDATE SKIP LOCKED`).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from the_eye.queue.base import Delivery, Message, Queue, QueueUnavailable
from the_eye.queue.group_commit import GroupCommit
from the_eye.store.tables import counters, inbox

_bump_received = (
    sa.update(counters)
    .where(counters.c.name == "received")
    .values(value=counters.c.value + sa.bindparam("n"))
)


def _claim(limit: int) -> sa.Delete:
    oldest = (
        sa.select(inbox.c.id).order_by(inbox.c.id).limit(limit).with_for_update(skip_locked=True)
    )
    return (
        sa.delete(inbox)
        .where(inbox.c.id.in_(oldest.scalar_subquery()))
        .returning(
            inbox.c.id,
            inbox.c.application_id,
            inbox.c.kind,
            inbox.c.received_at,
            inbox.c.event_ids,
            inbox.c.body,
        )
    )


class DatabaseQueue(Queue):
    """The inbox table; the default queue, needing no service beyond the store."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._group = GroupCommit(self._insert, name="inbox-writer")

    async def publish(self, messages: list[Message]) -> None:
        await self._group.submit(messages)

    def _insert(self, messages: list[Message]) -> None:
        rows = [
            {
                "application_id": m.application_id,
                "kind": m.kind,
                "received_at": m.received_at,
                "event_ids": orjson.dumps(m.event_ids).decode(),
                "body": m.body,
            }
            for m in messages
        ]
        try:
            with self.engine.begin() as conn:
                conn.execute(inbox.insert(), rows)
                conn.execute(_bump_received, {"n": sum(len(m.event_ids) for m in messages)})
        except OperationalError as exc:
            raise QueueUnavailable(str(exc.orig)) from exc

    @contextmanager
    def consume(self, limit: int) -> Iterator[Delivery]:
        with self.engine.connect() as conn, conn.begin():
            rows = conn.execute(_claim(limit)).all()
            messages = [
                Message(
                    application_id=row.application_id,
                    kind=row.kind,
                    received_at=row.received_at,
                    event_ids=orjson.loads(row.event_ids),
                    body=row.body,
                    queue_id=row.id,
                )
                for row in sorted(rows, key=lambda r: r.id)
            ]
            yield Delivery(messages, conn)

    def has_messages(self) -> bool:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(inbox.c.id).limit(1)).first() is not None

    def depth(self) -> int:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(inbox)).scalar_one()

    def oldest_received_at(self) -> datetime | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(sa.func.min(inbox.c.received_at))).scalar()

    def received_total(self) -> int:
        with self.engine.connect() as conn:
            query = sa.select(counters.c.value).where(counters.c.name == "received")
            return conn.execute(query).scalar() or 0

    def ping(self) -> None:
        with self.engine.connect() as conn:
            conn.execute(sa.select(inbox.c.id).limit(1))

    def close(self) -> None:
        self._group.close()
