"""The checks every raw event goes through, as pure functions: a raw event in, an event or an
error out.

The order is fixed and the first check that fails decides: the event's shape
(`invalid_event`), its size (`event_too_large`), its `data` (`invalid_data`: not an object,
empty, a NUL character, an integer outside 64 bits), its timestamp (`invalid_timestamp`,
`future_timestamp`), then the rules registered for its type (`schema_violation`,
`unknown_event_type`). New events, replayed errors and edited events all go through
`check_event`, so the rules cannot drift apart, nor differ between stores.

An error keeps the raw event as its payload, cut to `max_error_payload_bytes` (its size in
`details`), so that one oversized event cannot make an oversized record.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import msgspec

from the_eye.timestamps import format_timestamp, parse_timestamp
from the_eye.wire import MAX_KEY_LENGTH

if TYPE_CHECKING:
    from the_eye.config import Settings

MAX_NAME_LENGTH = 100

# What every store keeps as an integer: SQLite's JSON holds 64-bit integers only.
INT_MIN, INT_MAX = -(2**63), 2**63 - 1
# An integer outside 64 bits has at least 19 digits: events without such a run are not
# walked at all. The run is found with every digit made a 0 and a plain substring search,
# five times faster than the regular expression `\d{19}` over a typical event.
_DIGITS_AS_ZERO = bytes.maketrans(b"123456789", b"000000000")
_LONG_DIGITS = b"0" * 19

_encode = msgspec.json.encode


@dataclass(slots=True)
class Limits:
    """The limits a check applies, taken from the settings."""

    max_event_bytes: int = 64 * 1024
    max_clock_skew: timedelta = timedelta(seconds=60)
    max_error_payload_bytes: int = 64 * 1024

    @classmethod
    def of(cls, settings: Settings) -> Limits:
        """The limits a `Settings` object sets."""
        return cls(
            settings.max_event_bytes,
            timedelta(seconds=settings.max_clock_skew),
            settings.max_error_payload_bytes,
        )


@dataclass(slots=True)
class ValidEvent:
    """An event that passed every check, ready to store: `row()` is its row of `events`."""

    event_id: str
    session_id: str
    category: str
    name: str
    data: dict[str, Any]
    timestamp: datetime
    received_at: datetime
    application_id: int

    def row(self) -> dict[str, Any]:
        """The event's row of the `events` table, whichever path checked it (a new event, a
        replayed error, an edit): the one place that maps a checked event onto columns."""
        return {
            "application_id": self.application_id,
            "event_id": self.event_id,
            "session_id": self.session_id,
            "category": self.category,
            "name": self.name,
            "data": self.data,
            "timestamp": self.timestamp,
            "received_at": self.received_at,
        }


@dataclass(slots=True)
class EventRejected:
    """An event that failed a check: what becomes an error record. `session_id`, `category`
    and `name` are the raw event's, where it has usable ones, so that errors are found by
    them; None otherwise."""

    reason: str
    message: str
    payload: str
    event_id: str | None = None
    details: dict[str, Any] | None = field(default=None)
    session_id: str | None = None
    category: str | None = None
    name: str | None = None

    def record(self) -> dict[str, Any]:
        """The columns of its error record that the check decides (the others say where
        and when the event came from)."""
        return {
            "reason": self.reason,
            "message": self.message,
            "details": self.details,
            "session_id": self.session_id,
            "category": self.category,
            "name": self.name,
        }


@dataclass(slots=True, frozen=True)
class Violation:
    """Why the rules registered for an event type refuse an event."""

    message: str
    details: dict[str, Any]
    reason: str = "schema_violation"


# A schema check takes (application id, category, name, data) and answers None when the
# event may be stored, or the Violation that keeps it out. It runs after every other check.
SchemaCheck = Callable[[int, str, str, dict[str, Any]], Violation | None]


def check_event(
    raw: Any,
    event_id: str,
    received_at: datetime,
    limits: Limits,
    schema_check: SchemaCheck | None = None,
    application_id: int = 0,
) -> ValidEvent | EventRejected:
    """Run every check in order; the first that fails decides.

    `received_at` is when The Eye first received the event (future timestamps are judged
    against it); `application_id` is the sender's, for schema checks that depend on it
    (strict mode). Both are carried into the `ValidEvent`.
    """
    encoded = _encode(raw)

    def reject(reason: str, message: str, **details: Any) -> EventRejected:
        payload, size = kept_payload(encoded, limits.max_error_payload_bytes)
        if size is not None:
            details["payload_bytes"] = size
        return EventRejected(reason, message, payload, event_id, details or None, *event_keys(raw))

    if not isinstance(raw, dict):
        return reject("invalid_event", "An event must be a JSON object.")
    session_id = _session_id(raw)
    for field_name, value, limit in (
        ("session_id", session_id, MAX_KEY_LENGTH),
        ("category", raw.get("category"), MAX_NAME_LENGTH),
        ("name", raw.get("name"), MAX_NAME_LENGTH),
    ):
        problem = _string_problem(value, limit)
        if problem:
            return reject("invalid_event", f"`{field_name}` {problem}.", field=field_name)
    assert isinstance(session_id, str), "the loop above refused any other session id"
    if "data" not in raw:
        return reject("invalid_event", "`data` is required.", field="data")
    if "timestamp" not in raw:
        return reject("invalid_event", "`timestamp` is required.", field="timestamp")
    client_key = raw.get("event_id")
    if client_key is not None:
        problem = _string_problem(client_key, MAX_KEY_LENGTH)
        if problem:
            return reject("invalid_event", f"`event_id` {problem}.", field="event_id")

    if len(encoded) > limits.max_event_bytes:
        return reject(
            "event_too_large",
            f"The event is {len(encoded)} bytes; the limit is {limits.max_event_bytes}.",
            size=len(encoded),
            limit=limits.max_event_bytes,
        )

    data = raw["data"]
    if not isinstance(data, dict):
        return reject("invalid_data", "`data` must be a JSON object.", field="data")
    if not data:
        return reject("invalid_data", "`data` must have at least one key.", field="data")
    # PostgreSQL cannot store NUL in text or jsonb; refuse it on every backend alike.
    if b"\\u0000" in encoded and b"\\u0000" in _encode(data):
        return reject("invalid_data", "`data` must not contain the NUL character.", field="data")
    if _LONG_DIGITS in encoded.translate(_DIGITS_AS_ZERO):
        path = _wide_integer(data, "$.data")
        if path is not None:
            return reject(
                "invalid_data",
                f"`{path}` is an integer outside 64 bits, which The Eye does not store.",
                field="data",
                path=path,
            )

    timestamp = parse_timestamp(raw["timestamp"])
    if timestamp is None:
        return reject(
            "invalid_timestamp",
            "`timestamp` is not an ISO 8601 date and time.",
            field="timestamp",
        )
    if timestamp > received_at + limits.max_clock_skew:
        return reject(
            "future_timestamp",
            "`timestamp` is later than the time The Eye received the event.",
            field="timestamp",
            received_at=format_timestamp(received_at),
        )

    if schema_check is not None:
        violation = schema_check(application_id, raw["category"], raw["name"], data)
        if violation is not None:
            return reject(violation.reason, violation.message, **violation.details)

    return ValidEvent(
        event_id,
        session_id,
        raw["category"],
        raw["name"],
        data,
        timestamp,
        received_at,
        application_id,
    )


def event_keys(raw: Any) -> tuple[str | None, str | None, str | None]:
    """A raw event's session id, category and name, each None unless it is one a valid
    event could have (a string of the allowed length): what its error record is found by."""
    if not isinstance(raw, dict):
        return None, None, None
    return (
        _usable(_session_id(raw), MAX_KEY_LENGTH),
        _usable(raw.get("category"), MAX_NAME_LENGTH),
        _usable(raw.get("name"), MAX_NAME_LENGTH),
    )


def _session_id(raw: dict[str, Any]) -> Any:
    """The session id of a raw event: `session_id`, or Segment-style `session.id`."""
    session_id = raw.get("session_id")
    if session_id is None and isinstance(raw.get("session"), dict):
        session_id = raw["session"].get("id")
    return session_id


def _usable(value: Any, limit: int) -> str | None:
    return value if _string_problem(value, limit) is None else None


def kept_payload(encoded: bytes, limit: int) -> tuple[str, int | None]:
    """What an error record keeps of a payload: all of it, or its first `limit` bytes and
    its whole size."""
    if len(encoded) <= limit:
        return encoded.decode("utf-8", errors="replace"), None
    return encoded[:limit].decode("utf-8", errors="ignore"), len(encoded)


def _wide_integer(value: Any, path: str) -> str | None:
    """The JSON path of the first integer outside 64 bits in `value`, if any."""
    stack = [(value, path)]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            stack += [(v, f"{where}.{k}") for k, v in reversed(item.items())]
        elif isinstance(item, list):
            stack += [(v, f"{where}[{i}]") for i, v in reversed(list(enumerate(item)))]
        elif isinstance(item, int) and not INT_MIN <= item <= INT_MAX:
            return where
    return None


def _string_problem(value: Any, limit: int) -> str | None:
    if value is None:
        return "is required"
    if not isinstance(value, str):
        return "must be a string"
    if not 0 < len(value) <= limit:
        return f"must be 1 to {limit} characters long"
    if "\x00" in value:
        return "must not contain the NUL character"
    return None
