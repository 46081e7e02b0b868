"""The queue interface between ingest and processing: one small contract, one class per backend."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
from sqlalchemy.engine import Connection

EVENTS = "events"
# A body refused at ingest, queued as it was (older messages) so the processor keeps it as
# an error record; `REJECTED` queues it with the reason the client was given.
INVALID_BODY = "invalid_body"
REJECTED = "rejected"
# A Segment Tracking API body; the kind is `segment/<call>` (see `the_eye.segment_wire`).
SEGMENT = "segment"


class QueueUnavailable(RuntimeError):
    """The queue cannot take messages now; the caller should answer 503 and retry later.

    Its text is the detail for the log (it may name hosts and ports); `reason` is what a
    client may be told.
    """

    def __init__(self, detail: str, reason: str = "it is busy or cannot be reached") -> None:
        super().__init__(detail)
        self.reason = reason


@dataclass(slots=True)
class Message:
    """One accepted request: its raw body and the event ids the `202` promised, in order."""

    # None only for a stream entry The Eye did not write, kept as an `invalid_body` error.
    application_id: int | None
    kind: str
    received_at: datetime
    event_ids: list[str]
    body: bytes
    queue_id: Any = field(default=None)
    # Set by queues that may deliver a message twice (Redis, the inbox file of a SQLite
    # store): unique to the message across deliveries, so that its error records are
    # written once however often it comes.
    delivery_key: str | None = field(default=None)
    # How many times processors have taken the message, this time included; past
    # `max_deliveries` it is set aside rather than processed again.
    deliveries: int = field(default=1)


class _Rejected(msgspec.Struct):
    reason: str
    body: bytes


_encode_rejected = msgspec.json.Encoder().encode
_decode_rejected = msgspec.json.Decoder(_Rejected).decode


def rejected_message(
    application_id: int, received_at: datetime, body: bytes, reason: str
) -> Message:
    """The message that keeps a body refused at ingest, with the reason its client was given."""
    envelope = _encode_rejected(_Rejected(reason, body))
    return Message(application_id, REJECTED, received_at, [], envelope)


def read_rejected(message: Message) -> tuple[str, bytes]:
    """The reason and the body a `rejected_message` carries."""
    rejected = _decode_rejected(message.body)
    return rejected.reason, rejected.body


# The pure part of processing (decode, check, build rows), handed to `Queue.consume` so the
# backend can run it before the store's write lock is taken where that matters.
Prepare = Callable[[list[Message]], Any]


@dataclass(slots=True)
class Delivery:
    """Messages handed to a processor, what `prepare` made of them, and the store
    transaction that must record them."""

    messages: list[Message]
    connection: Connection
    prepared: Any = None


class Queue(ABC):
    """Carries accepted requests from the API to the processors, durably."""

    @abstractmethod
    async def publish(self, messages: list[Message]) -> None:
        """Append messages; when this returns they survive a crash of any process."""

    @abstractmethod
    def consume(
        self, limit: int, prepare: Prepare | None = None
    ) -> AbstractContextManager[Delivery]:
        """Take up to `limit` messages inside a store transaction.

        `delivery.prepared` is `prepare(delivery.messages)` (None without `prepare`).
        Leaving the block normally commits the store writes made on `delivery.connection`
        and acknowledges the messages; an exception rolls back and leaves them queued.
        """

    @abstractmethod
    def has_messages(self) -> bool:
        """Whether anything waits, checked cheaply so idle processors do not lock the store."""

    @abstractmethod
    def depth(self) -> int:
        """How many messages wait."""

    @abstractmethod
    def oldest_received_at(self) -> datetime | None:
        """When the oldest waiting message was received, for the processing lag."""

    @abstractmethod
    def received_total(self) -> int:
        """Events accepted so far, counted in the same write that queued them."""

    @abstractmethod
    def ping(self) -> None:
        """Raise if the queue is unreachable."""

    def close(self) -> None:  # noqa: B027 - optional hook
        """Release connections and threads."""

    async def aclose(self) -> None:
        """Release connections, from inside the event loop that published."""
        self.close()
