"""Latency of the two queries the data team runs most: a session timeline and a time-range page.

Requests go one at a time over one keep-alive connection, so each latency is the server's
alone, and each answer is decoded to count its rows: a measurement, not load, so it uses
the standard library's HTTP client rather than wrk.
"""

from __future__ import annotations

import http.client
import random
import time
from dataclasses import dataclass
from urllib.parse import urlencode

import msgspec

from the_eye_bench.seed import SeededStore
from the_eye_bench.stats import median

WARMUP = 5


@dataclass(slots=True)
class QueryLatency:
    """Median latencies, and how many rows the measured answers held on average."""

    session_ms: float
    session_rows: float
    range_ms: float
    range_rows: float
    samples: int


def measure_queries(
    host: str, port: int, token: str, store: SeededStore, samples: int
) -> QueryLatency:
    """Time `samples` timelines of different sessions and `samples` pages of different hours."""
    rng = random.Random(11)
    sessions = store.sample_sessions(samples + WARMUP, rng)
    timelines = [f"/sessions/{sid}/events/" for sid in sessions]
    ranges = [
        "/events/?"
        + urlencode(
            {
                "category": category,
                "timestamp__gte": begin.isoformat(),
                "timestamp__lte": end.isoformat(),
                "limit": 100,
            }
        )
        for category, begin, end in store.sample_ranges(samples + WARMUP, rng)
    ]
    conn = http.client.HTTPConnection(host, port, timeout=30)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        session_ms, session_rows = _time_all(conn, timelines, headers)
        range_ms, range_rows = _time_all(conn, ranges, headers)
    finally:
        conn.close()
    return QueryLatency(
        session_ms=median(session_ms),
        session_rows=sum(session_rows) / max(len(session_rows), 1),
        range_ms=median(range_ms),
        range_rows=sum(range_rows) / max(len(range_rows), 1),
        samples=len(session_ms),
    )


def _time_all(
    conn: http.client.HTTPConnection, targets: list[str], headers: dict[str, str]
) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    rows: list[int] = []
    for i, target in enumerate(targets):
        began = time.perf_counter()
        conn.request("GET", target, headers=headers)
        response = conn.getresponse()
        body = response.read()
        elapsed = time.perf_counter() - began
        if response.status != 200:
            raise RuntimeError(f"GET {target} answered {response.status}: {body[:300]!r}")
        if i >= WARMUP:
            latencies.append(elapsed * 1000)
            rows.append(len(msgspec.json.decode(body)["results"]))
    return latencies, rows
