"""Migrations: a store that already holds events gets rollups that match them."""

from __future__ import annotations

from datetime import datetime

from alembic import command

from tests.consistency import assert_rollups_match_rows
from the_eye.store.migrate import alembic_config, migrate
from the_eye.store.tables import errors, events


def test_upgrading_a_store_with_events_fills_the_rollups(engine):
    config = alembic_config()
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "0001")
    moments = [
        datetime(1969, 12, 31, 23, 59, 30),  # before 1970: minutes round down, not to zero
        datetime(2021, 1, 1, 9, 15, 27, 243860),
        datetime(2021, 1, 1, 9, 15, 59, 999999),
        datetime(2021, 1, 1, 23, 59, 0),
        datetime(2021, 1, 2, 0, 0, 0),
    ]
    with engine.begin() as conn:
        conn.execute(
            events.insert(),
            [
                {
                    "application_id": 1 + i % 2,
                    "event_id": f"e-{i}",
                    "session_id": "s",
                    "category": "page interaction",
                    "name": ["pageview", "submit"][i % 2],
                    "data": {"i": i},
                    "timestamp": moment,
                    "received_at": moment,
                }
                for i, moment in enumerate(moments * 3)
            ],
        )
        conn.execute(
            errors.insert(),
            [
                {
                    "application_id": None if i == 0 else 1,
                    "reason": "invalid_data",
                    "message": "m",
                    "payload": "{}",
                    "received_at": moment,
                    "replayed": i == 2,
                }
                for i, moment in enumerate(moments)
            ],
        )
    migrate(engine)
    assert_rollups_match_rows(engine)
