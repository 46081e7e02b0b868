"""Fault tests run real `the-eye` processes against the real PostgreSQL (and Redis)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from tests.conftest import REDIS_URL, delete_stream, empty_store
from the_eye.config import Settings
from the_eye.store.credentials import create_application
from the_eye.store.engine import create_engine


def queues() -> list:
    params = [pytest.param("db", id="postgresql-db")]
    if REDIS_URL:
        params.append(pytest.param(REDIS_URL, id="postgresql-redis"))
    return params


def production_settings(database_url: str, queue_url: str) -> Settings:
    return Settings(
        database_url=database_url,
        queue_url=queue_url,
        redis_stream=f"the-eye-test:{uuid.uuid4().hex}",
        _env_file=None,
    )


@pytest.fixture(params=queues())
def pg_settings(request) -> Iterator[Settings]:
    """PostgreSQL (skipped without its URL) with the parametrised queue; empty and migrated."""
    settings = production_settings(request.getfixturevalue("pg_database"), request.param)
    empty_store(settings)
    yield settings
    if settings.queue_url != "db":
        delete_stream(settings)


@pytest.fixture
def store(pg_settings):
    """An engine on the test's store, straight to PostgreSQL (never through a proxy)."""
    engine = create_engine(pg_settings)
    yield engine
    engine.dispose()


@pytest.fixture
def write_key(store) -> str:
    with store.begin() as conn:
        return create_application(conn, "web").write_key
