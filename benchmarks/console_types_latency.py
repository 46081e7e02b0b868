"""How fast the console's event-type pages and the schema dry run answer over a big store.

Seeds a fresh SQLite (or THE_EYE_DATABASE_URL) store with N events through the store layer
(as `stats_latency.py` does) and M error records of the same types, signs in to the console
with the admin token, and times, in process through the real application (FastAPI's test
client: routing, session, CSRF, templates), the list of types, one type's page, and dry runs
of a schema over the newest 1,000 and 10,000 events and errors of one type.

    .venv/bin/python benchmarks/console_types_latency.py --events 1000000
"""

from __future__ import annotations

import argparse
import json
import re
import tempfile
from datetime import timedelta
from pathlib import Path

import msgspec
from fastapi.testclient import TestClient
from stats_latency import START, TYPES, seed, timed

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


def signed_in(client: TestClient, token: str) -> str:
    """Sign `client` in to the console; return the session's CSRF token."""
    form = client.get("/console/sign-in/").text
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert csrf is not None
    answer = client.post(
        "/console/sign-in/", data={"token": token, "csrf_token": csrf.group(1), "next": "/console/"}
    )
    assert answer.status_code == 200, answer.text
    session_csrf = re.search(r'name="csrf_token" value="([^"]+)"', answer.text)
    assert session_csrf is not None
    return session_csrf.group(1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--errors", type=int, default=100_000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=10)
    parser.add_argument("--database-url", help="default: a new SQLite file in a temp dir")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        settings = Settings(database_url=url, admin_token="bench-admin-token", _env_file=None)
        seed(settings, args.events, args.days)
        seed_errors(settings, args.errors)
        print(f"seeded {args.errors:,} errors")
        type_page = "/console/types/schema/?category=page+interaction&name=pageview"
        print(
            f"\nconsole over {args.events:,} events, {args.errors:,} errors "
            f"({args.repeat} runs, ms)"
        )
        print(f"{'request':48} {'median':>8} {'p95':>8}")
        with TestClient(create_app(settings)) as client:
            csrf = signed_in(client, "bench-admin-token")

            def get(path: str) -> None:
                answer = client.get(path)
                assert answer.status_code == 200, answer.text

            def dry_run(limit: int) -> None:
                answer = client.post(
                    "/console/types/schema/dry-run/",
                    data={
                        "category": "page interaction",
                        "name": "pageview",
                        "draft": json.dumps(SCHEMA),
                        "limit": str(limit),
                    },
                    headers={"X-CSRF-Token": csrf, "HX-Request": "true"},
                )
                assert answer.status_code == 200 and "pass" in answer.text, answer.text

            for label, call in (
                ("GET /console/types/", lambda: get("/console/types/")),
                ("GET /console/types/schema/ (pageview)", lambda: get(type_page)),
                ("POST dry run, N = 1,000", lambda: dry_run(1000)),
                ("POST dry run, N = 10,000", lambda: dry_run(10_000)),
            ):
                median, p95 = timed(call, args.repeat)
                print(f"{label:48} {median:8.1f} {p95:8.1f}")


if __name__ == "__main__":
    main()
