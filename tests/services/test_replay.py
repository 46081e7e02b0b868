"""Bulk replay at scale: batches, progress, idempotency, concurrent replays."""

from __future__ import annotations

import threading

import sqlalchemy as sa

from tests.consistency import assert_rollups_match_rows, assert_sessions_match_events
from tests.helpers import count_rows, make_event
from tests.processes import wait_until
from the_eye.processor.checker import EventChecker
from the_eye.processor.checks import Limits
from the_eye.processor.schemas import SchemaRegistry
from the_eye.services.replay import ReplayCounts, replay_errors, start_replay_job
from the_eye.services.schemas import register_schema
from the_eye.store.queries import ErrorFilter, count_errors
from the_eye.store.replay_jobs import get_job
from the_eye.store.tables import errors, events


def make_errors(engine, sender, processor, n: int) -> None:
    """`n` schema_violation errors, then a schema version under which they all pass."""
    with engine.begin() as conn:
        register_schema(conn, "page interaction", "pageview", {"required": ["path"]})
    processor.checker.refresh(force=True)
    for start in range(0, n, 1000):
        batch = [
            make_event(session=f"s-{i % 97}", event_id=f"e-{i}", data={"host": "h"})
            for i in range(start, min(n, start + 1000))
        ]
        assert sender.post("/events/", json=batch).status_code == 202
    processor.drain()
    assert count_rows(engine, errors, errors.c.reason == "schema_violation") == n
    with engine.begin() as conn:
        register_schema(conn, "page interaction", "pageview", {"type": "object"})


def replay(engine, batch_size=500, progress=None) -> ReplayCounts:
    return replay_errors(
        engine,
        ErrorFilter(reason="schema_violation"),
        # A budget no stall on a loaded machine reaches: these tests are about replay.
        EventChecker(Limits(), SchemaRegistry(engine, budget_seconds=30)),
        batch_size=batch_size,
        progress=progress,
    )


def test_bulk_replay_of_10000_errors_goes_in_batches_and_stores_each_once(
    engine, sender, processor
):
    make_errors(engine, sender, processor, 10_000)
    with engine.connect() as conn:
        assert count_errors(conn, ErrorFilter(reason="schema_violation")) == 10_000
    seen: list[int] = []
    counts = replay(engine, batch_size=1000, progress=lambda c: seen.append(c.done))
    assert (counts.replayed, counts.still_failing, counts.skipped) == (10_000, 0, 0)
    # Progress after every batch, and no batch larger than asked.
    assert seen == list(range(1000, 10_001, 1000))
    assert count_rows(engine, events) == 10_000
    assert count_rows(engine, errors, errors.c.replayed) == 10_000
    assert count_rows(engine, errors, errors.c.replayed_event_id.is_(None)) == 0

    again = replay(engine, batch_size=1000)
    assert (again.replayed, again.skipped) == (0, 10_000)
    assert count_rows(engine, events) == 10_000
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)


def test_two_replays_at_once_store_each_event_once(engine, sender, processor, settings):
    make_errors(engine, sender, processor, 2000)
    results: list[ReplayCounts] = []
    threads = [
        threading.Thread(target=lambda: results.append(replay(engine, batch_size=100)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sum(r.replayed for r in results) == 2000
    assert sum(r.skipped for r in results) == sum(r.done for r in results) - 2000
    assert count_rows(engine, events) == 2000
    with engine.connect() as conn:
        linked = conn.execute(
            sa.select(sa.func.count(sa.distinct(errors.c.replayed_event_id)))
        ).scalar_one()
    assert linked == 2000
    assert_sessions_match_events(engine)
    assert_rollups_match_rows(engine)


def test_a_replay_job_runs_in_the_background_and_records_its_counts(engine, sender, processor):
    make_errors(engine, sender, processor, 1200)
    checker = EventChecker(Limits(), SchemaRegistry(engine))
    filters = {"reason": "schema_violation", "session": "s-1"}
    where = ErrorFilter(reason="schema_violation", session_id="s-1")
    job_id = start_replay_job(engine, where, checker, filters, "ops", batch_size=5)

    def finished():
        with engine.connect() as conn:
            job = get_job(conn, job_id)
        return job if job.finished_at is not None else None

    job = wait_until(finished, timeout=60)
    expected = len([i for i in range(1200) if i % 97 == 1])
    assert (job.total, job.replayed, job.still_failing, job.skipped) == (expected, expected, 0, 0)
    assert (job.filters, job.started_by, job.failure) == (filters, "ops", None)
    assert count_rows(engine, events) == expected
    assert count_rows(engine, errors, errors.c.replayed, errors.c.session_id != "s-1") == 0
