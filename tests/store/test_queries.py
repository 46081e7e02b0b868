"""Query plans: the lists that filter big tables go through an index made for them."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from the_eye.store import queries
from the_eye.store.tables import errors


def plan(engine, stmt: sa.Select) -> str:
    """The store's own query plan for `stmt`, as text."""
    sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
    explain = "EXPLAIN QUERY PLAN " if engine.dialect.name == "sqlite" else "EXPLAIN "
    with engine.connect() as conn:
        return "\n".join(str(tuple(row)) for row in conn.exec_driver_sql(explain + sql))


@pytest.mark.parametrize("replayed", [True, False])
def test_listing_errors_by_replayed_reads_an_index_newest_first(engine, replayed):
    start = datetime(2021, 1, 1)
    with engine.begin() as conn:
        conn.execute(
            errors.insert(),
            [
                {
                    "application_id": 1,
                    "reason": ("invalid_data", "schema_violation")[i % 2],
                    "message": "m",
                    "payload": "{}",
                    "received_at": start + timedelta(seconds=i),
                    "replayed": i % 100 == 0,
                }
                for i in range(20_000)
            ],
        )
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    stmt = queries.select_errors(queries.ErrorFilter(replayed=replayed))
    stmt = stmt.order_by(*queries.ERRORS_NEWEST_FIRST.order_by()).limit(101)
    explained = plan(engine, stmt)
    if replayed:  # the few replayed errors among many: straight from their index
        assert "ix_errors_replayed_received_at" in explained, explained
    else:  # nearly every error: this index, or the time index while skipping a few
        assert "ix_errors_re" in explained, explained
    # Newest first straight from the index: no sort of the matching rows.
    assert "TEMP B-TREE" not in explained and "Sort" not in explained, explained


@pytest.mark.parametrize(
    ("field", "index"),
    [
        ("application_id", "ix_errors_application_id_received_at"),
        ("session_id", "ix_errors_session_id_received_at"),
        ("category", "ix_errors_category_received_at"),
        ("name", "ix_errors_name_received_at"),
    ],
)
def test_listing_errors_by_application_session_category_or_name_reads_its_index_newest_first(
    engine, field, index
):
    # Hundreds of matches for each value: a few would be read through the index and sorted.
    start = datetime(2021, 1, 1)
    with engine.begin() as conn:
        conn.execute(
            errors.insert(),
            [
                {
                    "application_id": 2 if i % 50 == 0 else 1,  # a small application
                    "event_id": f"e-{i}",
                    "reason": "invalid_data",
                    "message": "m",
                    "payload": "{}",
                    "received_at": start + timedelta(seconds=i),
                    "session_id": f"s-{i % 20}",
                    "category": f"c-{i % 5}",
                    "name": f"n-{i % 10}",
                }
                for i in range(20_000)
            ],
        )
    with engine.begin() as conn:
        conn.exec_driver_sql("ANALYZE")
    value = {"application_id": 2, "session_id": "s-7", "category": "c-3", "name": "n-7"}[field]
    stmt = queries.select_errors(queries.ErrorFilter(**{field: value}))
    stmt = stmt.order_by(*queries.ERRORS_NEWEST_FIRST.order_by()).limit(101)
    explained = plan(engine, stmt)
    assert index in explained, explained
    assert "TEMP B-TREE" not in explained and "Sort" not in explained, explained
