"""Deliveries are counted: a request that keeps killing the processors taking it is set
aside as an error, a legacy request too large for memory is refused unread, and the
counters account for every accepted event once."""

from __future__ import annotations

import asyncio
import multiprocessing
import os
import re

import pytest
import sqlalchemy as sa

from tests.helpers import fetch_all, inbox_database, make_event, queue_depth
from the_eye.processor.worker import Processor
from the_eye.queue import EVENTS, Message, open_queue
from the_eye.store.tables import inbox
from the_eye.timestamps import utcnow


def backend(settings) -> str:
    return "redis" if settings.queue_url.startswith("redis") else "db"


def test_a_request_delivered_past_the_limit_is_kept_unprocessed(
    sender, processor, admin, settings, engine
):
    """Processors died with it in hand three times (simulated by its count): the fourth
    taker keeps it as `processing_failed`, unread, and the queue moves on."""
    if backend(settings) != "db":
        pytest.skip("the inbox's attempts column")
    sender.post("/events/", json=make_event(event_id="poison"))
    with inbox_database(settings, engine) as inbox_db, inbox_db.begin() as conn:
        conn.execute(sa.update(inbox).values(attempts=settings.max_deliveries))
    sender.post("/events/", json=make_event(event_id="after"))
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["after"]
    (error,) = fetch_all(admin, "/errors/")
    detail = admin.get(f"/errors/{error['id']}/").json()
    assert detail["reason"] == "processing_failed"
    assert detail["details"] == {"events": 1, "deliveries": 4}
    assert "poison" in detail["payload"]
    assert queue_depth(settings, engine) == 0


def test_a_redis_entry_delivered_past_the_limit_is_kept_unprocessed(
    sender, admin, settings, engine
):
    if backend(settings) != "redis":
        pytest.skip("Redis's delivery count")
    import redis

    sender.post("/events/", json=make_event(event_id="poison"))
    client = redis.Redis.from_url(settings.queue_url)
    try:
        client.xgroup_create(settings.redis_stream, settings.redis_group, id="0")
        client.xreadgroup(settings.redis_group, "dead", {settings.redis_stream: ">"})
        for _ in range(settings.max_deliveries - 1):  # each read of its history counts
            client.xreadgroup(settings.redis_group, "dead", {settings.redis_stream: "0"})
    finally:
        client.close()
    sender.post("/events/", json=make_event(event_id="after"))
    processor = Processor.from_settings(settings.model_copy(update={"redis_claim_idle": 0.001}))
    try:
        for _ in range(20):
            processor.run_once()
    finally:
        processor.close()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["after"]
    (error,) = fetch_all(admin, "/errors/")
    detail = admin.get(f"/errors/{error['id']}/").json()
    assert detail["reason"] == "processing_failed"
    assert detail["details"] == {"events": 1, "deliveries": settings.max_deliveries + 1}
    assert queue_depth(settings, engine) == 0


def test_the_attempt_is_committed_before_processing_and_given_back_on_a_clean_failure(
    sender, settings, engine
):
    """While a processor holds a batch, its attempt is already visible to others (a crash
    now still counts); a processor that fails cleanly gives the rows back uncounted."""
    if backend(settings) != "db":
        pytest.skip("the inbox's attempts column")
    sender.post("/events/", json=make_event())
    queue = open_queue(settings, engine)

    def seen() -> tuple[int, bool]:
        with inbox_database(settings, engine) as inbox_db, inbox_db.connect() as conn:
            row = conn.execute(sa.select(inbox.c.attempts, inbox.c.taken_at)).one()
        return row.attempts, row.taken_at is not None

    try:
        with pytest.raises(ConnectionError), queue.consume(10) as delivery:
            assert [m.deliveries for m in delivery.messages] == [1]
            assert seen() == (1, True)
            raise ConnectionError("the store went away")
        assert seen() == (0, False)
        with queue.consume(10) as delivery:
            assert [m.deliveries for m in delivery.messages] == [1]
        assert queue_depth(settings, engine) == 0
    finally:
        queue.close()


