"""Turn queued messages into rows: events to store and errors to keep. Pure, no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from the_eye.processor.checker import EventChecker
from the_eye.processor.checks import EventRejected, ValidEvent
from the_eye.processor.segment import segment_events
from the_eye.queue import EVENTS, Message
from the_eye.segment_wire import segment_call
from the_eye.wire import BodyRejected, decode_body, events_in


@dataclass(slots=True)
class BatchRows:
    """The rows one batch of messages produces."""

    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def process_messages(messages: list[Message], checker: EventChecker) -> BatchRows:
    """Check every event of every message, in order."""
    rows = BatchRows()
    for message in messages:
        process_message(message, checker, rows)
    return rows


def process_message(message: Message, checker: EventChecker, rows: BatchRows) -> None:
    if message.kind != EVENTS and segment_call(message.kind) is None:
        rows.errors.append(body_error(message, _body_problem(message.body)))
        return
    # Only a stream entry The Eye did not write lacks an application, and its kind
    # (`invalid_body`) made it a body error above.
    assert message.application_id is not None, "a queued request names its application"
    try:
        raws = raw_events(message)
    except BodyRejected as exc:
        rows.errors.append(body_error(message, str(exc)))
        return
    if len(raws) != len(message.event_ids):
        rows.errors.append(
            body_error(
                message, "The queued message does not match its event ids.", "processing_failed"
            )
        )
        return
    for index, (raw, event_id) in enumerate(zip(raws, message.event_ids, strict=True)):
        outcome = checker.check(raw, event_id, message.received_at, message.application_id)
        if isinstance(outcome, ValidEvent):
            rows.events.append(outcome.row())
        else:
            rows.errors.append(error_row(outcome, message, index))


def raw_events(message: Message) -> list[Any]:
    """The raw events a message carries, Segment messages mapped onto The Eye's events."""
    document = decode_body(message.body)
    call = segment_call(message.kind)
    if call is None:
        return events_in(document)
    return segment_events(document, call, message.received_at)


def error_row(rejected: EventRejected, message: Message, index: int = 0) -> dict[str, Any]:
    return {
        "application_id": message.application_id,
        "event_id": rejected.event_id,
        "reason": rejected.reason,
        "message": rejected.message,
        "details": rejected.details,
        "payload": rejected.payload,
        "received_at": message.received_at,
        "delivery_key": _delivery_key(message, str(index)),
    }


def body_error(message: Message, text: str, reason: str = "invalid_json") -> dict[str, Any]:
    """An error record for a whole request body."""
    return {
        "application_id": message.application_id,
        "event_id": None,
        "reason": reason,
        "message": text,
        "details": None,
        "payload": message.body.decode("utf-8", errors="replace"),
        "received_at": message.received_at,
        "delivery_key": _delivery_key(message, "body"),
    }


def _delivery_key(message: Message, part: str) -> str | None:
    """What makes an error record unique when its message may be delivered again."""
    return f"{message.delivery_key}#{part}" if message.delivery_key else None


def _body_problem(body: bytes) -> str:
    try:
        events_in(decode_body(body))
    except BodyRejected as exc:
        return str(exc)
    return "The body could not be read."
