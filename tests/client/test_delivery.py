"""The SDK against a live server: delivery, batching, sync mode, asyncio, errors and drops."""

from __future__ import annotations

import asyncio
import math
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from tests.client.conftest import FAST_RETRY
from tests.helpers import LiveServer, fetch_all, inbox_database
from tests.processes import free_port, wait_until
from the_eye.client import AsyncEyeClient, DeliveryError, EyeClient, RetryPolicy
from the_eye.config import Settings
from the_eye.store.credentials import create_application
from the_eye.store.engine import create_engine
from the_eye.store.tables import inbox


def test_tracked_events_are_delivered_in_batches(make_client, processor, admin):
    client = make_client(batch_size=10)
    ids = [
        client.track(f"s-{i % 3}", "page interaction", "pageview", {"path": f"/{i}"})
        for i in range(25)
    ]
    assert client.flush()
    assert client.stats().sent == 25 and client.stats().pending == 0
    processor.drain()
    events = fetch_all(admin, "/events/")
    assert sorted(e["event_id"] for e in events) == sorted(ids)
    first = next(e for e in events if e["event_id"] == ids[0])
    assert (first["session_id"], first["category"], first["name"]) == (
        "s-0",
        "page interaction",
        "pageview",
    )
    assert first["data"] == {"path": "/0"}


def test_event_ids_made_by_the_client_are_version_7_uuids_in_time_order(make_client):
    client = make_client(sync_mode=True)
    ids = []
    for i in range(3):
        ids.append(client.track("s", "c", "n", {"i": i}))
        time.sleep(0.002)
    parsed = [uuid.UUID(event_id) for event_id in ids]
    assert [u.version for u in parsed] == [7, 7, 7]
    assert all(u.variant == uuid.RFC_4122 for u in parsed)
    assert ids == sorted(ids) and len(set(ids)) == 3
    made = [(u.int >> 80) / 1000 for u in parsed]
    assert all(abs(at - time.time()) < 60 for at in made), made


def test_timestamps_and_event_ids_given_by_the_caller_are_kept(make_client, processor, admin):
    client = make_client(gzip=False)
    paris = timezone(timedelta(hours=2))
    client.track("s", "c", "aware", {"k": 1}, datetime(2021, 1, 1, 11, 0, tzinfo=paris), "e-1")
    client.track("s", "c", "naive", {"k": 1}, datetime(2021, 1, 1, 9, 0), event_id="e-2")
    client.track("s", "c", "text", {"at": datetime(2020, 1, 1)}, "2021-01-01 09:00", "e-3")
    assert client.flush()
    processor.drain()
    events = {e["event_id"]: e for e in fetch_all(admin, "/events/")}
    assert {e["timestamp"] for e in events.values()} == {"2021-01-01T09:00:00.000000Z"}
    assert events["e-3"]["data"] == {"at": "2020-01-01T00:00:00"}


def test_sync_mode_sends_on_the_callers_thread(make_client, engine, processor, admin):
    client = make_client(sync_mode=True)
    senders_before = sum(t.name == "the-eye-client" for t in threading.enumerate())
    event_id = client.track("s-1", "form interaction", "submit", {"form": {"a": 1}})
    assert processor.queue.depth() == 1  # queued durably before track returned
    assert client.stats().sent == 1
    assert sum(t.name == "the-eye-client" for t in threading.enumerate()) == senders_before
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == [event_id]


def test_async_client_tracks_and_flushes(server, creds, processor, admin):
    async def send() -> list[str]:
        async with AsyncEyeClient(creds.write_key, server.url, batch_size=5) as eye:
            ids = [await eye.track("s-a", "async", "tick", {"n": n}) for n in range(12)]
            assert await eye.flush()
            assert eye.stats().sent == 12
        async with AsyncEyeClient(creds.write_key, server.url, sync_mode=True) as eye:
            ids.append(await eye.track("s-a", "async", "sync", {"n": 12}))
            assert eye.stats().sent == 1
        return ids

    ids = asyncio.run(send())
    processor.drain()
    assert sorted(e["event_id"] for e in fetch_all(admin, "/events/")) == sorted(ids)


