"""The floor: the CPU that storing the run's events costs at the least, measured in the same run.

The events of the batch bodies the run sends, checked and mapped onto the `events` table's
columns as the processor maps them, are inserted with no more than the database needs, into
the store itself as the run left it: the same table, the same indexes, the same millions of
rows already in them (an index that big costs each insert several times what an empty one
does, so a fresh table would make a floor no processor could reach). On SQLite, a plain
INSERT a row, a commit every `CHUNK` rows, with the store's PRAGMAs; the bench's store is
thrown away after the run. On PostgreSQL, COPY in one transaction that is rolled back, and
the table vacuumed afterwards, so the store is left as it was. The CPU is this thread's,
plus, on a local PostgreSQL, its backend's.
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import psutil
from sqlalchemy.engine import make_url

from the_eye.api.routes.ingest import server_event_ids
from the_eye.config import Settings
from the_eye.processor.checks import Limits, ValidEvent, check_event
from the_eye.store.engine import sqlite_file
from the_eye.store.writes import INSERTED_EVENT_COLUMNS, event_values
from the_eye_bench.cpu import is_local
from the_eye_bench.traffic import BodyFile

# The processor's batch size.
CHUNK = 10_000
FLOOR_EVENTS = 100_000
# Other work on the machine only ever adds to the CPU an insert takes: the least of a few
# rounds is the floor.
FLOOR_ROUNDS = 3

Row = tuple[Any, ...]


@dataclass(slots=True)
class Floor:
    """What the bare inserts cost: CPU seconds in all, and the server's share of them."""

    events: int
    cpu_s: float
    server_cpu_s: float | None
    method: str

    @property
    def cpu_us_per_event(self) -> float:
        return self.cpu_s * 1e6 / self.events if self.events else 0.0


def floor_rows(
    batch: BodyFile, count: int, application_id: int, received_at: datetime
) -> list[dict[str, Any]]:
    """`count` rows of the `events` table, as the processor makes them from the batch
    bodies' events; the events repeat as needed, each time with fresh event ids made as the
    API makes them, so no two rows share the idempotency key."""
    decode = msgspec.json.Decoder().decode
    events = [raw for body in batch.path.read_bytes().splitlines() for raw in decode(body)["batch"]]
    ids = server_event_ids(count)
    rows = []
    for i, event_id in enumerate(ids):
        raw = events[i % len(events)]
        checked = check_event(raw, event_id, received_at, Limits(), None, application_id)
        if not isinstance(checked, ValidEvent):
            raise ValueError(f"a batch event failed its checks: {checked.message}")
        rows.append(checked.row())
    return rows


def measure_floor(
    database_url: str, rows: list[dict[str, Any]], rounds: int = FLOOR_ROUNDS
) -> list[Floor]:
    """`rounds` floors for the store at `database_url`, least CPU first; each SQLite round
    with event ids of its own, as its rows stay."""
    if database_url.startswith("sqlite"):
        path = sqlite_file(database_url)
        if path is None:
            raise ValueError("the SQLite floor needs the store's file")
        floors = [sqlite_floor(path, _with_new_ids(rows)) for _ in range(rounds)]
    else:
        floors = [postgresql_floor(database_url, rows) for _ in range(rounds)]
        _vacuum(database_url)
    return sorted(floors, key=lambda floor: floor.cpu_s)


def _with_new_ids(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    ids = server_event_ids(len(rows))
    return [{**row, "event_id": event_id} for row, event_id in zip(rows, ids, strict=True)]


def sqlite_floor(path: Path, rows: list[dict[str, Any]]) -> Floor:
    """Insert `rows` into the events of the SQLite store at `path`, committing every `CHUNK`."""
    settings = Settings(database_url=f"sqlite:///{path}", queue_url="db")
    values = event_values("sqlite", rows)
    marks = ", ".join("?" * len(INSERTED_EVENT_COLUMNS))
    sql = f"INSERT INTO events ({', '.join(INSERTED_EVENT_COLUMNS)}) VALUES ({marks})"
    conn = sqlite3.connect(path, isolation_level=None, timeout=30)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA synchronous={settings.sqlite_synchronous}")
        conn.execute(f"PRAGMA cache_size=-{settings.sqlite_processor_cache_mb * 1024}")
        stored = conn.execute("SELECT max(id) FROM events").fetchone()[0] or 0
        started = time.thread_time()
        for chunk in _chunks(values):
            conn.execute("BEGIN")
            conn.executemany(sql, chunk)
            conn.execute("COMMIT")
        cpu = time.thread_time() - started
    finally:
        conn.close()
    method = (
        f"sqlite3 executemany of a plain INSERT into the store's events (about {stored:,} "
        f"rows in it; WAL, synchronous={settings.sqlite_synchronous}, the processor's "
        f"{settings.sqlite_processor_cache_mb} MB page cache), a commit every "
        f"{CHUNK:,} rows; CPU of the inserting thread"
    )
    return Floor(len(rows), cpu, None, method)


def postgresql_floor(database_url: str, rows: list[dict[str, Any]]) -> Floor:
    """COPY `rows` into `events` at `database_url`, `CHUNK` a statement, then roll back."""
    values = event_values("postgresql", rows)
    sql = f"COPY events ({', '.join(INSERTED_EVENT_COLUMNS)}) FROM STDIN"
    conn = _connect(database_url)
    try:
        stored = conn.execute("SELECT count(*) FROM events").fetchone()
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None and stored is not None
        backend = _local_backend(database_url, row[0])
        server_started = _cpu_s(backend)
        started = time.thread_time()
        with conn.cursor() as cursor:
            for chunk in _chunks(values):
                with cursor.copy(sql) as copy:
                    for one in chunk:
                        copy.write_row(one)
        client = time.thread_time() - started
        server = None if backend is None else _cpu_s(backend) - server_started
    finally:
        conn.rollback()
        conn.close()
    method = (
        f"psycopg COPY FROM STDIN into the store's events ({stored[0]:,} rows in it), "
        f"{CHUNK:,} rows a statement, in one transaction rolled back, the table vacuumed "
        "after the rounds; CPU of the copying thread + "
        + ("its backend's (psutil)" if server is not None else "nothing of the server (not local)")
    )
    return Floor(len(rows), client + (server or 0.0), server, method)


def _connect(database_url: str) -> Any:
    import psycopg

    conninfo = make_url(database_url).set(drivername="postgresql")
    return psycopg.connect(conninfo.render_as_string(hide_password=False))


def _vacuum(database_url: str) -> None:
    """Reclaim what the rolled-back rounds left in `events`: dead rows and index entries
    slow every later query and run until a vacuum, which a server may not run by itself."""
    conn = _connect(database_url)
    try:
        conn.autocommit = True
        conn.execute("VACUUM events")
    finally:
        conn.close()


def _local_backend(database_url: str, pid: int) -> psutil.Process | None:
    if not is_local(database_url):
        return None
    try:
        process = psutil.Process(pid)
        # A server in a container numbers its processes apart: the pid may be another's.
        return process if process.name().startswith("postgres") else None
    except psutil.NoSuchProcess:  # a server in a container or a VM of its own
        return None


def _cpu_s(process: psutil.Process | None) -> float:
    if process is None:
        return 0.0
    times = process.cpu_times()
    return times.user + times.system


def _chunks(values: Sequence[Row]) -> Iterator[Sequence[Row]]:
    for start in range(0, len(values), CHUNK):
        yield values[start : start + CHUNK]
