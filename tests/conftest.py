"""Shared fixtures: a real store for every backend the environment offers, a live HTTP server,
and a processor that tests drain when they want the queue processed."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
import sqlalchemy as sa
import uvicorn

from the_eye.api.app import create_app
from the_eye.config import Settings
from the_eye.processor.worker import Processor
from the_eye.queue import open_queue
from the_eye.store.credentials import create_application, create_token
from the_eye.store.engine import create_engine, normalise_url
from the_eye.store.migrate import migrate
from the_eye.store.tables import counters, metadata

PG_URL = os.environ.get("THE_EYE_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("THE_EYE_TEST_REDIS_URL")


def backends() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    if PG_URL:
        params.append(pytest.param("postgresql", id="postgresql"))
        if REDIS_URL:
            params.append(pytest.param("postgresql-redis", id="postgresql-redis"))
    return params


def delete_stream(settings: Settings) -> None:
    """Remove a test's Redis stream (and with it its consumer group)."""
    import redis

    client = redis.Redis.from_url(settings.queue_url)
    try:
        client.delete(settings.redis_stream, f"{settings.redis_stream}:received")
    finally:
        client.close()


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    if not PG_URL:
        pytest.skip("THE_EYE_TEST_DATABASE_URL is not set")
    admin = sa.create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    name = f"the_eye_test_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = sa.make_url(normalise_url(PG_URL)).set(database=name)
    yield url.render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    admin.dispose()


def empty_store(settings: Settings) -> None:
    """Migrate the settings' store and empty it: a PostgreSQL database serves the whole run."""
    engine = create_engine(settings)
    migrate(engine)
    if engine.dialect.name == "postgresql":
        with engine.begin() as conn:
            names = ", ".join(t.name for t in metadata.sorted_tables if t.name != "counters")
            conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY")
            conn.execute(counters.update().values(value=0))
    engine.dispose()


@pytest.fixture(params=backends())
def settings(request, tmp_path) -> Iterator[Settings]:
    """Settings for a store of the parametrised backend, empty and migrated; on Redis, a
    stream of the test's own, deleted afterwards."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'the-eye.db'}"
    else:
        url = request.getfixturevalue("pg_database")
    redis_queue = request.param == "postgresql-redis"
    settings = Settings(
        database_url=url,
        queue_url=REDIS_URL if redis_queue else "db",
        redis_stream=f"the-eye-test:{uuid.uuid4().hex}",
        poll_interval=0.01,
        key_cache_seconds=0.5,
        _env_file=None,
    )
    empty_store(settings)
    yield settings
    if redis_queue:
        delete_stream(settings)


@pytest.fixture
def engine(settings):
    engine = create_engine(settings)
    yield engine
    engine.dispose()


@dataclass
class Credentials:
    write_key: str
    admin_token: str
    read_token: str
    application_id: int


@pytest.fixture
def creds(engine) -> Credentials:
    with engine.begin() as conn:
        app = create_application(conn, "web")
        admin = create_token(conn, "admin", "admin")
        read = create_token(conn, "analyst", "read")
    return Credentials(app.write_key, admin, read, app.id)


class LiveServer:
    """The real ASGI app under uvicorn, in a thread, on a free port."""

    def __init__(self, settings: Settings) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        config = uvicorn.Config(
            create_app(settings), log_level="warning", access_log=False, loop="asyncio"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]})

    def __enter__(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline:
                raise RuntimeError("server did not start")
            time.sleep(0.01)
        return self

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@pytest.fixture
def server(settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as live:
        yield live


def client_as(server: LiveServer, secret: str) -> httpx.Client:
    """An HTTP client of the live server that sends `secret` as its Bearer credential."""
    return httpx.Client(
        base_url=server.url, headers={"Authorization": f"Bearer {secret}"}, timeout=30
    )


@pytest.fixture
def sender(server, creds) -> Iterator[httpx.Client]:
    """An HTTP client authenticated as an application (write key)."""
    with client_as(server, creds.write_key) as client:
        yield client


@pytest.fixture
def reader(server, creds) -> Iterator[httpx.Client]:
    """An HTTP client authenticated with an admin API token."""
    with client_as(server, creds.admin_token) as client:
        yield client


@pytest.fixture
def processor(settings) -> Iterator[Processor]:
    processor = Processor.from_settings(settings)
    yield processor
    processor.close()


def queue_depth(settings: Settings, engine) -> int:
    """How many accepted requests wait in the settings' queue, whichever backend it is."""
    queue = open_queue(settings, engine)
    try:
        return queue.depth()
    finally:
        queue.close()


def make_event(session: str = "s-1", **overrides) -> dict:
    event = {
        "session_id": session,
        "category": "page interaction",
        "name": "pageview",
        "data": {"host": "www.consumeraffairs.com", "path": "/"},
        "timestamp": "2021-01-01 09:15:27.243860",
    }
    event.update(overrides)
    return event


def fetch_all(client: httpx.Client, path: str, **params) -> list[dict]:
    """Every result of a paginated list, following `next`."""
    results, url = [], path
    response = client.get(url, params=params)
    while True:
        assert response.status_code == 200, response.text
        body = response.json()
        results.extend(body["results"])
        if not body["next"]:
            return results
        response = client.get(body["next"])
