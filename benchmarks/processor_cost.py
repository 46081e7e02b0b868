"""The processor's CPU per stored event, beside the floor of a bare insert of the same rows.

Builds a fresh migrated SQLite store in a temp dir (or, given a PostgreSQL server's URL, a
fresh database on it) and an application, then, for each repetition, 10,000 events as the
bench sends them (`the_eye_bench.traffic.write_bodies` bodies: most in requests of 100
events, some in requests of one; a few percent invalid, so that the error path runs), with
fresh event ids and sessions. It times with `time.process_time()`:

- checks: `process_messages`, the pure checks that turn the messages into rows;
- write: `the_eye.processor.worker.write` of those rows, in one transaction;
- floor: the same event rows inserted by the driver alone into a second fresh store (same
  table, same indexes): SQLite's `executemany`, PostgreSQL's `COPY`.

On PostgreSQL the server backend's CPU (psutil, on `pg_backend_pid()`) is added to the
write and to the floor. Prints the median µs per stored event of each, and total / floor.

    .venv/bin/python benchmarks/processor_cost.py
    .venv/bin/python benchmarks/processor_cost.py --database-url postgresql://postgres@127.0.0.1/postgres
"""

from __future__ import annotations

import argparse
import random
import sqlite3
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import psutil
import sqlalchemy as sa

from the_eye.api.routes.ingest import server_event_ids
from the_eye.config import Settings
from the_eye.processor.batch import BatchRows, process_messages
from the_eye.processor.checker import EventChecker
from the_eye.processor.worker import write
from the_eye.queue import EVENTS, Message
from the_eye.store.credentials import create_application
from the_eye.store.engine import create_engine, normalise_url
from the_eye.store.migrate import migrate
from the_eye.store.writes import INSERTED_EVENT_COLUMNS, event_values
from the_eye.timestamps import utcnow
from the_eye_bench.traffic import write_bodies

# What a few percent of senders get wrong, one kind after another.
INVALID: list[Callable[[dict[str, Any]], Any]] = [
    lambda event: {**event, "data": {}},
    lambda event: {**event, "timestamp": "someday"},
    lambda event: {**event, "timestamp": "2999-01-01T00:00:00Z"},
    lambda event: {key: value for key, value in event.items() if key != "category"},
    lambda event: [event["name"]],
]


@dataclass(slots=True)
class Store:
    """A migrated store: its settings and its engine."""

    settings: Settings
    engine: sa.Engine


def messages(
    tmp: Path, app_id: int, events: int, single: float, invalid: float, seed: int
) -> list[Message]:
    """Requests as the API queues them: bodies of 100 events and of 1, fresh ids."""
    now = utcnow()
    singles = int(events * single)
    batches = (events - singles) // 100
    rng = random.Random(seed)
    lines: list[bytes] = []
    for bodies, per_body in ((batches, 100), (singles, 1)):
        path = tmp / f"bodies-{per_body}.jsonl"
        write_bodies(path, bodies, per_body, now, seed)
        lines += path.read_bytes().splitlines()
    rng.shuffle(lines)
    queued = []
    kind = 0
    for line in lines:
        document = msgspec.json.decode(line)
        batch = document["batch"] if isinstance(document, dict) and "batch" in document else None
        raws = batch if batch is not None else [document]
        for i, event in enumerate(raws):
            if rng.random() < invalid:
                raws[i] = INVALID[kind % len(INVALID)](event)
                kind += 1
        body = msgspec.json.encode({"batch": raws} if batch is not None else raws[0])
        queued.append(Message(app_id, EVENTS, now, server_event_ids(len(raws)), body))
    return queued


@contextmanager
def new_store(database_url: str | None, tmp: Path, name: str) -> Iterator[Store]:
    """A fresh migrated store: a SQLite file in `tmp`, or a new database on the server."""
    if database_url is None:
        settings = Settings(database_url=f"sqlite:///{tmp / f'{name}.db'}", _env_file=None)
        engine = create_engine(settings)
        migrate(engine)
        yield Store(settings, engine)
        engine.dispose()
        return
    admin = sa.create_engine(normalise_url(database_url), isolation_level="AUTOCOMMIT")
    database = f"processor_cost_{name}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{database}"')
    url = sa.make_url(normalise_url(database_url)).set(database=database)
    settings = Settings(database_url=url.render_as_string(hide_password=False), _env_file=None)
    engine = create_engine(settings)
    try:
        migrate(engine)
        yield Store(settings, engine)
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        admin.dispose()


# CPU seconds so far of this process and of the connection's server backend (0 on SQLite).
Cpu = Callable[[], tuple[float, float]]


def backend_cpu(conn: sa.Connection) -> Cpu:
    """How to read the CPU a statement costs on `conn`, on both sides of it."""
    if conn.dialect.name != "postgresql":
        return lambda: (time.process_time(), 0.0)
    backend = psutil.Process(conn.exec_driver_sql("SELECT pg_backend_pid()").scalar_one())
    conn.commit()

    def cpu() -> tuple[float, float]:
        times = backend.cpu_times()
        return time.process_time(), times.user + times.system

    return cpu


