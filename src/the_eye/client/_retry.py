"""When a batch is worth sending again, and how long to wait first."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass
from datetime import UTC
from email.utils import parsedate_to_datetime


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Exponential backoff with jitter, for network errors, 429 and 5xx answers.

    Other 4xx answers are never retried: the same request would get the same answer.
    """

    max_retries: int = 10
    backoff: float = 0.5  # seconds before the first retry, doubling after each
    max_backoff: float = 30.0
    max_retry_after: float = 300.0  # a guard against an absurd `Retry-After`

    def retries(self, status: int) -> bool:
        """Whether an answer with this status may succeed if sent again."""
        return status == 429 or 500 <= status <= 599

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number `retry` (0 for the first)."""
        ceiling = min(self.max_backoff, self.backoff * 2 ** min(retry, 32))
        # Half fixed, half random: clients that failed together do not retry together, and
        # the wait still grows with every failure.
        wait = random.uniform(ceiling / 2, ceiling)
        if retry_after is not None:
            wait = max(wait, min(retry_after, self.max_retry_after))
        return wait


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a `Retry-After` header: a number of seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:  # `-0000`: UTC, not this machine's zone
        when = when.replace(tzinfo=UTC)
    return max(when.timestamp() - time.time(), 0.0)
