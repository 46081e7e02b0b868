"""The `db` queue beside a SQLite store: an inbox file of its own, so ingest never waits for
a processor's transaction, and a processor killed between its store commit and its inbox
delete loses nothing and stores nothing twice."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import sqlalchemy as sa

from tests.helpers import count_rows, fetch_all, make_event, queue_depth
from tests.processes import the_eye_env
from the_eye.processor.worker import Processor
from the_eye.queue import EVENTS, open_queue
from the_eye.queue.db import inbox_file
from the_eye.store.engine import sqlite_file
from the_eye.store.tables import counters, errors, events, inbox, sessions
from the_eye.timestamps import utcnow


@pytest.fixture
def sqlite_only(settings):
    if not settings.database_url.startswith("sqlite") or settings.queue_url != "db":
        pytest.skip("the inbox file of a SQLite store")


def counter(engine, name: str) -> int:
    with engine.connect() as conn:
        query = sa.select(counters.c.value).where(counters.c.name == name)
        return conn.execute(query).scalar_one()


def test_the_inbox_is_a_private_file_beside_the_store(sqlite_only, settings, engine, sender):
    assert sender.post("/events/", json=make_event()).status_code == 202
    store = sqlite_file(settings.database_url)
    assert store is not None
    path = inbox_file(store)
    assert path.name == f"{store.stem}.inbox{store.suffix}"
    assert path.stat().st_mode & 0o777 == 0o600
    assert count_rows(engine, inbox) == 0  # nothing queued in the store itself
    assert queue_depth(settings, engine) == 1


def test_ingest_answers_while_the_store_is_locked(sqlite_only, settings, engine, sender):
    """A processor's transaction holds the store's write lock: requests are still accepted
    at once, as their inbox is another file."""
    blocker = engine.raw_connection()
    blocker.execute("BEGIN IMMEDIATE")
    try:
        answers = [sender.post("/events/", json=make_event()) for _ in range(5)]
    finally:
        blocker.rollback()
        blocker.close()
    assert [a.status_code for a in answers] == [202] * 5
    assert queue_depth(settings, engine) == 5


KILL_AFTER_STORE_COMMIT = textwrap.dedent(
    """
    import os, signal
    from the_eye.config import Settings
    from the_eye.processor.worker import run_worker
    from the_eye.queue.db import DatabaseQueue

    def die(self, ids):  # the store has committed; the inbox rows are still there
        if ids:
            os.kill(os.getpid(), signal.SIGKILL)

    DatabaseQueue._delete = die
    run_worker(Settings())
    """
)


def kill_after_store_commit(settings) -> None:
    """Run a processor process that SIGKILLs itself once a batch is committed in the store,
    before it deletes the batch from the inbox."""
    done = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_STORE_COMMIT],
        env={**os.environ, **the_eye_env(settings)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == -signal.SIGKILL, done.stderr


def drain_after_the_reservation(settings) -> None:
    """A second processor, for which the dead one's reservation has lapsed."""
    later = Processor.from_settings(settings.model_copy(update={"inbox_claim_idle": 0.001}))
    try:
        for _ in range(10):
            later.run_once()
    finally:
        later.close()


def test_a_processor_killed_between_store_commit_and_inbox_delete_loses_and_repeats_nothing(
    sqlite_only, settings, engine, sender, admin
):
    """The request comes again to the next processor: its events are kept once, its invalid
    events' error records once, and its sessions count each event once."""
    batch = [make_event(session_id=f"s-{i % 3}", event_id=f"ev-{i}") for i in range(30)]
    batch += [make_event(event_id=f"bad-{i}", timestamp="not a time") for i in range(4)]
    assert sender.post("/events/", json=batch).status_code == 202

    kill_after_store_commit(settings)
    assert count_rows(engine, events) == 30  # committed in the store...
    assert queue_depth(settings, engine) == 1  # ...and still in the inbox
    drain_after_the_reservation(settings)

    assert queue_depth(settings, engine) == 0
    stored = [e["event_id"] for e in fetch_all(admin, "/events/")]
    assert sorted(stored) == sorted(f"ev-{i}" for i in range(30))
    kept = [e["event_id"] for e in fetch_all(admin, "/errors/")]
    assert sorted(kept) == sorted(f"bad-{i}" for i in range(4))
    with engine.connect() as conn:
        counts = dict(conn.execute(sa.select(sessions.c.id, sessions.c.event_count)).all())
    assert counts == {"s-0": 10, "s-1": 10, "s-2": 10}
    assert counter(engine, "stored") == 30
    assert counter(engine, "errored") == 4
    # The second delivery is counted as what it is: 34 events seen again.
    assert counter(engine, "duplicates") == 34


