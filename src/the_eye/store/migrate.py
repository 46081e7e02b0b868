"""Schema migrations (Alembic), run by `the-eye migrate` and on `the-eye serve`."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, Engine

from the_eye.store.tables import COUNTER_NAMES, counters

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


# Any fixed number: PostgreSQL advisory locks are named by integers.
_MIGRATION_LOCK = 0x7468655F657965


def _one_at_a_time(connection: Connection) -> None:
    """Several API processes starting at once on PostgreSQL would otherwise run the same
    CREATE statements concurrently and all but one would fail; SQLite's writer lock already
    serialises them."""
    if connection.dialect.name == "postgresql":
        connection.execute(sa.select(sa.func.pg_advisory_xact_lock(_MIGRATION_LOCK)))


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema; safe to run at every start, from any number
    of processes at once."""
    config = alembic_config()
    with engine.begin() as connection:
        _one_at_a_time(connection)
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with engine.begin() as connection:
        _one_at_a_time(connection)
        existing = set(
            connection.execute(counters.select().with_only_columns(counters.c.name)).scalars()
        )
        missing = [{"name": n, "value": 0} for n in COUNTER_NAMES if n not in existing]
        if missing:
            connection.execute(counters.insert(), missing)
