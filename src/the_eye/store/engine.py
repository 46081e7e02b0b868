"""Database engines for the store: SQLite (WAL, one file) or PostgreSQL (psycopg 3)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.pool import ConnectionPoolEntry

from the_eye.config import Settings
from the_eye.extras import require


def normalise_url(url: str) -> str:
    """Point plain `postgresql://` URLs at psycopg 3, the driver The Eye ships with."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_engine(settings: Settings, cache_mb: int | None = None) -> Engine:
    """An engine for `settings.database_url`, tuned for its backend; on SQLite, each
    connection with a page cache of `cache_mb` (SQLite's own default, 2 MB, without)."""
    url = normalise_url(settings.database_url)
    if make_url(url).drivername == "postgresql+psycopg":
        require("psycopg", "postgres", "A PostgreSQL database needs the psycopg driver")
    if url.startswith("sqlite"):
        return sqlite_engine(url, settings, cache_mb)
    # An unreachable server (not a refused connection) would otherwise hold every caller,
    # /ready/ included, for the operating system's TCP timeout.
    connect_args = {} if "connect_timeout" in make_url(url).query else {"connect_timeout": 10}
    return sa.create_engine(
        url,
        connect_args=connect_args,
        pool_size=10,
        max_overflow=20,
        pool_pre_ping=True,
        json_serializer=dump_json,
        json_deserializer=load_json,
    )


_json_encoder = msgspec.json.Encoder()
_json_decoder = msgspec.json.Decoder()


def load_json(text: str | bytes) -> Any:
    """A JSON column's value, integers of any size kept as integers."""
    return _json_decoder.decode(text)


def dump_json(value: Any) -> str:
    """JSON text for a JSON column. msgspec, which decoded the event, encodes whatever it
    decoded (integers beyond 64 bits included, which some JSON libraries refuse)."""
    return _json_encoder.encode(value).decode()


def _create_private(url: str) -> None:
    """Create a SQLite file readable by its owner alone (0600) before SQLite opens it; its
    `-wal` and `-shm` files take the main file's mode. An existing file keeps its mode."""
    database = sqlite_file(url)
    if database is None:
        return
    # No folder: SQLite says so itself when it opens the file.
    with suppress(FileExistsError, FileNotFoundError):
        os.close(os.open(database, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names, or None for an in-memory database."""
    database = make_url(url).database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def sqlite_engine(url: str, settings: Settings, cache_mb: int | None = None) -> Engine:
    """An engine for one SQLite file, in WAL mode with the settings' durability and wait."""
    synchronous, busy_timeout_ms = settings.sqlite_synchronous, settings.sqlite_busy_timeout_ms
    _create_private(url)
    engine = sa.create_engine(
        url,
        connect_args={"timeout": busy_timeout_ms / 1000, "check_same_thread": False},
        json_serializer=dump_json,
        json_deserializer=load_json,
    )

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
        # Let SQLAlchemy, not the sqlite3 module, decide where transactions begin,
        # so that savepoints work and every transaction is explicit.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA synchronous={synchronous}")
        cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout_ms)}")
        if cache_mb:
            cursor.execute(f"PRAGMA cache_size=-{int(cache_mb) * 1024}")
        cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        immediate = conn.get_execution_options().get(_IMMEDIATE)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


_IMMEDIATE = "the_eye_write_lock"


@contextmanager
def write_transaction(engine: Engine) -> Iterator[Connection]:
    """A transaction that reads rows and then writes what it read, safely.

    On SQLite it holds the write lock from its first statement, so nothing changes between
    its reads and its writes (a deferred transaction would fail to upgrade instead). On
    PostgreSQL it is a plain transaction whose callers lock rows with `FOR UPDATE`.
    """
    with engine.connect() as conn:
        conn.execution_options(**{_IMMEDIATE: True})
        with conn.begin():
            yield conn