def test_a_queued_request_over_the_event_limit_is_refused_unread(
    sender, admin, settings, engine, creds
):
    """Queued before ingest had a limit: set aside whole rather than held in memory."""
    queue = open_queue(settings, engine)
    body = b"[" + b",".join(b"0" for _ in range(12)) + b"]"
    sender.post("/events/", json=make_event(event_id="first"))
    try:
        message = Message(
            creds.application_id, EVENTS, utcnow(), [f"id-{i}" for i in range(12)], body
        )
        asyncio.run(queue.publish([message]))
    finally:
        asyncio.run(queue.aclose())
    processor = Processor.from_settings(settings.model_copy(update={"max_events_per_request": 10}))
    try:
        processor.drain()
    finally:
        processor.close()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["first"]
    (error,) = fetch_all(admin, "/errors/")
    detail = admin.get(f"/errors/{error['id']}/").json()
    assert detail["reason"] == "processing_failed"
    assert detail["details"] == {"events": 12, "limit": 10}
    metrics = admin.get("/metrics").text
    assert "the_eye_events_errored_total 12" in metrics


def metric(text: str, name: str) -> int:
    found = re.search(rf"^{name} (\d+)$", text, re.MULTILINE)
    assert found, name
    return int(found.group(1))


def test_metrics_account_for_every_accepted_event_once(sender, processor, admin):
    """received = stored + errored + duplicates, invalid events retried with their event_id
    included; bodies refused at ingest count apart."""
    batches = [
        [make_event(event_id="ok-1"), make_event(event_id="bad-1", data={})],
        [make_event(event_id="ok-1"), make_event(event_id="bad-1", data={})],  # both again
        [make_event(event_id="ok-2"), make_event(data=[]), make_event()],  # server-made ids
        [make_event(event_id="bad-1", data={})],
    ]
    for batch in batches:
        assert sender.post("/events/", json=batch).status_code == 202
    assert sender.post("/events/", content=b"{not json").status_code == 400
    processor.drain()
    text = admin.get("/metrics").text
    received = metric(text, "the_eye_events_received_total")
    stored = metric(text, "the_eye_events_stored_total")
    errored = metric(text, "the_eye_events_errored_total")
    duplicates = metric(text, "the_eye_events_duplicates_total")
    assert received == 8
    assert (stored, errored, duplicates) == (3, 2, 3)
    assert received == stored + errored + duplicates
    assert metric(text, "the_eye_requests_rejected_total") == 1


def _die_on_poison(settings) -> None:
    """A processor process that is killed (as for memory) whenever it decodes the poison
    request (not once it sets it aside unread), and otherwise drains the queue."""
    processor = Processor.from_settings(settings)
    check = processor._prepare

    def prepare(messages):
        limit = processor.bounds.max_deliveries
        if any("poison" in m.event_ids and m.deliveries <= limit for m in messages):
            os._exit(9)
        return check(messages)

    processor._prepare = prepare  # type: ignore[method-assign]
    try:
        while processor.run_once(limit=100):
            pass
    finally:
        processor.close()


def test_a_crash_charges_the_culprit_alone_not_its_batch_mates(sender, admin, settings, engine):
    """Processor processes die with a batch holding one poison request: its batch-mates are
    stored, and only the poison request ends as `processing_failed`."""
    settings = settings.model_copy(update={"inbox_claim_idle": 0.001, "redis_claim_idle": 0.001})
    for name in ["good-1", "good-2", "poison", "good-3", "good-4"]:
        assert sender.post("/events/", json=make_event(event_id=name)).status_code == 202
    context = multiprocessing.get_context("spawn")
    exits = []
    for _ in range(2 * settings.max_deliveries):
        child = context.Process(target=_die_on_poison, args=(settings,))
        child.start()
        child.join(120)
        exits.append(child.exitcode)
        if child.exitcode == 0:
            break
    assert exits == [9] * settings.max_deliveries + [0]
    processor = Processor.from_settings(settings)
    try:
        processor.drain()
    finally:
        processor.close()
    stored = sorted(e["event_id"] for e in fetch_all(admin, "/events/"))
    assert stored == ["good-1", "good-2", "good-3", "good-4"]
    (error,) = fetch_all(admin, "/errors/")
    detail = admin.get(f"/errors/{error['id']}/").json()
    assert detail["reason"] == "processing_failed"
    assert detail["details"] == {"events": 1, "deliveries": settings.max_deliveries + 1}
    assert "poison" in detail["payload"]
    assert queue_depth(settings, engine) == 0
