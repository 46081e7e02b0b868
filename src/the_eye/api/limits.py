"""Rate limits: token buckets held in one API process, in bounded memory.

A bucket holds at most `burst` tokens and refills at `rate` tokens per second; each counted
request takes one. Limits are per process (N API processes allow N times the rate) and
approximate under threads (two threads may both take the last token): they exist to keep
abuse from costing the service, not to bill anyone. A limiter that tracks `max_keys`
buckets forgets the full ones first, then all, so a flood of distinct keys costs memory
once and never blocks a newcomer for long.
"""

from __future__ import annotations

import math
import time
from collections.abc import Hashable

from the_eye.api.problems import ApiError


class RateLimiter:
    """Token buckets by key; `rate` 0 turns the limiter off."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate, max(burst, 1.0), max_keys
        self.enabled = rate > 0
        self._buckets: dict[Hashable, list[float]] = {}  # key: [tokens, as of (monotonic)]

    def _bucket(self, key: Hashable, now: float) -> list[float]:
        bucket = self._buckets.get(key)
        if bucket is None:
            if len(self._buckets) >= self.max_keys:
                self._forget_full(now)
            bucket = self._buckets[key] = [self.burst, now]
        else:
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        return bucket

    def _forget_full(self, now: float) -> None:
        refill = self.burst / self.rate
        full = [k for k, (_, at) in self._buckets.items() if now - at >= refill]
        for key in full:
            del self._buckets[key]
        if len(self._buckets) >= self.max_keys:
            self._buckets.clear()

    def wait(self, key: Hashable) -> float:
        """Seconds until `key` has a token again; 0 when it has one now (none is taken)."""
        if not self.enabled or key not in self._buckets:
            return 0.0
        tokens = self._bucket(key, time.monotonic())[0]
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: Hashable) -> float:
        """Take a token for `key`; 0 when one was there, else the seconds until one is."""
        if not self.enabled:
            return 0.0
        bucket = self._bucket(key, time.monotonic())
        if bucket[0] >= 1:
            bucket[0] -= 1
            return 0.0
        return (1 - bucket[0]) / self.rate


def too_many_requests(message: str, wait: float) -> ApiError:
    """A `429` that says, in its message and `Retry-After`, when to come back."""
    seconds = max(1, math.ceil(wait))
    return ApiError(
        429,
        "rate_limited",
        f"{message}; retry in {seconds} s.",
        headers={"Retry-After": str(seconds)},
    )
