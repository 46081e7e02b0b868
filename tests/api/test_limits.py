"""Rate limiters: safe under threads, bounded by forgetting the least recently used key, and
counting an IPv6 client by its /64."""

from __future__ import annotations

import sys
import threading

from the_eye.api.limits import AddressLimiter, RateLimiter


def test_threads_hammering_a_full_limiter_raise_nothing():
    limiter = RateLimiter(rate=0.001, burst=1, max_keys=50)
    errors: list[BaseException] = []

    def hammer(worker: int) -> None:
        try:
            for i in range(20_000):
                limiter.take((worker, i))
                limiter.wait((worker, i - 1))
        except BaseException as exc:  # any error fails the test
            errors.append(exc)

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        threads = [threading.Thread(target=hammer, args=(n,)) for n in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
    finally:
        sys.setswitchinterval(interval)
    assert errors == []
    assert len(limiter._buckets) <= 50


def test_a_full_limiter_forgets_the_least_recently_used_key_only():
    limiter = RateLimiter(rate=0.001, burst=2, max_keys=3)
    for key in ("attacker", "b", "c"):
        limiter.take(key)
    limiter.take("attacker")  # now spent, and the most recently used
    assert limiter.wait("attacker") > 0
    limiter.take("d")  # one key too many: "b" goes, nothing else
    assert set(limiter._buckets) == {"c", "attacker", "d"}
    assert limiter.wait("attacker") > 0
    assert limiter.take("attacker") > 0


def test_the_addresses_of_one_ipv6_64_share_a_budget():
    limiter = AddressLimiter(rate=0.001, burst=2)
    assert limiter.take("2001:db8:1:2::1") == 0
    assert limiter.take("2001:db8:1:2:ffff::9") == 0
    assert limiter.take("2001:db8:1:2:abcd:1:2:3") > 0
    assert limiter.wait("2001:db8:1:2::77") > 0
    assert limiter.take("2001:db8:1:3::1") == 0  # another /64
    assert limiter.take("192.0.2.1") == 0
    assert limiter.take("192.0.2.2") == 0  # IPv4 addresses count one by one
    assert limiter.take("192.0.2.1") == 0
    assert limiter.take("::ffff:192.0.2.1") > 0  # the same IPv4 client, as IPv6 writes it
    assert limiter.take(None) == 0
