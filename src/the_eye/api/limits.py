"""Rate limits: token buckets held in one API process, in bounded memory.

A bucket holds at most `burst` tokens and refills at `rate` tokens per second; each counted
request takes one. Limits are per process (N API processes allow N times the rate). A lock
guards the buckets, as the event loop (ingest) and worker threads (FastAPI's synchronous
dependencies) share a limiter. A limiter tracks at most `max_keys` buckets: past that, the
least recently used one is forgotten, so a flood of distinct keys costs memory once and
never resets the budget of a key still in use.

`AddressLimiter` counts by client address, an IPv6 address by its /64 network: one host
commonly holds a whole /64, and must not get a fresh budget per address in it.
"""

from __future__ import annotations

import ipaddress
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Hashable

from the_eye.api.problems import ApiError


class RateLimiter:
    """Token buckets by key; `rate` 0 turns the limiter off."""

    def __init__(self, rate: float, burst: float, max_keys: int = 100_000) -> None:
        self.rate, self.burst, self.max_keys = rate, max(burst, 1.0), max(max_keys, 1)
        self.enabled = rate > 0
        # key: [tokens, as of (monotonic)], least recently used first
        self._buckets: OrderedDict[Hashable, list[float]] = OrderedDict()
        self._lock = threading.Lock()

    def key(self, key: Hashable) -> Hashable:
        """The bucket `key` counts against."""
        return key

    def _bucket(self, key: Hashable, now: float) -> list[float]:
        """`key`'s bucket, refilled to `now`; the caller holds the lock."""
        bucket = self._buckets.get(key)
        if bucket is None:
            while len(self._buckets) >= self.max_keys:
                self._buckets.popitem(last=False)
            bucket = self._buckets[key] = [self.burst, now]
        else:
            self._buckets.move_to_end(key)
            bucket[0] = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
        return bucket

    def wait(self, key: Hashable) -> float:
        """Seconds until `key` has a token again; 0 when it has one now (none is taken)."""
        if not self.enabled:
            return 0.0
        key = self.key(key)
        with self._lock:
            if key not in self._buckets:
                return 0.0
            tokens = self._bucket(key, time.monotonic())[0]
        return 0.0 if tokens >= 1 else (1 - tokens) / self.rate

    def take(self, key: Hashable) -> float:
        """Take a token for `key`; 0 when one was there, else the seconds until one is."""
        if not self.enabled:
            return 0.0
        key = self.key(key)
        with self._lock:
            bucket = self._bucket(key, time.monotonic())
            if bucket[0] >= 1:
                bucket[0] -= 1
                return 0.0
            tokens = bucket[0]
        return (1 - tokens) / self.rate


class AddressLimiter(RateLimiter):
    """A `RateLimiter` keyed by client address; the IPv6 addresses of one /64 share a
    bucket."""

    def key(self, key: Hashable) -> Hashable:
        if not isinstance(key, str):
            return key
        try:
            address = ipaddress.ip_address(key)
        except ValueError:
            return key
        if isinstance(address, ipaddress.IPv6Address):
            if address.ipv4_mapped is not None:
                return str(address.ipv4_mapped)
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        return key


def too_many_requests(message: str, wait: float) -> ApiError:
    """A `429` that says, in its message and `Retry-After`, when to come back."""
    seconds = max(1, math.ceil(wait))
    return ApiError(
        429,
        "rate_limited",
        f"{message}; retry in {seconds} s.",
        headers={"Retry-After": str(seconds)},
    )


def refuse_failing_address(auth_failures: RateLimiter, client: str | None) -> None:
    """Refuse (`429`) an address whose failed authentications are past their budget."""
    wait = auth_failures.wait(client)
    if wait:
        raise too_many_requests("Too many failed authentications from this address", wait)
