"""Three worker processes on interleaved batches of the same sessions, each request sent
twice: exact session counts and times, no duplicate events."""

from __future__ import annotations

from datetime import datetime

import pytest
import sqlalchemy as sa

from tests.faults.traffic import event_batches, post_all, stored_ids
from tests.helpers import count_rows, queue_depth
from tests.processes import ServeProcess, WorkerProcess, the_eye_env, wait_until
from the_eye.store.tables import counters, errors, events, sessions

pytestmark = pytest.mark.slow

TOTAL, PER_REQUEST, SESSIONS = 6_000, 20, 5


def test_three_workers_on_the_same_sessions_count_exactly_and_store_no_duplicate(
    pg_settings, store, write_key, tmp_path
):
    # Two requests per batch: the workers take turns on the queue, and every request holds
    # events of all five sessions, so concurrent batches always upsert the same rows.
    env = the_eye_env(pg_settings, batch_size=2)
    workers = [WorkerProcess(env, tmp_path / f"worker-{i}.log").start() for i in range(3)]
    serve = ServeProcess(env, "--no-processor").start()
    try:
        batches = event_batches(TOTAL, PER_REQUEST, SESSIONS)
        # Every request twice, the second time in the reverse order: the copies meet in
        # different workers at the same moment.
        accepted = post_all(serve.url, write_key, batches + batches[::-1], threads=6)
        assert accepted == 2 * TOTAL
        wait_until(
            lambda: queue_depth(pg_settings, store) == 0 and count_rows(store, events) == TOTAL,
            timeout=180,
            interval=0.5,
        )
    finally:
        serve.stop()
        for worker in workers:
            worker.stop()

    ids = stored_ids(store)
    assert len(ids) == len(set(ids)) == TOTAL
    with store.connect() as conn:
        rows = conn.execute(
            sa.select(
                sessions.c.id, sessions.c.event_count, sessions.c.first_seen, sessions.c.last_seen
            )
        ).all()
        values = dict(conn.execute(sa.select(counters.c.name, counters.c.value)).all())
    assert len(rows) == SESSIONS
    for row in rows:
        index = int(row.id.removeprefix("s-"))
        mine = [i for i in range(TOTAL) if i % SESSIONS == index]
        assert row.event_count == len(mine)
        assert row.first_seen == _timestamp(mine[0])
        assert row.last_seen == _timestamp(mine[-1])
    assert count_rows(store, errors) == 0
    assert values["stored"] == TOTAL and values["duplicates"] == TOTAL


def _timestamp(i: int) -> datetime:
    return datetime(2021, 1, 1, (i // 3600) % 24, (i // 60) % 60, i % 60)
