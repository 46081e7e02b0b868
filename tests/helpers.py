"""Plain functions and classes the tests share: events to send, a live server in a thread,
clients of it, and counts read straight from the store. Fixtures live in `conftest.py`."""

from __future__ import annotations

import functools
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import sqlalchemy as sa
import uvicorn
from sqlalchemy.engine import Engine

from tests.processes import ServeProcess
from the_eye.api.app import create_app
from the_eye.config import Settings
from the_eye.queue import open_queue
from the_eye.store.engine import normalise_url

# The shared PostgreSQL server and Redis of the environment; tests that need one skip without.
PG_URL = os.environ.get("THE_EYE_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("THE_EYE_TEST_REDIS_URL")


def make_event(session: str = "s-1", **overrides) -> dict:
    """A valid pageview event; `overrides` replace or add fields."""
    event = {
        "session_id": session,
        "category": "page interaction",
        "name": "pageview",
        "data": {"host": "www.consumeraffairs.com", "path": "/"},
        "timestamp": "2021-01-01 09:15:27.243860",
    }
    event.update(overrides)
    return event


class LiveServer:
    """The real ASGI app under uvicorn, in a thread, on a free port."""

    def __init__(self, settings: Settings) -> None:
        # Named TCP, not left to the default protocol 0: asyncio turns Nagle's algorithm off
        # only on connections of a socket that says it is TCP, and with it on every answer
        # waits some 40 ms for the client's delayed acknowledgement.
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
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


class _PageHandler(SimpleHTTPRequestHandler):
    """Static files; a form posted to a page is answered with that page, as a site would."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        self.do_GET()

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "no-store")
        super().end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


class PageServer:
    """A website on another origin than The Eye: the files of `root`, in a thread, on a free
    port, so that browsers send to The Eye across origins (CORS) as real sites do."""

    def __init__(self, root: Path) -> None:
        handler = functools.partial(_PageHandler, directory=str(root))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self) -> PageServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@dataclass
class Website:
    """A website's folder and address, on another origin than the live The Eye it sends to,
    and an admin client of that The Eye."""

    root: Path
    url: str
    eye: ServeProcess
    admin: httpx.Client


# Made once: each client would otherwise load the certificate bundle again (tens of ms).
_TLS = httpx.create_ssl_context()


def client_as(server: LiveServer | str, secret: str, timeout: float = 30) -> httpx.Client:
    """An HTTP client of a server (a live server or its URL) that sends `secret` as its
    Bearer credential."""
    url = server if isinstance(server, str) else server.url
    return httpx.Client(
        base_url=url, headers={"Authorization": f"Bearer {secret}"}, timeout=timeout, verify=_TLS
    )


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


def post_schema(
    client: httpx.Client, schema, category: str = "page interaction", name: str = "pageview"
) -> httpx.Response:
    """`POST /schemas/`: the next version of the type's schema."""
    return client.post("/schemas/", json={"category": category, "name": name, "schema": schema})


def write_schema_file(path: Path, schema) -> None:
    """Write `schema` as JSON to `path` (in a schemas directory: `<category>/<name>.json`),
    making its folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(schema))


def count_rows(engine: Engine, table: sa.Table, *where) -> int:
    """How many rows of `table` the store holds (that meet every condition of `where`)."""
    with engine.connect() as conn:
        return conn.execute(
            sa.select(sa.func.count()).select_from(table).where(*where)
        ).scalar_one()


def queue_depth(settings: Settings, engine: Engine) -> int:
    """How many accepted requests wait in the settings' queue, whichever backend it is."""
    queue = open_queue(settings, engine)
    try:
        return queue.depth()
    finally:
        queue.close()


@contextmanager
def inbox_database(settings: Settings, engine: Engine) -> Iterator[Engine]:
    """The database the `db` queue keeps its inbox in: a SQLite store's inbox file of its
    own, or the store itself."""
    queue = open_queue(settings, engine)
    try:
        yield getattr(queue, "inbox_engine", engine)
    finally:
        queue.close()


def production_settings(database_url: str, queue_url: str) -> Settings:
    """Settings as a deployment has them (no test's short intervals), on a stream of its own."""
    return Settings(
        database_url=database_url,
        queue_url=queue_url,
        redis_stream=f"the-eye-test:{uuid.uuid4().hex}",
        _env_file=None,
    )


def delete_stream(settings: Settings) -> None:
    """Remove a test's Redis stream (and with it its consumer group)."""
    import redis

    client = redis.Redis.from_url(settings.queue_url)
    try:
        client.delete(settings.redis_stream, f"{settings.redis_stream}:received")
    finally:
        client.close()


@contextmanager
def postgresql_database(prefix: str) -> Iterator[str]:
    """A new, empty database on the PostgreSQL server of `PG_URL`, dropped on exit."""
    admin = sa.create_engine(normalise_url(PG_URL), isolation_level="AUTOCOMMIT")
    name = f"{prefix}_{os.getpid()}_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield (
            sa.make_url(normalise_url(PG_URL))
            .set(database=name)
            .render_as_string(hide_password=False)
        )
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def seed_events(
    engine: Engine,
    application_id: int,
    count: int,
    start: datetime = datetime(2021, 1, 1),
    step: timedelta = timedelta(minutes=7),
    prefix: str = "seed",
    data_bytes: int = 0,
) -> None:
    """Store `count` events straight through the store layer (as a processor would), with
    ids `{prefix}-{i}`, `step` apart from `start`, over a few sessions and types, in bulk."""
    from the_eye.store.writes import store_events

    rows = [
        {
            "application_id": application_id,
            "event_id": f"{prefix}-{i}",
            "session_id": f"s-{i % 13}",
            "category": ("page interaction", "form interaction")[i % 2],
            "name": ("pageview", "cta click", "submit")[i % 3],
            "data": {"i": i, "path": f"/p/{i % 17}", "nested": {"ok": i % 2 == 0, "é": "ü"}}
            | ({"pad": "x" * data_bytes} if data_bytes else {}),
            "timestamp": start + i * step + timedelta(microseconds=i % 1000),
            "received_at": start + i * step + timedelta(seconds=1),
        }
        for i in range(count)
    ]
    for chunk in range(0, count, 10_000):
        with engine.begin() as conn:
            store_events(conn, rows[chunk : chunk + 10_000])