def spent(cpu: Cpu, began: tuple[float, float]) -> tuple[float, float]:
    """Total and server CPU seconds since `began`."""
    client, server = cpu()
    return client - began[0] + server - began[1], server - began[1]


def timed_write(store: Store, rows: BatchRows) -> tuple[float, float]:
    with store.engine.connect() as conn:
        cpu = backend_cpu(conn)
        began = cpu()
        with conn.begin():
            write(conn, rows)
        return spent(cpu, began)


def timed_floor(store: Store, rows: BatchRows) -> tuple[float, float]:
    """The driver's bare insert of the event rows, values already in its types."""
    columns = ", ".join(INSERTED_EVENT_COLUMNS)
    with store.engine.connect() as conn:
        values = event_values(conn.dialect.name, rows.events)
    if store.engine.dialect.name == "sqlite":
        path = store.engine.url.database
        assert path is not None
        db = sqlite3.connect(path, isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute(f"PRAGMA synchronous={store.settings.sqlite_synchronous}")
        marks = ", ".join("?" * len(INSERTED_EVENT_COLUMNS))
        began = time.process_time()
        db.execute("BEGIN")
        db.executemany(f"INSERT INTO events ({columns}) VALUES ({marks})", values)
        db.execute("COMMIT")
        used = time.process_time() - began
        db.close()
        return used, 0.0
    with store.engine.connect() as conn:
        cpu = backend_cpu(conn)
        raw = conn.connection.dbapi_connection
        assert raw is not None
        began = cpu()
        with raw.cursor() as cursor, cursor.copy(f"COPY events ({columns}) FROM STDIN") as copy:
            for value in values:
                copy.write_row(value)
        raw.commit()
        return spent(cpu, began)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--repeat", type=int, default=9)
    parser.add_argument("--single", type=float, default=0.1, help="share in 1-event requests")
    parser.add_argument("--invalid", type=float, default=0.03, help="share of invalid events")
    parser.add_argument(
        "--database-url", help="a PostgreSQL server (default: new SQLite files in a temp dir)"
    )
    parser.add_argument("--profile", choices=["checks", "write"], help="pyinstrument one part")
    args = parser.parse_args()

    samples: dict[str, list[float]] = {
        name: [] for name in ("checks", "write", "floor", "write_server", "floor_server")
    }
    stored: list[int] = []
    with (
        tempfile.TemporaryDirectory() as tmp,
        new_store(args.database_url, Path(tmp), "store") as store,
        new_store(args.database_url, Path(tmp), "floor") as floor,
    ):
        with store.engine.begin() as conn:
            app_id = create_application(conn, "bench").id
        checker = EventChecker.from_settings(store.settings, store.engine)
        checker.refresh(force=True)
        profiler = None
        for repetition in range(args.repeat + 1):  # the first warms the caches, untimed
            queued = messages(Path(tmp), app_id, args.events, args.single, args.invalid, repetition)
            if args.profile == "checks" and repetition:
                profiler = start_profile(profiler)
            began = time.process_time()
            rows = process_messages(queued, checker)
            checks = time.process_time() - began
            if args.profile == "checks" and repetition:
                stop_profile(profiler)
            if args.profile == "write" and repetition:
                profiler = start_profile(profiler)
            written, written_server = timed_write(store, rows)
            if args.profile == "write" and repetition:
                stop_profile(profiler)
            below, below_server = timed_floor(floor, rows)
            if repetition:
                samples["checks"].append(checks)
                samples["write"].append(written)
                samples["floor"].append(below)
                samples["write_server"].append(written_server)
                samples["floor_server"].append(below_server)
                stored.append(len(rows.events))

    n = statistics.median(stored)
    per_event = {name: statistics.median(s) / n * 1e6 for name, s in samples.items()}
    total = per_event["checks"] + per_event["write"]
    backend = "PostgreSQL" if args.database_url else "SQLite"
    print(
        f"\n{backend}: {args.events:,} events a run ({n:,.0f} stored), "
        f"{args.repeat} runs, median CPU µs per stored event"
    )
    print(f"{'checks':>8} {'write':>8} {'total':>8} {'floor':>8} {'ratio':>8}")
    print(
        f"{per_event['checks']:8.2f} {per_event['write']:8.2f} {total:8.2f} "
        f"{per_event['floor']:8.2f} {total / per_event['floor']:8.2f}"
    )
    if args.database_url:
        print(
            f"of which the server backend: write {per_event['write_server']:.2f}, "
            f"floor {per_event['floor_server']:.2f}"
        )
    if profiler is not None:
        profiler.print(show_all=False)


def start_profile(profiler: Any) -> Any:
    from pyinstrument import Profiler  # installed by hand: not one of The Eye's dependencies

    profiler = profiler or Profiler(interval=0.0002)
    profiler.start()
    return profiler


def stop_profile(profiler: Any) -> None:
    profiler.stop()


if __name__ == "__main__":
    main()
