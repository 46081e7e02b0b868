"""PostgreSQL unreachable: /ready/ says so, workers retry with backoff and resume by
themselves, and nothing acknowledged is lost."""

from __future__ import annotations

import httpx
import pytest
from sqlalchemy.engine import make_url

from tests.faults.network import TcpProxy
from tests.faults.traffic import event_batches, post_all, session_counts, stored_ids
from tests.helpers import client_as, count_rows, queue_depth
from tests.processes import ServeProcess, WorkerProcess, the_eye_env, wait_until
from the_eye.store.tables import errors

pytestmark = pytest.mark.slow


def send(url: str, key: str, batches: list[list[dict]]) -> tuple[list[str], list[str]]:
    """Post each batch once; the ids that got a 202, and every answer that broke the contract."""
    accepted, wrong = [], []
    with client_as(url, key) as client:
        for batch in batches:
            response = client.post("/events/", json=batch, timeout=30)
            if response.status_code == 202:
                accepted += response.json()["event_ids"]
            elif response.status_code != 503 or not response.headers.get("Retry-After"):
                wrong.append(f"{response.status_code} {response.headers} {response.text}")
    return accepted, wrong


def test_postgresql_unreachable_then_back_loses_nothing_acknowledged(
    pg_settings, store, write_key, tmp_path
):
    direct = make_url(pg_settings.database_url)
    proxy = TcpProxy(direct.host, direct.port or 5432).start()
    through_proxy = direct.set(port=proxy.port).render_as_string(hide_password=False)
    env = the_eye_env(pg_settings, database_url=through_proxy)
    serve = ServeProcess(env, "--no-processor").start()
    workers = [WorkerProcess(env, tmp_path / f"worker-{i}.log").start() for i in range(2)]
    try:
        accepted = post_all(serve.url, write_key, event_batches(1000, 50, 7, "before"))
        assert accepted == 1000
        before = {f"before-{i}" for i in range(1000)}

        proxy.cut()
        wait_until(lambda: httpx.get(f"{serve.url}/ready/", timeout=15).status_code == 503)
        ready = httpx.get(f"{serve.url}/ready/", timeout=15).json()
        assert ready["error"]["details"]["store"].startswith("unavailable")
        assert httpx.get(f"{serve.url}/metrics", timeout=15).status_code == 503
        # While the store is away the API either still queues (Redis, a cached write key) or
        # answers 503 with Retry-After; never anything else.
        during, wrong = send(serve.url, write_key, event_batches(500, 50, 7, "during"))
        assert wrong == []
        for worker in workers:
            # Several tries, each after a longer wait, while the store stays away.
            wait_until(lambda w=worker: w.log().count("store or queue unavailable") >= 4)

        proxy.restore()
        wait_until(lambda: httpx.get(f"{serve.url}/ready/", timeout=15).status_code == 200)
        after, wrong = send(serve.url, write_key, event_batches(1000, 50, 7, "after"))
        assert wrong == [] and len(after) == 1000

        acknowledged = before | set(during) | set(after)
        wait_until(
            lambda: queue_depth(pg_settings, store) == 0 and acknowledged <= set(stored_ids(store)),
            timeout=90,
            interval=0.5,
        )
        for worker in workers:
            assert worker.proc.poll() is None
            wait_until(lambda w=worker: "processing resumed" in w.log())
    finally:
        serve.stop()
        for worker in workers:
            worker.stop()
        proxy.stop()

    ids = stored_ids(store)
    assert len(ids) == len(set(ids))
    assert count_rows(store, errors) == 0
    assert all(said == real for said, real in session_counts(store).values())