_GENERATED_EVENTS = {
    # Rows made by the database itself: a few hundred thousand in about a second.
    "sqlite": """
        WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i + 1 < :count)
        INSERT INTO events (application_id, event_id, session_id, category, name, data,
                            timestamp, received_at)
        SELECT :app, :prefix || '-' || i, 's-' || (i % 13), 'page interaction', 'pageview',
               '{"i":' || i || ',"pad":"' || printf('%.*c', :pad, 'x') || '"}',
               strftime('%Y-%m-%d %H:%M:%S', :start, '+' || (i * :step) || ' seconds')
                   || '.000000',
               strftime('%Y-%m-%d %H:%M:%S', :start) || '.000000'
        FROM n
    """,
    "postgresql": """
        INSERT INTO events (application_id, event_id, session_id, category, name, data,
                            timestamp, received_at)
        SELECT :app, :prefix || '-' || i, 's-' || (i % 13), 'page interaction', 'pageview',
               jsonb_build_object('i', i, 'pad', repeat('x', :pad)),
               CAST(:start AS timestamp) + i * make_interval(secs => :step),
               CAST(:start AS timestamp)
        FROM generate_series(0, :count - 1) AS i
    """,
}


def generate_events(
    engine: Engine,
    application_id: int,
    count: int,
    prefix: str = "gen",
    start: datetime = datetime(2021, 1, 1),
    step_seconds: int = 20,
    pad: int = 0,
) -> None:
    """Insert `count` events in one statement the database runs itself, for tests whose
    point is volume: ids `{prefix}-{i}`, `step_seconds` apart, `data` {"i", "pad": `pad`
    x's}. Sessions and statistics are not kept (`seed_events` keeps them)."""
    sql = sa.text(_GENERATED_EVENTS[engine.dialect.name])
    with engine.begin() as conn:
        conn.execute(
            sql,
            {
                "count": count,
                "app": application_id,
                "prefix": prefix,
                "start": start.isoformat(" "),
                "step": step_seconds,
                "pad": pad,
            },
        )


# A candidate schema for pageviews in dry runs: a `path` that starts with a slash.
PATH_SCHEMA = {
    "type": "object",
    "required": ["path"],
    "properties": {"path": {"type": "string", "pattern": "^/"}},
}


def seed_pageviews(sender: httpx.Client, processor, engine: Engine) -> dict[str, int]:
    """Pageviews stored and kept as errors, to dry-run `PATH_SCHEMA` against.

    Stored, with no schema yet: 10 pageviews (`ok-0`..`ok-5` pass it; `no-path-0`..`2` lack
    `path`; `bad-path`, the newest, has one without a slash) and 2 clicks. Then, under a
    version 1 that asks for a `referrer`, 7 pageview errors (`err-ok-0`..`3` pass it;
    `err-no-path-0`, `1` lack `path`; `err-future` is from the future) and errors a dry run
    of pageviews leaves alone: a form submit from the future and a body that is not JSON.
    Returns the row id of every stored event and error by its `event_id`.
    """
    from the_eye.services.schemas import register_schema
    from the_eye.store.tables import errors, events

    names = [f"ok-{i}" for i in range(6)] + [f"no-path-{i}" for i in range(3)] + ["bad-path"]
    stored = [
        make_event(
            event_id=key,
            timestamp=f"2021-01-01T09:00:{second:02d}Z",
            data={"host": "h", "path": "/p"}
            if key.startswith("ok")
            else {"host": "h"}
            if key.startswith("no-path")
            else {"path": "p"},
        )
        for second, key in enumerate(names)
    ]
    stored += [make_event(name="cta click", event_id=f"click-{i}", data={"x": i}) for i in range(2)]
    assert sender.post("/events/", json=stored).status_code == 202
    processor.drain()
    with engine.begin() as conn:
        register_schema(conn, "page interaction", "pageview", {"required": ["referrer"]})
    processor.checker.refresh(force=True)
    failing = [make_event(event_id=f"err-ok-{i}", data={"path": "/a"}) for i in range(4)]
    failing += [make_event(event_id=f"err-no-path-{i}", data={"host": "h"}) for i in range(2)]
    failing.append(make_event(event_id="err-future", timestamp="2100-01-01T00:00:00Z"))
    failing.append(
        make_event(
            category="form interaction",
            name="submit",
            event_id="submit-future",
            timestamp="2100-01-01T00:00:00Z",
        )
    )
    assert sender.post("/events/", json=failing).status_code == 202
    assert sender.post("/events/", content=b"{not json").status_code == 400
    processor.drain()
    with engine.connect() as conn:
        ids = dict(conn.execute(sa.select(events.c.event_id, events.c.id)).all())
        ids.update(
            conn.execute(
                sa.select(errors.c.event_id, errors.c.id).where(errors.c.event_id.is_not(None))
            ).all()
        )
    assert len(ids) == 12 + 8
    return ids