def test_a_broken_body_delivered_again_after_the_kill_is_kept_once(
    sqlite_only, settings, engine, sender, admin
):
    """A body refused at ingest is kept as one error record, keyed by its delivery (the
    inbox file's key and the row's id), however often it comes."""
    assert sender.post("/events/", content=b'[{"session_id": ').status_code == 400
    kill_after_store_commit(settings)
    assert count_rows(engine, errors) == 1
    drain_after_the_reservation(settings)
    assert queue_depth(settings, engine) == 0
    (error,) = fetch_all(admin, "/errors/")
    assert error["reason"] == "invalid_json"
    assert counter(engine, "rejected") == 1


def test_requests_queued_in_the_store_by_an_earlier_version_move_into_the_inbox_file(
    sqlite_only, settings, engine, creds
):
    """The store's own inbox table held two requests and the received count: the first queue
    opened moves both, and they are processed once."""
    store = sqlite_file(settings.database_url)
    assert store is not None and not inbox_file(store).exists()
    with engine.begin() as conn:
        for event_id in ("old-1", "old-2"):
            conn.execute(
                sa.insert(inbox).values(
                    application_id=creds.application_id,
                    kind=EVENTS,
                    received_at=utcnow(),
                    event_ids=f'["{event_id}"]',
                    body=json.dumps([make_event(event_id=event_id)]).encode(),
                )
            )
        conn.execute(sa.update(counters).where(counters.c.name == "received").values(value=7))
    assert queue_depth(settings, engine) == 2
    assert count_rows(engine, inbox) == 0
    queue = open_queue(settings, engine)
    try:
        assert queue.received_total() == 7
    finally:
        queue.close()
    processor = Processor.from_settings(settings)
    try:
        processor.drain()
    finally:
        processor.close()
    with engine.connect() as conn:
        stored = conn.execute(sa.select(events.c.event_id)).scalars().all()
    assert sorted(stored) == ["old-1", "old-2"]
    assert queue_depth(settings, engine) == 0


def queue_in_store(
    engine, application_id: int, *event_ids: str, row_id: int | None = None, count: bool = True
):
    """What a version that queued in the store's own inbox table wrote for each request: a
    row, and one more received event in the store's count."""
    with engine.begin() as conn:
        for event_id in event_ids:
            values = {
                "application_id": application_id,
                "kind": EVENTS,
                "received_at": utcnow(),
                "event_ids": f'["{event_id}"]',
                "body": json.dumps([make_event(event_id=event_id)]).encode(),
            }
            if row_id is not None:
                values["id"] = row_id
            conn.execute(sa.insert(inbox).values(**values))
            if count:
                bump = counters.c.value + 1
                received = counters.c.name == "received"
                conn.execute(sa.update(counters).where(received).values(value=bump))


def test_requests_an_older_api_queues_during_an_upgrade_move_in_once(
    sqlite_only, settings, engine, creds
):
    """The file exists already (a new worker started first) while an older API still queues
    in the store: the next start moves those requests and their count, and a move that
    stopped before deleting them from the store does not take them twice."""
    open_queue(settings, engine).close()
    queue_in_store(engine, creds.application_id, "late-1", "late-2")
    first_id = min(count_ids(engine))

    queue = open_queue(settings, engine)
    try:
        assert queue.depth() == 2
        assert queue.received_total() == 2
    finally:
        queue.close()
    assert count_rows(engine, inbox) == 0

    # As if the store's delete had not happened: the row is back under its old id.
    queue_in_store(engine, creds.application_id, "late-1", row_id=first_id, count=False)
    queue = open_queue(settings, engine)
    try:
        assert queue.depth() == 2  # not taken twice
        assert queue.received_total() == 2
    finally:
        queue.close()
    assert count_rows(engine, inbox) == 0


def count_ids(engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(inbox.c.id)).scalars())
