"""Migrations on PostgreSQL: any number of processes may start on an empty database at once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from tests.helpers import PG_URL, postgresql_database
from the_eye.config import Settings
from the_eye.store.engine import create_engine
from the_eye.store.tables import COUNTER_NAMES, counters

pytestmark = pytest.mark.skipif(not PG_URL, reason="THE_EYE_TEST_DATABASE_URL is not set")


@pytest.fixture
def empty_database() -> Iterator[str]:
    with postgresql_database("the_eye_migrate") as url:
        yield url


def test_processes_migrating_an_empty_database_at_once_all_succeed(empty_database):
    env = {**os.environ, "THE_EYE_DATABASE_URL": empty_database}
    starts = [
        subprocess.Popen(
            [sys.executable, "-m", "the_eye", "migrate"],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [p.communicate(timeout=120)[0] for p in starts]
    assert [p.returncode for p in starts] == [0] * 4, outputs
    engine = create_engine(Settings(database_url=empty_database, _env_file=None))
    with engine.connect() as conn:
        names = sorted(conn.execute(sa.select(counters.c.name)).scalars())
    engine.dispose()
    assert names == sorted(COUNTER_NAMES)
