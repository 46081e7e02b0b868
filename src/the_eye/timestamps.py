"""Times as The Eye keeps them: naive UTC in the store, ISO 8601 with `Z` on output."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any


def utcnow() -> datetime:
    """Now, as the naive UTC datetime the store keeps."""
    return datetime.now(UTC).replace(tzinfo=None)


def parse_timestamp(value: Any) -> datetime | None:
    """An ISO 8601 string (`T` or space, optional fraction and offset) as naive UTC, or None."""
    if not isinstance(value, str) or len(value) < 10 or len(value) > 64:
        return None
    try:
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is not None:
            parsed = parsed.astimezone(UTC)
            # Not `replace(tzinfo=None)`: its keyword arguments cost several times as much.
            parsed = datetime.combine(parsed.date(), parsed.time())
    except (ValueError, OverflowError):  # OverflowError: an offset past year 1 or 9999
        return None
    return parsed


def format_timestamp(value: datetime) -> str:
    """A naive UTC datetime as The Eye prints every time: `2021-01-01T09:15:27.243860Z`."""
    return value.isoformat(timespec="microseconds") + "Z"
