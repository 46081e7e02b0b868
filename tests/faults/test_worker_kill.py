"""SIGKILL one of three workers in the middle of a 50,000-event backlog: nothing is lost,
nothing is stored twice, every session counts exactly."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from tests.faults.traffic import event_batches, post_all, session_counts, stored_ids
from tests.helpers import count_rows, queue_depth
from tests.processes import ServeProcess, WorkerProcess, the_eye_env, wait_until
from the_eye.store.tables import counters, errors, events

pytestmark = pytest.mark.slow

TOTAL, PER_REQUEST, SESSIONS = 50_000, 100, 200


def test_sigkill_of_one_worker_mid_backlog_stores_every_event_exactly_once(
    pg_settings, store, write_key, tmp_path
):
    # The backlog first, from an API-only node, so the workers start on a full queue.
    serve = ServeProcess(the_eye_env(pg_settings), "--no-processor").start()
    try:
        accepted = post_all(serve.url, write_key, event_batches(TOTAL, PER_REQUEST, SESSIONS))
    finally:
        serve.stop()
    assert accepted == TOTAL
    assert queue_depth(pg_settings, store) == TOTAL // PER_REQUEST

    # Batches of 10 requests (1,000 events) keep each worker inside a batch most of the time;
    # a short claim time lets the survivors take over what the dead one held on Redis.
    env = the_eye_env(pg_settings, batch_size=10, redis_claim_idle=2, inbox_claim_idle=2)
    workers = [WorkerProcess(env, tmp_path / f"worker-{i}.log").start() for i in range(3)]
    try:
        wait_until(lambda: count_rows(store, events) >= TOTAL // 5, timeout=180)
        workers[0].kill()
        wait_until(
            lambda: queue_depth(pg_settings, store) == 0 and count_rows(store, events) == TOTAL,
            timeout=300,
            interval=0.5,
        )
        for survivor in workers[1:]:
            assert survivor.terminate() == 0  # SIGTERM: finish the batch in hand, exit cleanly
            assert "processor stopped" in survivor.log()
    finally:
        for worker in workers:
            worker.stop()

    ids = stored_ids(store)
    assert len(ids) == TOTAL and len(set(ids)) == TOTAL
    assert set(ids) == {f"ev-{i}" for i in range(TOTAL)}
    counts = session_counts(store)
    assert len(counts) == SESSIONS
    assert {said for said, _ in counts.values()} == {TOTAL // SESSIONS}
    assert all(said == real for said, real in counts.values())
    assert count_rows(store, errors) == 0
    with store.connect() as conn:
        stored = conn.execute(
            sa.select(counters.c.value).where(counters.c.name == "stored")
        ).scalar_one()
    assert stored == TOTAL