def test_a_401_goes_to_on_error_and_is_not_retried(make_client, caplog):
    caplog.set_level("WARNING", logger="the_eye.client")
    failures: list[tuple[DeliveryError, list[dict]]] = []
    client = make_client(
        write_key="eye_wk_unknown",
        retry=FAST_RETRY,
        on_error=lambda error, events: failures.append((error, events)),
    )
    event_id = client.track("s-1", "c", "n", {"k": "v"})
    assert client.flush()
    [(error, events)] = failures
    assert (error.status, error.code, error.attempts) == (401, "unauthorized", 1)
    assert [e["event_id"] for e in events] == [event_id]
    stats = client.stats()
    assert (stats.sent, stats.failed, stats.retries) == (0, 1, 0)
    # Applications configure the `the_eye.client` logger, as the README says.
    assert any(r.name.startswith("the_eye.client") for r in caplog.records)


def test_network_errors_are_retried_then_given_up(make_client):
    failures: list[DeliveryError] = []
    client = make_client(
        host=f"http://127.0.0.1:{free_port()}",  # nothing listens there
        retry=RetryPolicy(max_retries=2, backoff=0.01),
        on_error=lambda error, events: failures.append(error),
    )
    client.track("s-1", "c", "n", {"k": "v"})
    assert client.flush()
    [error] = failures
    assert error.status is None and error.retryable and error.attempts == 3
    assert client.stats().retries == 2


def test_a_full_queue_drops_and_counts(make_client, processor, admin):
    # Nothing is sent before the flush: a batch is never full, the interval never ends.
    client = make_client(batch_size=1000, flush_interval=3600, max_queue_size=10)
    ids = [client.track("s-1", "c", "n", {"i": i}) for i in range(15)]
    assert client.dropped == 5 and client.stats().dropped == 5
    assert client.flush()
    processor.drain()
    assert sorted(e["event_id"] for e in fetch_all(admin, "/events/")) == sorted(ids[:10])
    # Room again: the next event is queued and sent.
    kept = client.track("s-1", "c", "n", {"i": 15})
    assert client.flush() and client.dropped == 5
    processor.drain()
    assert kept in {e["event_id"] for e in fetch_all(admin, "/events/")}


def test_after_shutdown_events_are_dropped(make_client):
    client = make_client()
    client.track("s-1", "c", "n", {"k": "v"})
    assert client.shutdown()
    assert client.stats().sent == 1
    client.track("s-1", "c", "n", {"k": "v"})
    assert client.dropped == 1


def test_a_503_is_retried_after_its_retry_after(empty_store_url):
    """SQLite's lock held by another connection makes the server answer 503 with Retry-After."""
    settings = Settings(
        database_url=empty_store_url("sqlite"), sqlite_busy_timeout_ms=100, _env_file=None
    )
    engine = create_engine(settings)
    with engine.begin() as conn:
        key = create_application(conn, "locked").write_key
    failures: list[DeliveryError] = []
    with LiveServer(settings) as live, inbox_database(settings, engine) as inbox_db:
        client = EyeClient(
            key, live.url, retry=FAST_RETRY, on_error=lambda e, _: failures.append(e)
        )
        blocker = inbox_db.raw_connection()
        blocker.execute("BEGIN IMMEDIATE")
        try:
            event_id = client.track("s-1", "c", "n", {"k": "v"})
            wait_until(lambda: client.stats().retries >= 1)
        finally:
            blocker.rollback()
            blocker.close()
        assert client.shutdown(timeout=30)
        assert failures == [] and client.stats().sent == 1
        with inbox_db.connect() as conn:
            rows = conn.execute(sa.select(inbox.c.event_ids)).scalars().all()
    assert rows == [f'["{event_id}"]']
    engine.dispose()


def hold_inbox_lock(engine):
    """Block every write to the inbox (`engine`: the database it is in) until the returned
    connection rolls back."""
    blocker = engine.raw_connection()
    if engine.dialect.name == "sqlite":
        blocker.execute("BEGIN IMMEDIATE")
    else:
        blocker.cursor().execute("LOCK TABLE inbox IN EXCLUSIVE MODE")
    return blocker


