"""Schema migrations (Alembic), run by `the-eye migrate` and on `the-eye serve`."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Engine

from the_eye.store.tables import COUNTER_NAMES, counters

MIGRATIONS = Path(__file__).with_name("migrations")


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Bring the database to the newest schema; safe to run at every start."""
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "head")
    with engine.begin() as connection:
        existing = set(
            connection.execute(counters.select().with_only_columns(counters.c.name)).scalars()
        )
        missing = [{"name": n, "value": 0} for n in COUNTER_NAMES if n not in existing]
        if missing:
            connection.execute(counters.insert(), missing)
