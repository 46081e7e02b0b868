"""Restart Redis while events flow: the API answers 503 with Retry-After while it is down,
recovers by itself, and every event that got a 202 is stored."""

from __future__ import annotations

import httpx
import pytest

from tests.faults.network import PrivateRedis
from tests.faults.traffic import Flow, session_counts, stored_ids
from tests.helpers import REDIS_URL, production_settings
from tests.processes import ServeProcess, WorkerProcess, the_eye_env, wait_until
from the_eye.store.credentials import create_application
from the_eye.store.engine import create_engine

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not REDIS_URL, reason="THE_EYE_TEST_REDIS_URL is not set"),
]


@pytest.fixture
def private_redis(tmp_path):
    """Never the shared Redis: this one is killed mid-test."""
    server = PrivateRedis(tmp_path).start()
    yield server
    server.stop()


def test_restarting_redis_while_events_flow_loses_no_accepted_event(
    empty_store_url, private_redis, tmp_path
):
    settings = production_settings(empty_store_url("postgresql"), private_redis.url)
    engine = create_engine(settings)
    with engine.begin() as conn:
        key = create_application(conn, "web").write_key
    env = the_eye_env(settings)
    serve = ServeProcess(env, "--no-processor").start()
    worker = WorkerProcess(env, tmp_path / "worker.log").start()
    flow = Flow(serve.url, key).start()
    try:
        wait_until(lambda: len(flow.accepted) >= 200)
        private_redis.kill()
        wait_until(lambda: flow.unavailable >= 5)
        ready = httpx.get(f"{serve.url}/ready/", timeout=10)
        assert ready.status_code == 503
        assert ready.json()["error"]["details"]["queue"].startswith("unavailable")
        assert httpx.get(f"{serve.url}/metrics", timeout=10).status_code == 503
        wait_until(lambda: worker.log().count("store or queue unavailable") >= 3)

        private_redis.start()  # same port, same append-only file
        before = len(flow.accepted)
        wait_until(lambda: len(flow.accepted) >= before + 200, timeout=60)
        assert httpx.get(f"{serve.url}/ready/", timeout=10).status_code == 200
    finally:
        flow.stop()
        serve.stop()

    try:
        accepted = set(flow.accepted)
        wait_until(lambda: accepted <= set(stored_ids(engine)), timeout=90, interval=0.5)
        assert worker.proc.poll() is None  # waited out the outage by itself
        assert "processing resumed" in worker.log()
    finally:
        worker.stop()
        engine.dispose()
    assert flow.wrong == []
    counts = session_counts(engine)
    assert all(said == real for said, real in counts.values())
