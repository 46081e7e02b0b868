"""How fast `GET /stats/` answers over a big store.

Seeds a fresh SQLite (or THE_EYE_DATABASE_URL) store with N events through the store layer
(the same writes a processor makes, rollups included), then times /stats/ queries in
process, through the real application (FastAPI's test client: routing, auth, JSON), and
the same counts made straight from the events table for comparison.

    .venv/bin/python benchmarks/stats_latency.py --events 1000000
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from fastapi.testclient import TestClient

from the_eye.api.app import create_app
from the_eye.config import Settings
from the_eye.store.credentials import create_application, create_token
from the_eye.store.engine import create_engine
from the_eye.store.migrate import migrate
from the_eye.store.tables import events
from the_eye.store.writes import store_events

START = datetime(2021, 1, 1)
TYPES = [
    (category, name)
    for category in ("page interaction", "form interaction", "commerce")
    for name in ("pageview", "cta click", "submit", "scroll")
]


def seed(settings: Settings, n: int, days: int, batch: int = 5000) -> str:
    engine = create_engine(settings)
    migrate(engine)
    with engine.begin() as conn:
        apps = [create_application(conn, f"app-{i}").id for i in range(2)]
        token = create_token(conn, "bench", "read")
    rng = random.Random(1)
    span = days * 86400
    began = time.perf_counter()
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            category, name = rng.choice(TYPES)
            moment = START + timedelta(seconds=rng.random() * span)
            rows.append(
                {
                    "application_id": rng.choice(apps),
                    "event_id": f"e-{i}",
                    "session_id": f"s-{rng.randrange(n // 20 or 1)}",
                    "category": category,
                    "name": name,
                    "data": {"path": "/", "i": i},
                    "timestamp": moment,
                    "received_at": moment,
                }
            )
        with engine.begin() as conn:
            store_events(conn, rows)
    print(f"seeded {n:,} events over {days} days in {time.perf_counter() - began:.0f} s")
    engine.dispose()
    return token


def timed(call, repeat: int) -> tuple[float, float]:
    call()  # warm the caches once, as a running server would be
    samples = []
    for _ in range(repeat):
        began = time.perf_counter()
        call()
        samples.append((time.perf_counter() - began) * 1000)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.95) - 1]


def store_arguments(description: str, repeat: int) -> argparse.ArgumentParser:
    """The options of a measurement over a seeded store: its size, its time span, the
    number of timed runs and the store (a fresh SQLite file by default)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=repeat)
    parser.add_argument("--database-url", help="default: a new SQLite file in a temp dir")
    return parser


def main() -> None:
    args = store_arguments(__doc__.split("\n\n")[0], repeat=20).parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(database_url=url, _env_file=None)
        token = seed(settings, args.events, args.days)
        end = START + timedelta(days=args.days)
        mid = START + timedelta(days=args.days // 2, seconds=37)
        queries = {
            "whole range, totals": {},
            f"{args.days} days, bucket=day": {"bucket": "day"},
            f"{args.days} days, bucket=hour": {"bucket": "hour"},
            "1 day mid-minute edges, bucket=hour": {
                "timestamp__gte": mid.isoformat(),
                "timestamp__lte": (mid + timedelta(days=1)).isoformat(),
                "bucket": "hour",
            },
            "2 hours, bucket=minute": {
                "timestamp__gte": mid.isoformat(),
                "timestamp__lte": (mid + timedelta(hours=2)).isoformat(),
                "bucket": "minute",
            },
            "7 days, one application, bucket=day": {
                "timestamp__gte": START.isoformat(),
                "timestamp__lte": (START + timedelta(days=7)).isoformat(),
                "application": "app-1",
                "bucket": "day",
            },
        }
        for params in queries.values():
            if "timestamp__gte" not in params:
                params.update(timestamp__gte=START.isoformat(), timestamp__lte=end.isoformat())

        print(f"\nGET /stats/ over {args.events:,} events ({args.repeat} runs each, ms)")
        print(f"{'query':40} {'median':>8} {'p95':>8}")
        with TestClient(create_app(settings)) as client:
            headers = {"Authorization": f"Bearer {token}"}
            for label, params in queries.items():

                def ask(params=params):
                    answer = client.get("/stats/", params=params, headers=headers)
                    assert answer.status_code == 200, answer.text

                median, p95 = timed(ask, args.repeat)
                print(f"{label:40} {median:8.1f} {p95:8.1f}")

        engine = create_engine(settings)
        naive = (
            sa.select(events.c.category, events.c.name, sa.func.count())
            .where(events.c.timestamp.between(START, end))
            .group_by(events.c.category, events.c.name)
        )
        with engine.connect() as conn:
            median, p95 = timed(lambda: conn.execute(naive).all(), max(3, args.repeat // 5))
        print(f"{'(for comparison: COUNT over events)':40} {median:8.1f} {p95:8.1f}")
        engine.dispose()


if __name__ == "__main__":
    main()
