"""Latency of the two queries the data team runs most: a session timeline and a time-range page."""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import orjson

from the_eye.bench.client import Client, query_target
from the_eye.bench.seed import SeededStore
from the_eye.bench.stats import median

WARMUP = 5


@dataclass(slots=True)
class QueryLatency:
    """Median latencies, and how many rows the measured answers held on average."""

    session_ms: float
    session_rows: float
    range_ms: float
    range_rows: float
    samples: int


async def measure_queries(
    host: str, port: int, token: str, store: SeededStore, samples: int
) -> QueryLatency:
    """Time `samples` timelines of different sessions and `samples` pages of different hours.

    Requests go one at a time, so each latency is the server's alone.
    """
    rng = random.Random(11)
    headers = {"Authorization": f"Bearer {token}"}
    sessions = store.sample_sessions(samples + WARMUP, rng)
    timelines = [f"/sessions/{sid}/events/" for sid in sessions]
    ranges = [
        query_target(
            "/events/",
            {
                "category": category,
                "timestamp__gte": begin.isoformat(),
                "timestamp__lte": end.isoformat(),
                "limit": 100,
            },
        )
        for category, begin, end in store.sample_ranges(samples + WARMUP, rng)
    ]
    client = Client(host, port)
    try:
        session_ms, session_rows = await _time_all(client, timelines, headers)
        range_ms, range_rows = await _time_all(client, ranges, headers)
    finally:
        client.close()
    return QueryLatency(
        session_ms=median(session_ms),
        session_rows=sum(session_rows) / max(len(session_rows), 1),
        range_ms=median(range_ms),
        range_rows=sum(range_rows) / max(len(range_rows), 1),
        samples=len(session_ms),
    )


async def _time_all(
    client: Client, targets: list[str], headers: dict[str, str]
) -> tuple[list[float], list[int]]:
    latencies: list[float] = []
    rows: list[int] = []
    for i, target in enumerate(targets):
        began = time.perf_counter()
        response = await client.get(target, headers)
        elapsed = time.perf_counter() - began
        if response.status != 200:
            raise RuntimeError(f"GET {target} answered {response.status}: {response.body[:300]!r}")
        if i >= WARMUP:
            latencies.append(elapsed * 1000)
            rows.append(len(orjson.loads(response.body)["results"]))
    return latencies, rows
