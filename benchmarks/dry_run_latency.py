"""How long a schema dry run takes over a big store.

Seeds a fresh SQLite (or THE_EYE_DATABASE_URL) store with N events through the store layer
(as `stats_latency.py` does) and M error records of the same types, then times
`POST /schemas/dry-run/` in process through the real application (FastAPI's test client)
over the newest 1,000 and 10,000 events and errors of one type. (The console's pages are
timed by `the-eye bench --only queries`.)

    .venv/bin/python benchmarks/dry_run_latency.py --events 1000000
"""

from __future__ import annotations

import tempfile
from datetime import timedelta
from pathlib import Path

import msgspec
from fastapi.testclient import TestClient
from stats_latency import START, TYPES, seed, store_arguments, timed

from the_eye.api.app import create_app
from the_eye.config import Settings
from the_eye.services.schemas import register_schema
from the_eye.store.engine import create_engine
from the_eye.store.writes import store_errors

SCHEMA = {"type": "object", "required": ["path"], "properties": {"i": {"maximum": 500_000}}}


def seed_errors(settings: Settings, n: int, batch: int = 5000) -> None:
    """`n` schema_violation records, their raw events spread over the same types."""
    engine = create_engine(settings)
    with engine.begin() as conn:
        register_schema(conn, "page interaction", "pageview", {"required": ["referrer"]})
    for start in range(0, n, batch):
        rows = []
        for i in range(start, min(n, start + batch)):
            category, name = TYPES[i % len(TYPES)]
            raw = {
                "session_id": f"s-{i}",
                "category": category,
                "name": name,
                "event_id": f"x-{i}",
                "data": {"path": "/", "i": i},
                "timestamp": (START + timedelta(seconds=i)).isoformat(),
            }
            rows.append(
                {
                    "application_id": 1,
                    "event_id": f"x-{i}",
                    "reason": "schema_violation",
                    "message": "`$.data.referrer` is required",
                    "details": None,
                    "payload": msgspec.json.encode(raw).decode(),
                    "received_at": START + timedelta(seconds=i),
                    "session_id": raw["session_id"],
                    "category": category,
                    "name": name,
                }
            )
        with engine.begin() as conn:
            store_errors(conn, rows)
    engine.dispose()


def main() -> None:
    parser = store_arguments(__doc__.split("\n\n")[0], repeat=10)
    parser.add_argument("--errors", type=int, default=100_000)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(database_url=url, _env_file=None)
        token = seed(settings, args.events, args.days)
        seed_errors(settings, args.errors)
        print(f"seeded {args.errors:,} errors")
        print(
            f"\nPOST /schemas/dry-run/ over {args.events:,} events, {args.errors:,} errors "
            f"({args.repeat} runs, ms)"
        )
        print(f"{'limit':48} {'median':>8} {'p95':>8}")
        with TestClient(create_app(settings)) as client:
            headers = {"Authorization": f"Bearer {token}"}
            body = {"category": "page interaction", "name": "pageview", "schema": SCHEMA}
            for limit in (1000, 10_000):

                def dry_run(limit: int = limit) -> None:
                    answer = client.post(
                        "/schemas/dry-run/", json={**body, "limit": limit}, headers=headers
                    )
                    assert answer.status_code == 200, answer.text

                median, p95 = timed(dry_run, args.repeat)
                print(f"{f'{limit:,}':48} {median:8.1f} {p95:8.1f}")


if __name__ == "__main__":
    main()
