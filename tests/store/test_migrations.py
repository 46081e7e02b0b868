"""Migrations: a store that already holds events and errors gets the rollups and the columns
that a new one would have."""

from __future__ import annotations

import json
from collections import Counter
from datetime import datetime

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

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


def test_upgrading_fills_the_session_category_and_name_of_kept_errors(engine):
    config = alembic_config()
    before = ScriptDirectory.from_config(config).get_revision("0008").down_revision
    with engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, before)
    event = {"session_id": "s", "category": "page interaction", "name": "pageview"}
    payloads = {
        "whole": json.dumps(event),
        "nested": json.dumps({**event, "session_id": None, "session": {"id": "s-nested"}}),
        "long": json.dumps({**event, "category": "c" * 101, "name": 7}),
        "cut": json.dumps(event)[:-5],
        "list": json.dumps([event]),
    }
    rows = [
        {"event_id": f"{kind}-{i}", "payload": payload}
        for i in range(1200)  # more than one batch of the migration's
        for kind, payload in payloads.items()
    ]
    rows.append({"event_id": None, "payload": json.dumps(event)})  # a whole-body error
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO errors (application_id, event_id, reason, message, payload,"
                " received_at, replayed) VALUES (1, :event_id, 'invalid_data', 'm', :payload,"
                " '2021-01-01 00:00:00', false)"
            ),
            rows,
        )
    migrate(engine)
    with engine.connect() as conn:
        found = conn.execute(
            sa.select(errors.c.event_id, errors.c.session_id, errors.c.category, errors.c.name)
        ).all()
    filled = Counter(
        ((event_id or "body").split("-")[0], session_id, category, name)
        for event_id, session_id, category, name in found
    )
    assert filled == {
        ("whole", "s", "page interaction", "pageview"): 1200,
        ("nested", "s-nested", "page interaction", "pageview"): 1200,
        ("long", "s", None, None): 1200,
        ("cut", None, None, None): 1200,
        ("list", None, None, None): 1200,
        ("body", None, None, None): 1,
    }
