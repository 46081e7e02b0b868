"""SIGTERM lets a worker finish the batch in hand: it exits cleanly, and every request it
took out of the queue is stored whole, none left half-done or pending."""

from __future__ import annotations

import pytest
import redis

from tests.faults.traffic import event_batches, post_all
from tests.helpers import count_rows, queue_depth
from tests.processes import ServeProcess, WorkerProcess, the_eye_env, wait_until
from the_eye.store.tables import events

pytestmark = pytest.mark.slow

TOTAL, PER_REQUEST = 20_000, 100


def test_sigterm_mid_backlog_finishes_the_batch_in_hand_and_exits_cleanly(
    pg_settings, store, write_key, tmp_path
):
    serve = ServeProcess(the_eye_env(pg_settings), "--no-processor").start()
    try:
        post_all(serve.url, write_key, event_batches(TOTAL, PER_REQUEST, 50))
    finally:
        serve.stop()
    # Batches of 5,000 events: the signal almost surely lands inside one.
    worker = WorkerProcess(the_eye_env(pg_settings, batch_size=50), tmp_path / "worker.log").start()
    try:
        wait_until(lambda: count_rows(store, events) > 0, timeout=120, interval=0.05)
        assert worker.terminate() == 0
    finally:
        worker.stop()
    assert "processor stopped" in worker.log()

    taken = TOTAL // PER_REQUEST - queue_depth(pg_settings, store)
    assert 0 < taken < TOTAL // PER_REQUEST  # stopped mid-backlog, not after it
    assert count_rows(store, events) == taken * PER_REQUEST
    if pg_settings.queue_url != "db":
        client = redis.Redis.from_url(pg_settings.queue_url)
        try:
            summary = client.xpending(pg_settings.redis_stream, pg_settings.redis_group)
        finally:
            client.close()
        assert summary["pending"] == 0  # acknowledged, not abandoned to a take-over
