"""The store a benchmark runs on: the bench's credentials and a history of events to query.

The history is written through the library: `store_events` takes seconds where HTTP would
take minutes, and writes the same rows and sessions the processor would. Events go in in
timestamp order, so each session's events lie scattered among everyone else's, as in a
real store.
"""

from __future__ import annotations

import random
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.engine import Engine

from the_eye.store.credentials import (
    create_application,
    create_token,
    hash_secret,
    revoke_application,
)
from the_eye.store.tables import api_tokens
from the_eye.store.writes import WriteResult, bump_counters, store_events
from the_eye_bench.traffic import FORM, PAGE, traffic

CHUNK = 10_000
# About 5,000 events an hour whatever the size, so a one-hour page of a category is full.
EVENTS_PER_DAY = 100_000


@dataclass(slots=True)
class BenchCredentials:
    """The application the load is sent as, and the stored read token queries use.

    A stored token, like the data team's, so that query latencies include its lookup.
    """

    application_id: int
    write_key: str
    token: str


def create_credentials(engine: Engine) -> BenchCredentials:
    name = f"bench-{secrets.token_hex(4)}"
    with engine.begin() as conn:
        application = create_application(conn, name)
        token = create_token(conn, name, "read")
    assert application.write_key is not None
    return BenchCredentials(application.id, application.write_key, token)


def revoke_credentials(engine: Engine, credentials: BenchCredentials) -> None:
    """Leave a shared database with no working credential of the benchmark's."""
    with engine.begin() as conn:
        revoke_application(conn, credentials.application_id)
        conn.execute(
            api_tokens.update()
            .where(api_tokens.c.token_hash == hash_secret(credentials.token))
            .values(active=False)
        )


@dataclass(slots=True)
class SeededStore:
    """What was written, and where the query measurements can look."""

    events: int
    seconds: float
    start: datetime
    end: datetime
    method: str
    sessions: dict[str, int] = field(default_factory=dict)

    def sample_sessions(self, count: int, rng: random.Random) -> list[str]:
        """Sessions whose whole visit (10 events or more) is in the store."""
        full = [sid for sid, n in self.sessions.items() if n >= 10]
        return rng.sample(full, min(count, len(full)))

    def sample_ranges(self, count: int, rng: random.Random) -> list[tuple[str, datetime, datetime]]:
        """(category, from, to) one-hour windows inside the seeded history."""
        span = (self.end - self.start).total_seconds() - 7200
        windows = []
        for i in range(count):
            begin = self.start + timedelta(seconds=3600 + rng.uniform(0, max(span, 0)))
            windows.append((PAGE if i % 2 == 0 else FORM, begin, begin + timedelta(hours=1)))
        return windows


def seed_store(
    engine: Engine,
    application_id: int,
    count: int,
    now: datetime,
    on_progress: Callable[[int], None] | None = None,
) -> SeededStore:
    """Write `count` events ending two hours before `now`, in chunks of `CHUNK` per transaction."""
    days = max(count / EVENTS_PER_DAY, 0.25)
    end = now - timedelta(hours=2)
    start = end - timedelta(days=days)
    seeded = SeededStore(
        0, 0.0, start, end, f"the_eye.store.writes.store_events, {CHUNK} a transaction"
    )
    began = time.perf_counter()
    rng = random.Random(7)
    rows: list[dict[str, Any]] = []
    last = start
    for event in traffic(count, start, end, seed=3):
        last = event.timestamp
        seeded.sessions[event.session_id] = seeded.sessions.get(event.session_id, 0) + 1
        rows.append(
            {
                "application_id": application_id,
                "event_id": f"seed-{seeded.events + len(rows)}",
                "session_id": event.session_id,
                "category": event.category,
                "name": event.name,
                "data": event.data,
                "timestamp": event.timestamp,
                "received_at": event.timestamp + timedelta(seconds=rng.uniform(0.05, 2.0)),
            }
        )
        if len(rows) == CHUNK:
            seeded.events += _write(engine, rows)
            rows = []
            if on_progress is not None:
                on_progress(seeded.events)
    if rows:
        seeded.events += _write(engine, rows)
    # Query windows are drawn from where the history really is.
    seeded.end = last
    if on_progress is not None:
        on_progress(seeded.events)
    seeded.seconds = time.perf_counter() - began
    return seeded


def _write(engine: Engine, rows: list[dict[str, Any]]) -> int:
    with engine.begin() as conn:
        stored = store_events(conn, rows)
        # Keep /metrics' totals true to the store, as if the processor had written these.
        bump_counters(conn, WriteResult(stored=stored, duplicates=len(rows) - stored, errored=0))
    return len(rows)
