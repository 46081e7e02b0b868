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
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from the_eye.segment_wire import BATCH, MESSAGE_TYPES, segment_messages
from the_eye.timestamps import format_timestamp, parse_timestamp


def segment_events(document: Any, call: str, received_at: datetime) -> list[Any]:
    """The raw events of a decoded Segment body sent to `/v1/<call>`, in the order sent."""
    messages, context, sent_at = segment_messages(document, call)
    message_type = None if call == BATCH else call
    return [segment_event(m, received_at, message_type, context, sent_at) for m in messages]


def segment_event(
    message: Any,
    received_at: datetime,
    message_type: str | None = None,
    batch_context: dict[str, Any] | None = None,
    batch_sent_at: Any = None,
) -> Any:
    """One Segment message as a raw event for `check_event`.

    `message_type` is the type the path implies (`/v1/track`), which wins over the body's;
    None for a batch, whose messages carry their own. What is not an object passes through
    unchanged, for the checks to reject.
    """
    if not isinstance(message, dict):
        return message
    data = {key: value for key, value in message.items() if key != "writeKey"}
    if message_type is None:
        message_type = message.get("type")
    else:
        data.setdefault("type", message_type)
    if message_type not in MESSAGE_TYPES:
        message_type = None  # no name nor category: the checks say which is missing

    context = message.get("context")
    if batch_context and (context is None or isinstance(context, dict)):
        context = {**batch_context, **(context or {})}
        data["context"] = context
    if batch_sent_at is not None and message.get("sentAt") is None:
        data["sentAt"] = batch_sent_at

    properties = _object(message.get("properties"))
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
        "timestamp": _timestamp(message, received_at, data.get("sentAt")),
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
        happened_at = received_at - (sent - happened_at)
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
