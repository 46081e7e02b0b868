"""Fault tests run real `the-eye` processes against the real PostgreSQL (and Redis)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.helpers import REDIS_URL, delete_stream, production_settings
from the_eye.config import Settings
from the_eye.store.credentials import create_application
from the_eye.store.engine import create_engine


def queues() -> list:
    params = [pytest.param("db", id="postgresql-db")]
    if REDIS_URL:
        params.append(pytest.param(REDIS_URL, id="postgresql-redis"))
    return params


@pytest.fixture(params=queues())
def pg_settings(request, empty_store_url) -> Iterator[Settings]:
    """PostgreSQL (skipped without its URL) with the parametrised queue; empty and migrated."""
    settings = production_settings(empty_store_url("postgresql"), request.param)
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