def test_a_batch_sent_again_after_a_lost_answer_is_stored_once(
    settings, creds, engine, processor, admin
):
    """The server takes the requests but cannot answer in time (its inbox write waits on a
    lock), so the client gives up on each and sends it again: the server queues every copy,
    and stores each event once."""
    if settings.queue_url != "db":
        pytest.skip("delays the answer by holding the db queue's inbox lock")
    patient = settings.model_copy(update={"sqlite_busy_timeout_ms": 120_000})
    with LiveServer(patient) as live:
        client = EyeClient(creds.write_key, live.url, retry=FAST_RETRY, timeout=0.5)
        with inbox_database(settings, engine) as inbox_db:
            blocker = hold_inbox_lock(inbox_db)
            try:
                ids = [client.track("s-1", "c", "n", {"i": i}) for i in range(10)]
                wait_until(lambda: client.stats().retries >= 2)
            finally:
                blocker.rollback()
                blocker.close()
        assert client.shutdown(timeout=60)
        assert client.stats().sent == 10
        copies = processor.queue.depth()
        processor.drain()
        metrics = admin.get("/metrics").text
    assert copies >= 2  # the server really received the batch more than once
    assert f"the_eye_events_duplicates_total {(copies - 1) * 10}" in metrics
    assert sorted(e["event_id"] for e in fetch_all(admin, "/events/")) == sorted(ids)


def test_track_refuses_what_the_eye_would_reject_outright(make_client):
    client = make_client()
    for args in (
        ("", "c", "n", {"k": 1}),
        ("s", None, "n", {"k": 1}),
        ("s", "c", "n", {}),
        ("s", "c", "n", ["not", "an", "object"]),
    ):
        with pytest.raises((TypeError, ValueError)):
            client.track(*args)
    with pytest.raises(ValueError):
        client.track("s", "c", "n", {"k": math.nan})
    with pytest.raises(TypeError):
        client.track("s", "c", "n", {"k": object()})
    with pytest.raises(TypeError):
        client.track("s", "c", "n", {"k": 1}, timestamp=12)
    assert client.stats().pending == 0


def test_retry_policy_backs_off_with_jitter_and_honours_retry_after():
    policy = RetryPolicy(backoff=1, max_backoff=8)
    for retry, ceiling in ((0, 1), (1, 2), (2, 4), (3, 8), (10, 8)):
        waits = {policy.delay(retry) for _ in range(50)}
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(waits) > 1
    assert policy.delay(0, retry_after=5) == 5
    assert policy.delay(0, retry_after=10_000) == policy.max_retry_after
    assert policy.retries(429) and policy.retries(503) and policy.retries(500)
    assert not any(policy.retries(s) for s in (400, 401, 403, 404, 413))


def test_the_sdk_imports_nothing_from_the_server():
    code = (
        "import sys, the_eye.client\n"
        "server = {'fastapi', 'starlette', 'sqlalchemy', 'msgspec', 'pydantic',\n"
        "          'pydantic_settings', 'uvicorn', 'alembic', 'psycopg', 'redis', 'click'}\n"
        "loaded = {m.split('.')[0] for m in sys.modules} & server\n"
        "ours = sorted(m for m in sys.modules if m.startswith('the_eye.')\n"
        "              and not m.startswith('the_eye.client'))\n"
        "assert not loaded and not ours, (loaded, ours)\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_a_host_with_a_path_is_sent_to_under_it(make_client, server):
    # For The Eye behind a proxy at /eye/; with no proxy here, the server does not know the
    # path, and the client hands the answer to on_error without retrying.
    failures: list[DeliveryError] = []
    client = make_client(host=f"{server.url}/eye/", on_error=lambda e, _: failures.append(e))
    client.track("s", "c", "n", {"k": 1})
    assert client.flush()
    assert failures[0].status == 404 and failures[0].attempts == 1


def test_retry_after_as_an_http_date():
    from the_eye.client._retry import parse_retry_after

    later = datetime.now(UTC) + timedelta(seconds=30)
    assert 25 < parse_retry_after(later.strftime("%a, %d %b %Y %H:%M:%S GMT")) <= 30
    assert parse_retry_after("7") == 7
    assert parse_retry_after("soon") is None
