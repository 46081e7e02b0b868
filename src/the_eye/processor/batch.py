"""Turn queued messages into rows: events to store and errors to keep. Pure, no I/O.

Every message becomes its events and per-event errors, or one whole-request error record:
a body refused at ingest (with the reason its client was given), a body that does not
decode, a request over `max_events` events (queued before that limit existed; it is not
decoded, so one request cannot fill a processor's memory), or a request that processors
took more than `max_deliveries` times without finishing it (each died with it in hand): it
is set aside unread rather than tried for ever.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from the_eye.processor.checker import EventChecker
from the_eye.processor.checks import EventRejected, ValidEvent, kept_payload
from the_eye.processor.segment import MappingFailed, segment_raw_events
from the_eye.queue import EVENTS, INVALID_BODY, REJECTED, Message, read_rejected
from the_eye.segment_wire import segment_call
from the_eye.wire import BodyRejected, decode_body, events_in


@dataclass(slots=True)
class BatchRows:
    """The rows one batch of messages produces. `bodies` are whole-request error records,
    each with the number of accepted events it stands for (0 for a body refused at ingest)."""

    events: list[dict[str, Any]] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)
    bodies: list[tuple[dict[str, Any], int]] = field(default_factory=list)


@dataclass(slots=True, frozen=True)
class MessageBounds:
    """What the processor takes on from one message."""

    max_events: int = 5000
    max_deliveries: int = 3


def process_messages(
    messages: list[Message], checker: EventChecker, bounds: MessageBounds | None = None
) -> BatchRows:
    """Check every event of every message, in order."""
    rows = BatchRows()
    bounds = bounds or MessageBounds()
    for message in messages:
        process_message(message, checker, rows, bounds)
    return rows


def process_message(
    message: Message, checker: EventChecker, rows: BatchRows, bounds: MessageBounds
) -> None:
    limit = checker.limits.max_error_payload_bytes
    accepted = len(message.event_ids)
    if message.deliveries > bounds.max_deliveries:
        text = (
            f"Processors took this request {message.deliveries} times without finishing it "
            "(each stopped with it in hand); it is kept here rather than tried again."
        )
        details = {"events": accepted, "deliveries": message.deliveries}
        rows.bodies.append(
            (body_error(message, text, "processing_failed", limit, details), accepted)
        )
        return
    if message.kind == REJECTED:
        reason, body = read_rejected(message)
        rows.bodies.append((body_error(message, reason, "invalid_json", limit, body=body), 0))
        return
    if message.kind != EVENTS and segment_call(message.kind) is None:
        text = _body_problem(message.body) if message.kind == INVALID_BODY else "Unknown kind."
        rows.bodies.append((body_error(message, text, "invalid_json", limit), 0))
        return
    if accepted > bounds.max_events:
        text = f"The request holds {accepted} events; at most {bounds.max_events} are processed."
        details = {"events": accepted, "limit": bounds.max_events}
        rows.bodies.append(
            (body_error(message, text, "processing_failed", limit, details), accepted)
        )
        return
    # Only a stream entry The Eye did not write lacks an application, and its kind
    # (`invalid_body`) made it a body error above.
    assert message.application_id is not None, "a queued request names its application"
    try:
        raws = raw_events(message)
    except BodyRejected as exc:
        details = {"events": accepted}
        rows.bodies.append(
            (body_error(message, str(exc), "invalid_json", limit, details), accepted)
        )
        return
    if len(raws) != accepted:
        text = "The queued message does not match its event ids."
        details = {"events": accepted}
        rows.bodies.append(
            (body_error(message, text, "processing_failed", limit, details), accepted)
        )
        return
    for index, (raw, event_id) in enumerate(zip(raws, message.event_ids, strict=True)):
        if isinstance(raw, MappingFailed):
            payload, size = kept_payload(raw.payload, limit)
            details = raw.details if size is None else {**raw.details, "payload_bytes": size}
            outcome: ValidEvent | EventRejected = EventRejected(
                raw.reason, raw.message, payload, event_id, details or None
            )
        else:
            outcome = checker.check(raw, event_id, message.received_at, message.application_id)
        if isinstance(outcome, ValidEvent):
            rows.events.append(outcome.row())
        else:
            rows.errors.append(error_row(outcome, message, index))


def raw_events(message: Message) -> list[Any]:
    """The raw events a message carries, Segment messages mapped onto The Eye's events."""
    call = segment_call(message.kind)
    if call is None:
        return events_in(decode_body(message.body))
    return segment_raw_events(message.body, call, message.received_at)


def error_row(rejected: EventRejected, message: Message, index: int = 0) -> dict[str, Any]:
    return {
        "application_id": message.application_id,
        # PostgreSQL cannot keep NUL in text: such an id (queued before ingest refused it)
        # leaves the record keyed by its delivery alone.
        "event_id": None if "\x00" in (rejected.event_id or "") else rejected.event_id,
        **rejected.record(),
        "payload": rejected.payload,
        "received_at": message.received_at,
        "delivery_key": _delivery_key(message, str(index)),
    }


def body_error(
    message: Message,
    text: str,
    reason: str,
    limit: int,
    details: dict[str, Any] | None = None,
    body: bytes | None = None,
) -> dict[str, Any]:
    """An error record for a whole request body, which keeps at most `limit` bytes of it."""
    body = message.body if body is None else body
    payload, size = kept_payload(body, limit)
    if size is not None:
        details = {**(details or {}), "payload_bytes": size}
    return {
        "application_id": message.application_id,
        "event_id": None,
        "reason": reason,
        "message": text,
        "details": details,
        "payload": payload,
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
