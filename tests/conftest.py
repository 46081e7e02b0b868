"""Shared fixtures: a real store for every backend the environment offers, a live HTTP server,
clients of it with each kind of credential, and a processor that tests drain when they want
the queue processed."""

from __future__ import annotations

import itertools
import shutil
import sqlite3
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from tests.helpers import (
    PG_URL,
    REDIS_URL,
    LiveServer,
    PageServer,
    Website,
    client_as,
    delete_stream,
    postgresql_database,
)
from tests.processes import ServeProcess, the_eye_env
from the_eye.config import Settings
from the_eye.processor.worker import Processor
from the_eye.store.credentials import create_application, create_token
from the_eye.store.engine import create_engine
from the_eye.store.migrate import alembic_config, migrate
from the_eye.store.tables import counters, metadata


def backends() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    if PG_URL:
        params.append(pytest.param("postgresql", id="postgresql"))
        if REDIS_URL:
            params.append(pytest.param("postgresql-redis", id="postgresql-redis"))
    return params


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite store migrated once for the whole run; each test starts from a copy of it."""
    path = tmp_path_factory.mktemp("template") / "the-eye.db"
    engine = create_engine(Settings(database_url=f"sqlite:///{path}", _env_file=None))
    migrate(engine)
    engine.dispose()
    # Fold the write-ahead log into the file: the last connection to close removes the log
    # and its index, and the file alone is then the whole store.
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.close()
    assert list(path.parent.iterdir()) == [path]
    return path


@pytest.fixture(scope="session")
def pg_database() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, migrated, dropped at the end."""
    if not PG_URL:
        pytest.skip("THE_EYE_TEST_DATABASE_URL is not set")
    with postgresql_database("the_eye_test") as url:
        engine = create_engine(Settings(database_url=url, _env_file=None))
        migrate(engine)
        engine.dispose()
        yield url


_HEAD = ScriptDirectory.from_config(alembic_config()).get_current_head()


def empty_postgresql(url: str) -> None:
    """Empty the run's PostgreSQL database for the next test; migrate it again only if a
    test left it at another revision."""
    engine = create_engine(Settings(database_url=url, _env_file=None))
    with engine.begin() as conn:
        revision = conn.exec_driver_sql("SELECT version_num FROM alembic_version").scalar()
    if revision != _HEAD:
        migrate(engine)
    with engine.begin() as conn:
        names = ", ".join(t.name for t in metadata.sorted_tables if t.name != "counters")
        conn.exec_driver_sql(f"TRUNCATE {names} RESTART IDENTITY")
        conn.execute(counters.update().values(value=0))
    engine.dispose()


@pytest.fixture
def empty_store_url(request, tmp_path, sqlite_template) -> Callable[[str], str]:
    """Makes the URL of an empty, migrated store of a backend, "sqlite" (a copy of the
    template in the test's own directory) or "postgresql" (the run's database, emptied)."""
    copies = itertools.count()

    def make(backend: str) -> str:
        if backend == "sqlite":
            path = tmp_path / f"the-eye-{next(copies)}.db"
            shutil.copyfile(sqlite_template, path)
            return f"sqlite:///{path}"
        url = request.getfixturevalue("pg_database")
        empty_postgresql(url)
        return url

    return make


@pytest.fixture(params=backends())
def settings(request, empty_store_url) -> Iterator[Settings]:
    """Settings for a store of the parametrised backend, empty and migrated; on Redis, a
    stream of the test's own, deleted afterwards."""
    redis_queue = request.param == "postgresql-redis"
    settings = Settings(
        database_url=empty_store_url("sqlite" if request.param == "sqlite" else "postgresql"),
        queue_url=REDIS_URL if redis_queue else "db",
        redis_stream=f"the-eye-test:{uuid.uuid4().hex}",
        poll_interval=0.01,
        key_cache_seconds=0.5,
        # A shared, loaded test machine can stall any check past the default 100 ms, which
        # would turn a schema violation into `check_budget_exceeded`; the budget's own tests
        # set theirs.
        schema_check_budget_ms=30_000,
        _env_file=None,
    )
    yield settings
    if redis_queue:
        delete_stream(settings)


@pytest.fixture
def engine(settings) -> Iterator[Engine]:
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
    """An application `web`, an admin token and a read token."""
    with engine.begin() as conn:
        app = create_application(conn, "web")
        admin = create_token(conn, "admin", "admin")
        read = create_token(conn, "analyst", "read")
    return Credentials(app.write_key, admin, read, app.id)


@pytest.fixture
def server(settings) -> Iterator[LiveServer]:
    with LiveServer(settings) as live:
        yield live


@pytest.fixture
def sender(server, creds) -> Iterator[httpx.Client]:
    """An HTTP client authenticated as an application (write key)."""
    with client_as(server, creds.write_key) as client:
        yield client


@pytest.fixture
def admin(server, creds) -> Iterator[httpx.Client]:
    """An HTTP client authenticated with an admin API token."""
    with client_as(server, creds.admin_token) as client:
        yield client


@pytest.fixture
def reader(server, creds) -> Iterator[httpx.Client]:
    """An HTTP client authenticated with a read-scope API token."""
    with client_as(server, creds.read_token) as client:
        yield client


@pytest.fixture
def processor(settings) -> Iterator[Processor]:
    processor = Processor.from_settings(settings)
    yield processor
    processor.close()


@pytest.fixture(scope="module")
def chromium_browser():
    """Debian's headless Chromium driven by Playwright (no browser download), reaching this
    machine only; one per test module, so that its event loop lives no longer than it."""
    sync_api = pytest.importorskip("playwright.sync_api")
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        pytest.skip("needs Chromium (.ci/run installs Debian's)")
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=path,
            args=["--no-sandbox", "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"],
        )
        yield browser
        browser.close()


@pytest.fixture
def website(settings, creds, process_env, tmp_path) -> Iterator[Website]:
    """Pages served from `root` by a server of their own, and a live `the-eye serve` whose
    THE_EYE_CORS_ORIGINS lists them. SQLite only: what a browser does is the same on every
    backend, and browser tests are slow."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("the browser's side is the same on every backend; run once")
    root = tmp_path / "site"
    root.mkdir()
    with PageServer(root) as pages:
        eye = ServeProcess({**process_env, "THE_EYE_CORS_ORIGINS": pages.url}).start()
        try:
            with client_as(eye.url, creds.admin_token) as admin:
                yield Website(root, pages.url, eye, admin)
        finally:
            eye.stop()


@pytest.fixture
def process_env(settings) -> dict[str, str]:
    """The environment of a `the-eye` process on this test's store and queue."""
    # A batch a killed processor held is taken over after the claim time.
    return the_eye_env(settings, redis_claim_idle=2, inbox_claim_idle=2)
