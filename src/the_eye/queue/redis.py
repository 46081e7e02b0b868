"""The `redis` queue: a Redis stream with one consumer group shared by every processor.

Ingest appends one entry per accepted request; processors read entries with XREADGROUP,
write them to the store, and only after the store commits acknowledge and delete them, so
the stream holds exactly what waits or is in flight. Entries that a dead processor left
pending are taken over with XAUTOCLAIM once they have been idle for `redis_claim_idle`.
Delivery is at least once: a message can come twice if a processor dies between the store
commit and the acknowledgement. Events are deduplicated by their idempotency key and error
records by the message's `delivery_key`, so a second delivery changes nothing.

Redis counts the deliveries of each entry; a message carries its count, less the times this
processor failed cleanly on it (the store went away), so that a request that kills every
processor taking it can be set aside. As with the `db` queue, a take that finds an entry
delivered before keeps it alone and gives the others back with their count lowered again
(XCLAIM RETRYCOUNT), then takes one entry at a time until it finds one never delivered: a
request is set aside only after it killed processors that held it alone.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any, ParamSpec, TypeAlias, TypeVar

import msgspec
import redis
import redis.asyncio as aioredis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from redis.commands.core import AsyncScript
from redis.retry import Retry
from sqlalchemy.engine import Engine

from the_eye.config import Settings
from the_eye.queue.base import INVALID_BODY, Delivery, Message, Prepare, Queue, QueueUnavailable
from the_eye.queue.group_commit import GroupCommit
from the_eye.timestamps import utcnow

log = logging.getLogger(__name__)

_P = ParamSpec("_P")
_T = TypeVar("_T")

# A stream entry as the client hands it over (RESP2, undecoded): its id and its fields.
_Entry: TypeAlias = tuple[str, dict[bytes, bytes]]

# Checks the bound, appends and counts in one atomic round trip, so that a full stream
# refuses a request whole rather than half of it and never grows past the bound, and the
# count of received events is exactly what was queued.
# KEYS: the stream, the received counter. ARGV: the most entries the stream may hold, the
# number of events, then five fields per message.
_PUBLISH = """
local count = (#ARGV - 2) / 5
if redis.call('XLEN', KEYS[1]) + count > tonumber(ARGV[1]) then
  return 0
end
for i = 3, #ARGV, 5 do
  redis.call('XADD', KEYS[1], '*', 'application_id', ARGV[i], 'kind', ARGV[i + 1],
             'received_at', ARGV[i + 2], 'event_ids', ARGV[i + 3], 'body', ARGV[i + 4])
end
redis.call('INCRBY', KEYS[2], ARGV[2])
return count
"""

# Several queues in one process (the tests run processors in threads) must not share a
# consumer name, or one would read another's pending entries as its own.
_instances = itertools.count()

# How often a processor looks for entries that a dead one left pending.
_RECLAIM_EVERY = 1.0


_encode_json = msgspec.json.Encoder().encode
_decode_json = msgspec.json.Decoder().decode


@contextmanager
def redis_errors_as_unavailable(on_error: Callable[[], None] | None = None) -> Iterator[None]:
    """Turn a failed Redis call (unreachable, timed out, refused) into `QueueUnavailable`,
    which callers answer with 503; `on_error` runs first."""
    try:
        yield
    except redis.RedisError as exc:
        if on_error is not None:
            on_error()
        raise QueueUnavailable(f"Redis: {exc}") from exc


def _outcome(reply: Any) -> QueueUnavailable | None:
    """What one publish script's reply means for its request."""
    if isinstance(reply, Exception):
        return QueueUnavailable(f"Redis: {reply}")
    if not reply:
        return QueueUnavailable("the queue is full", reason="it is full")
    return None


def _consumer_name(settings: Settings) -> str:
    base = settings.redis_consumer or f"{socket.gethostname()}-{os.getpid()}"
    n = next(_instances)
    return base if n == 0 else f"{base}-{n}"


class RedisQueue(Queue):
    """Redis Streams with one consumer group; the production queue."""

    def __init__(self, settings: Settings, engine: Engine) -> None:
        self.engine = engine
        self.url = settings.queue_url
        self.stream = settings.redis_stream
        # Beside the stream; a hash tag in the stream's name keeps both in one Cluster slot.
        self.received_key = f"{self.stream}:received"
        self.group = settings.redis_group
        self.consumer = _consumer_name(settings)
        self.claim_idle_ms = max(1, round(settings.redis_claim_idle * 1000))
        self.max_length = settings.redis_max_length
        self.block_ms = max(1, round(settings.poll_interval * 1000))
        self.timeout = settings.redis_timeout
        # No automatic retries: a retried append whose first try reached Redis would queue
        # the request twice, and a processor backs off by itself.
        self.client = redis.Redis.from_url(self.url, **self._client_options(Retry(NoBackoff(), 0)))
        self._async: tuple[asyncio.AbstractEventLoop, aioredis.Redis, AsyncScript] | None = None
        self._publishing = GroupCommit(self._send)
        self._group_ready = False
        self._own_pending = True  # a processor restarted under a fixed name resumes its own
        self._claim_cursor = "0-0"
        self._next_reclaim = 0.0
        # Entries this processor failed on cleanly, and how often: not the entry's fault.
        self._clean_failures: dict[str, int] = {}
        # The last take found an entry delivered before: take one at a time for a while.
        self._isolating = False

    def _client_options(self, retry: Retry | AsyncRetry) -> dict[str, Any]:
        return {
            "socket_timeout": self.timeout + self.block_ms / 1000,
            "socket_connect_timeout": self.timeout,
            "retry": retry,
        }

    # Ingest side (asyncio).

    def _async_client(self) -> tuple[aioredis.Redis, AsyncScript]:
        loop = asyncio.get_running_loop()
        if self._async is None or self._async[0] is not loop:
            client = aioredis.Redis.from_url(
                self.url, **self._client_options(AsyncRetry(NoBackoff(), 0))
            )
            self._async = (loop, client, client.register_script(_PUBLISH))
        return self._async[1], self._async[2]

    async def publish(self, messages: list[Message]) -> None:
        """Append one request's messages, all or none. Requests that arrive while a round
        trip is in flight go together in the next one (a pipeline of one script call per
        request), so concurrent requests share round trips as the db queue shares commits."""
        if messages:
            await self._publishing.submit(messages)

    def _script_args(self, messages: list[Message]) -> list[Any]:
        args: list[Any] = [self.max_length, sum(len(m.event_ids) for m in messages)]
        for m in messages:
            args += [
                m.application_id,
                m.kind,
                m.received_at.isoformat(),
                _encode_json(m.event_ids),
                m.body,
            ]
        return args

    async def _send(self, requests: list[list[Message]]) -> list[Exception | None]:
        """One round trip: the publish script once per request, pipelined."""
        client, script = self._async_client()
        keys = [self.stream, self.received_key]
        with redis_errors_as_unavailable():
            if len(requests) == 1:
                replies = [await script(keys=keys, args=self._script_args(requests[0]))]
            else:
                async with client.pipeline(transaction=False) as pipe:
                    for messages in requests:
                        await script(keys=keys, args=self._script_args(messages), client=pipe)
                    replies = await pipe.execute(raise_on_error=False)
        return [_outcome(reply) for reply in replies]

    # Processor side (blocking).

    @contextmanager
    def consume(self, limit: int, prepare: Prepare | None = None) -> Iterator[Delivery]:
        # The store first: while it is down, entries stay unread rather than pending here.
        with self.engine.connect() as conn:
            with conn.begin():
                entries, deliveries = self._take(limit)
                try:
                    messages = [self._message(eid, fields) for eid, fields in entries]
                    for message in messages:
                        message.deliveries = self._deliveries(message.queue_id, deliveries)
                    yield Delivery(messages, conn, prepare and prepare(messages))
                except BaseException:
                    self._own_pending = bool(entries) or self._own_pending
                    self._count_clean_failures([eid for eid, _ in entries])
                    raise
            if entries:
                self._acknowledge([eid for eid, _ in entries])
                for eid, _ in entries:
                    self._clean_failures.pop(eid, None)

    def _deliveries(self, entry_id: str, counted: dict[str, int]) -> int:
        return max(1, counted.get(entry_id, 1) - self._clean_failures.get(entry_id, 0))

    def _count_clean_failures(self, ids: list[str]) -> None:
        if len(self._clean_failures) > 100_000:  # entries other processors took over
            self._clean_failures.clear()
        for eid in ids:
            self._clean_failures[eid] = self._clean_failures.get(eid, 0) + 1

    def _take(self, limit: int) -> tuple[list[_Entry], dict[str, int]]:
        """Entries, and how many times each was delivered when more than once."""
        # On failure the reply may be lost while the entries were handed out.
        with redis_errors_as_unavailable(self._may_hold_entries):
            limit = 1 if self._isolating else limit
            entries, again = self._with_group(self._take_entries, limit)
            counts = self._delivery_counts([eid for eid, _ in entries]) if again else {}
            return self._isolate(entries, counts), counts

    def _isolate(self, entries: list[_Entry], counts: dict[str, int]) -> list[_Entry]:
        """The first entry delivered before alone, the others given back uncounted; or all."""
        suspect = next((e for e in entries if self._deliveries(e[0], counts) > 1), None)
        self._isolating = suspect is not None
        if suspect is None or len(entries) == 1:
            return entries
        pipe = self.client.pipeline(transaction=False)
        for eid, _ in entries:
            if eid != suspect[0]:
                # Still ours, idle at once: this consumer or another takes it again soon.
                pipe.xclaim(
                    self.stream,
                    self.group,
                    self.consumer,
                    0,
                    [eid],
                    idle=self.claim_idle_ms,
                    retrycount=max(0, counts.get(eid, 1) - 1),
                    justid=True,
                )
        pipe.execute()
        self._own_pending = True
        return [suspect]

    def _delivery_counts(self, ids: list[str]) -> dict[str, int]:
        """Redis's delivery counts of entries this consumer holds, asked id by id (one
        pipelined round trip): a range would also list its other pending entries."""
        if not ids:
            return {}
        pipe = self.client.pipeline(transaction=False)
        for eid in ids:
            pipe.xpending_range(self.stream, self.group, eid, eid, 1, consumername=self.consumer)
        counts: dict[str, int] = {}
        for eid, pending in zip(ids, pipe.execute(), strict=True):
            if pending:
                counts[eid] = int(pending[0]["times_delivered"])
        return counts

    def _may_hold_entries(self) -> None:
        """Look at this consumer's own pending entries first on the next take."""
        self._own_pending = True

    def _take_entries(self, limit: int) -> tuple[list[_Entry], bool]:
        """Entries to process, and whether they may have been delivered before."""
        if self._own_pending:
            # Entries this processor took but did not acknowledge (the store failed): retry
            # them now rather than after the claim time.
            mine = self._read("0", limit, None)
            live = [(eid, fields) for eid, fields in mine if fields]
            gone = [eid for eid, fields in mine if not fields]
            if gone:  # deleted while pending: nothing left to process
                self._drop(gone)
            if live:
                return live, True
            if not mine:
                self._own_pending = False
        now = time.monotonic()
        if now >= self._next_reclaim:
            claimed = self._reclaim(limit)
            if claimed:
                return claimed, True
            self._next_reclaim = now + _RECLAIM_EVERY
        return self._read(">", limit, self.block_ms), False

    def _read(self, start: str, limit: int, block: int | None) -> list[_Entry]:
        reply = self.client.xreadgroup(
            self.group, self.consumer, {self.stream: start}, count=limit, block=block
        )
        if not reply:
            return []
        # The client speaks RESP2, which answers [[stream, entries]] (RESP3 gives a dict).
        if not isinstance(reply, list):
            raise TypeError(f"XREADGROUP answered {type(reply).__name__}, not a RESP2 list")
        (_, entries) = reply[0]
        return [(eid.decode(), fields) for eid, fields in entries]

    def _reclaim(self, limit: int) -> list[_Entry]:
        # Redis 7 adds a third item, the ids of entries deleted meanwhile, which it drops
        # from the pending list by itself; Redis 6.2 hands them over without fields instead.
        reply = self.client.xautoclaim(
            self.stream,
            self.group,
            self.consumer,
            self.claim_idle_ms,
            self._claim_cursor,
            count=limit,
        )
        cursor, entries = reply[0], reply[1]
        self._claim_cursor = cursor.decode() if isinstance(cursor, bytes) else cursor
        gone = [eid for eid, fields in entries if not fields]
        if gone:
            self._drop(gone)
        live = [(eid.decode(), fields) for eid, fields in entries if fields]
        if live:
            log.warning("took over %d entries another processor left unacknowledged", len(live))
        return live

    def _acknowledge(self, ids: list[str]) -> None:
        """Acknowledge and delete together, so that no acknowledged entry stays behind."""
        # On failure the store has the batch anyway; it comes again (and changes nothing)
        # once Redis is back.
        with redis_errors_as_unavailable(self._may_hold_entries):
            self._drop(ids)

    def _drop(self, ids: list[str]) -> None:
        if not ids:
            return
        pipe = self.client.pipeline(transaction=True)
        pipe.xack(self.stream, self.group, *ids)
        pipe.xdel(self.stream, *ids)
        pipe.execute()

    def _with_group(self, call: Callable[_P, _T], *args: _P.args, **kwargs: _P.kwargs) -> _T:
        """Run `call`, creating the stream and the group first when Redis lacks them."""
        if not self._group_ready:
            self._create_group()
        try:
            return call(*args, **kwargs)
        except redis.ResponseError as exc:
            if not str(exc).startswith("NOGROUP"):
                raise
            self._create_group()
            return call(*args, **kwargs)

    def _create_group(self) -> None:
        try:
            # From the stream's start: requests queued before any processor ran are kept.
            self.client.xgroup_create(self.stream, self.group, id="0", mkstream=True)
        except redis.ResponseError as exc:
            if not str(exc).startswith("BUSYGROUP"):
                raise
        self._group_ready = True

    def _message(self, entry_id: str, fields: dict[bytes, bytes]) -> Message:
        try:
            return Message(
                application_id=int(fields[b"application_id"]),
                kind=fields[b"kind"].decode(),
                received_at=datetime.fromisoformat(fields[b"received_at"].decode()),
                event_ids=_decode_json(fields[b"event_ids"]),
                body=fields[b"body"],
                queue_id=entry_id,
                delivery_key=f"{self.stream}/{entry_id}",
            )
        except (KeyError, ValueError):  # msgspec.DecodeError is a ValueError
            # Not written by The Eye; kept as an error record rather than blocking the queue.
            log.error("stream entry %s is not a queued request", entry_id)
            return Message(
                application_id=None,
                kind=INVALID_BODY,
                received_at=utcnow(),
                event_ids=[],
                body=_encode_json({k.decode(errors="replace"): repr(v) for k, v in fields.items()}),
                queue_id=entry_id,
                delivery_key=f"{self.stream}/{entry_id}",
            )

    def has_messages(self) -> bool:
        if self._own_pending:
            return True
        return self.depth() > 0

    def depth(self) -> int:
        with redis_errors_as_unavailable():
            return self.client.xlen(self.stream)

    def oldest_received_at(self) -> datetime | None:
        with redis_errors_as_unavailable():
            first = self.client.xrange(self.stream, count=1)
        if not first:
            return None
        _, fields = first[0]
        received_at = fields.get(b"received_at") if fields else None
        return (
            datetime.fromisoformat(received_at.decode()) if isinstance(received_at, bytes) else None
        )

    def received_total(self) -> int:
        with redis_errors_as_unavailable():
            return int(self.client.get(self.received_key) or 0)

    def ping(self) -> None:
        with redis_errors_as_unavailable():
            self.client.ping()

    def close(self) -> None:
        self.client.close()

    async def aclose(self) -> None:
        if self._async is not None and self._async[0] is asyncio.get_running_loop():
            await self._async[1].aclose()
        self._async = None
        self.close()
