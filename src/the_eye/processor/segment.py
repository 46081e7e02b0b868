"""Segment messages as The Eye's events: a pure mapping, applied before the checks.

A mapped event goes through `check_event` like any other, so it gets the same checks,
error records and idempotency. The mapping (README "Segment-compatible ingestion"):

- `name`: `event` for track, the page name for page (else `"page"`), the type otherwise;
- `category`: `properties.category` when it is a non-empty string, else the type;
- `session_id`: `context.sessionId`, else `properties.session_id`, else `anonymousId`, else
  `userId`;
- `data`: the message as sent (properties, traits, context, ids...) less its `writeKey`,
  with the batch's `context` merged into its own;
- `timestamp`: `received_at - (sentAt - timestamp)` when `sentAt` is given, so a client's
  wrong clock does not misplace its events; else `timestamp`, else `originalTimestamp`,
  else `received_at`.

The event id is the `messageId`, chosen at ingest (`the_eye.segment_wire`).

A message that cannot be mapped (no JSON of its own, an unknown type, a `timestamp` and
`sentAt` too far apart to place it in time) maps onto a `MappingFailed`, its own error
record: the other messages of its batch are stored all the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec

from the_eye.segment_wire import BATCH, MESSAGE_TYPES, segment_messages
from the_eye.timestamps import format_timestamp, parse_timestamp
from the_eye.wire import BodyRejected, decode_body


@dataclass(slots=True)
class MappingFailed:
    """A Segment message that maps onto no event: the error record it becomes."""

    reason: str
    message: str
    payload: bytes
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Unreadable:
    """A message of a batch whose own JSON cannot be decoded (a number beyond any range)."""

    raw: bytes
    problem: str


class _Batch(msgspec.Struct):
    batch: list[msgspec.Raw]
    context: msgspec.Raw = msgspec.Raw(b"null")
    sentAt: msgspec.Raw = msgspec.Raw(b"null")


_batch_decoder = msgspec.json.Decoder(_Batch)
_decoder = msgspec.json.Decoder()
_encode = msgspec.json.Encoder().encode


def segment_raw_events(body: bytes, call: str, received_at: datetime) -> list[Any]:
    """The raw events of a Segment body sent to `/v1/<call>`, in the order sent.

    A batch that does not decode whole is decoded message by message, so that a message the
    decoder refuses (a 5,000-digit number) fails alone.
    """
    try:
        document = decode_body(body)
    except BodyRejected:
        if call != BATCH:
            raise
        document = _decode_by_message(body)
    return segment_events(document, call, received_at)


def _decode_by_message(body: bytes) -> dict[str, Any]:
    try:
        batch = _batch_decoder.decode(body)
        context, sent_at = _decoder.decode(batch.context), _decoder.decode(batch.sentAt)
    except (msgspec.DecodeError, RecursionError):
        raise BodyRejected("The body is not valid JSON.") from None
    messages: list[Any] = []
    for raw in batch.batch:
        try:
            messages.append(_decoder.decode(raw))
        except (msgspec.DecodeError, RecursionError) as exc:
            messages.append(_Unreadable(bytes(raw), str(exc)))
    return {"batch": messages, "context": context, "sentAt": sent_at}


def segment_events(document: Any, call: str, received_at: datetime) -> list[Any]:
    """The raw events of a decoded Segment body sent to `/v1/<call>`, in the order sent."""
    messages, context, sent_at = segment_messages(document, call)
    message_type = None if call == BATCH else call
    return [segment_event(m, received_at, message_type, context, sent_at) for m in messages]


class _Unplaceable(ValueError):
    """`timestamp` and `sentAt` put the event outside the dates a calendar holds."""


def segment_event(
    message: Any,
    received_at: datetime,
    message_type: str | None = None,
    batch_context: dict[str, Any] | None = None,
    batch_sent_at: Any = None,
) -> Any:
    """One Segment message as a raw event for `check_event`, or the `MappingFailed` it is.

    `message_type` is the type the path implies (`/v1/track`), which wins over the body's;
    None for a batch, whose messages carry their own. What is not an object passes through
    unchanged, for the checks to reject.
    """
    if isinstance(message, _Unreadable):
        text = f"The message is not valid JSON: {message.problem}."
        return MappingFailed("invalid_event", text, message.raw)
    if not isinstance(message, dict):
        return message
    data = {key: value for key, value in message.items() if key != "writeKey"}
    if message_type is None:
        message_type = message.get("type")
    else:
        data.setdefault("type", message_type)
    if message_type not in MESSAGE_TYPES:
        problem = "is required" if message_type is None else "is not a Segment message type"
        text = f"`type` {problem}: one of {', '.join(MESSAGE_TYPES)}."
        return MappingFailed("invalid_event", text, _encode(data), {"field": "type"})

    context = message.get("context")
    if batch_context and (context is None or isinstance(context, dict)):
        context = {**batch_context, **(context or {})}
        data["context"] = context
    if batch_sent_at is not None and message.get("sentAt") is None:
        data["sentAt"] = batch_sent_at

    properties = _object(message.get("properties"))
    try:
        timestamp = _timestamp(message, received_at, data.get("sentAt"))
    except _Unplaceable:
        text = "`timestamp` and `sentAt` are too far apart to place the event in time."
        return MappingFailed("invalid_timestamp", text, _encode(data), {"field": "timestamp"})
    return {
        "session_id": _first_id(
            _object(context).get("sessionId"),
            properties.get("session_id"),
            message.get("anonymousId"),
            message.get("userId"),
        ),
        "category": _text(properties.get("category")) or message_type,
        "name": _name(message, message_type),
        "data": data,
        "timestamp": timestamp,
    }


def _name(message: dict[str, Any], message_type: str | None) -> Any:
    if message_type == "track":
        return message.get("event")
    if message_type == "page":
        return _text(message.get("name")) or "page"
    return message_type


def _timestamp(message: dict[str, Any], received_at: datetime, sent_at: Any) -> Any:
    happened = message.get("timestamp")
    if happened is None:
        happened = message.get("originalTimestamp")
    if happened is None:
        return format_timestamp(received_at)
    happened_at = parse_timestamp(happened)
    if happened_at is None:
        return happened  # left as sent, for the checks to call it an invalid timestamp
    sent = parse_timestamp(sent_at)
    if sent is not None:
        # The client's clock may be wrong, but its interval from event to send is right.
        try:
            happened_at = received_at - (sent - happened_at)
        except OverflowError:
            raise _Unplaceable from None
    return format_timestamp(happened_at)


def _first_id(*candidates: Any) -> Any:
    """The first usable identifier; numbers are taken as their decimal text."""
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool):
            return str(value)
        if isinstance(value, str) and value:
            return value
    return None


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
