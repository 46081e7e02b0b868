"""The whole under attack: an honest sender at a steady rate keeps its events and its
latency while hostile clients send gzip bombs without a key, random write keys, slow and
oversized headers, and unfinished or oversized bodies with a valid key, all at once."""

from __future__ import annotations

import multiprocessing
import time
from collections.abc import Iterator

import httpx
import pytest
import sqlalchemy as sa

from tests.faults.hostile import attack
from tests.helpers import make_event
from tests.processes import ServeProcess, the_eye_env, wait_until
from the_eye.config import Settings
from the_eye.store.credentials import create_application
from the_eye.store.engine import create_engine
from the_eye.store.tables import events

pytestmark = pytest.mark.slow

RATE = 50  # honest requests per second, one event each
QUIET_SECONDS = 6
ATTACK_SECONDS = 12


@pytest.fixture
def store(empty_store_url) -> Iterator[tuple[Settings, sa.Engine]]:
    settings = Settings(database_url=empty_store_url("sqlite"), _env_file=None)
    engine = create_engine(settings)
    yield settings, engine
    engine.dispose()


def send_steadily(
    client: httpx.Client, prefix: str, seconds: float
) -> tuple[list[str], list[float]]:
    """One event per request at `RATE` a second; the ids sent and each request's latency."""
    ids, latencies = [], []
    started = time.monotonic()
    for i in range(int(seconds * RATE)):
        time.sleep(max(0.0, started + i / RATE - time.monotonic()))
        event_id = f"{prefix}-{i}"
        sent = time.perf_counter()
        response = client.post("/events/", json=make_event(event_id=event_id))
        latencies.append(time.perf_counter() - sent)
        assert response.status_code == 202, response.text
        ids.append(event_id)
    return ids, latencies


def p99(latencies: list[float]) -> float:
    ordered = sorted(latencies)
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def stored_count(engine: sa.Engine, ids: list[str]) -> int:
    with engine.connect() as conn:
        query = sa.select(sa.func.count()).where(events.c.event_id.in_(ids))
        return conn.execute(query).scalar_one()


def test_an_honest_sender_keeps_its_events_and_latency_under_attack(store):
    settings, engine = store
    with engine.begin() as conn:
        honest_key = create_application(conn, "honest").write_key
        hostile_key = create_application(conn, "hostile").write_key
    env = the_eye_env(
        settings, header_timeout=2, body_timeout=3, rate_limit_per_key=200, rate_limit_burst=200
    )
    serve = ServeProcess(env).start()
    attacker = None
    try:
        headers = {"Authorization": f"Bearer {honest_key}"}
        with httpx.Client(base_url=serve.url, headers=headers, timeout=30) as client:
            quiet_ids, quiet = send_steadily(client, "quiet", QUIET_SECONDS)
            attacker = multiprocessing.get_context("spawn").Process(
                target=attack, args=(serve.url, serve.port, hostile_key, ATTACK_SECONDS + 2)
            )
            attacker.start()
            time.sleep(2)  # the hostile clients are all at work
            loaded_ids, loaded = send_steadily(client, "loaded", ATTACK_SECONDS)
            memory = serve.memory("serve")
        attacker.join(30)
        sent = quiet_ids + loaded_ids
        wait_until(lambda: stored_count(engine, sent) == len(sent), timeout=60)
    finally:
        if attacker is not None and attacker.is_alive():
            attacker.kill()
        serve.stop()
    quiet_p99, loaded_p99 = p99(quiet) * 1000, p99(loaded) * 1000
    peak = {m.role: m.peak_mb for m in memory}
    print(
        f"\nhonest p99: {quiet_p99:.1f} ms unloaded, {loaded_p99:.1f} ms under attack "
        f"({len(loaded)} requests); peak RSS MB: {peak}"
    )
    assert loaded_p99 < max(10 * quiet_p99, 250)
    assert max(m.peak_mb for m in memory if m.role in ("serve", "api")) < 300
