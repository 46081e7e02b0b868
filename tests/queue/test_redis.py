"""The Redis Streams queue against a real Redis: bounds, acknowledgement, take-over, outages."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime

import msgspec
import pytest
import redis
import sqlalchemy as sa

from tests.helpers import PG_URL, REDIS_URL, count_rows, delete_stream, make_event
from tests.processes import free_port
from the_eye.config import Settings
from the_eye.processor.checker import EventChecker
from the_eye.processor.worker import Processor
from the_eye.queue import EVENTS, INVALID_BODY, Message, QueueUnavailable
from the_eye.queue.redis import RedisQueue, redis_errors_as_unavailable
from the_eye.store.credentials import create_application
from the_eye.store.tables import counters, errors, events, sessions

pytestmark = pytest.mark.skipif(not REDIS_URL, reason="THE_EYE_TEST_REDIS_URL is not set")

RECEIVED = datetime(2021, 1, 1, 9, 15, 27, 243860)


def stores() -> list:
    params = [pytest.param("sqlite", id="sqlite")]
    if PG_URL:
        params.append(pytest.param("postgresql", id="postgresql"))
    return params


@pytest.fixture(params=stores())
def settings(request, empty_store_url):
    """A migrated, empty store and a stream of this test's own, deleted afterwards."""
    settings = Settings(
        database_url=empty_store_url(request.param),
        queue_url=REDIS_URL,
        redis_stream=f"the-eye-test:{uuid.uuid4().hex}",
        redis_claim_idle=60,
        poll_interval=0.01,
        _env_file=None,
    )
    yield settings
    delete_stream(settings)


@pytest.fixture
def app_id(engine) -> int:
    with engine.begin() as conn:
        return create_application(conn, "web").id


def open_redis_queue(settings, engine, **changes) -> RedisQueue:
    return RedisQueue(settings.model_copy(update=changes), engine)


@pytest.fixture
def queue(settings, engine):
    queue = open_redis_queue(settings, engine)
    yield queue
    queue.close()


def message(app_id: int, body: bytes = b"[]", event_ids=("e-1",), kind=EVENTS) -> Message:
    return Message(app_id, kind, RECEIVED, list(event_ids), body)


def publish(queue: RedisQueue, *messages: Message) -> None:
    asyncio.run(queue.publish(list(messages)))


def pending(settings) -> int:
    client = redis.Redis.from_url(settings.queue_url)
    try:
        return client.xpending(settings.redis_stream, settings.redis_group)["pending"]
    finally:
        client.close()


def test_a_published_message_comes_back_whole(queue, app_id, settings):
    body = b'{"not": "utf-8 \xff"}'
    publish(queue, message(app_id, body, ["a", "b"]))
    assert queue.depth() == 1
    assert queue.oldest_received_at() == RECEIVED
    assert queue.received_total() == 2
    with queue.consume(10) as delivery:
        (got,) = delivery.messages
    assert (got.application_id, got.kind, got.received_at) == (app_id, EVENTS, RECEIVED)
    assert (got.event_ids, got.body) == (["a", "b"], body)
    assert got.delivery_key == f"{settings.redis_stream}/{got.queue_id}"


def test_entries_are_acknowledged_and_deleted_only_after_the_store_commits(queue, app_id, settings):
    publish(queue, message(app_id), message(app_id))
    with queue.consume(10) as delivery:
        assert len(delivery.messages) == 2
        assert pending(settings) == 2  # in flight until the block ends
        assert queue.depth() == 2
    assert pending(settings) == 0
    assert queue.depth() == 0
    assert queue.oldest_received_at() is None


def test_a_failed_batch_stays_queued_and_its_processor_takes_it_again_at_once(queue, app_id):
    publish(queue, message(app_id, event_ids=["first"]))
    with pytest.raises(RuntimeError), queue.consume(10) as delivery:
        assert delivery.messages
        raise RuntimeError("the store went away")
    assert queue.depth() == 1
    assert queue.has_messages()
    with queue.consume(10) as delivery:
        assert [m.event_ids for m in delivery.messages] == [["first"]]
    assert queue.depth() == 0


def test_another_processor_does_not_take_entries_in_flight_before_the_claim_time(
    queue, app_id, settings, engine
):
    other = open_redis_queue(settings, engine)
    try:
        publish(queue, message(app_id))
        with queue.consume(10) as delivery:
            assert delivery.messages
            with other.consume(10) as stolen:
                assert stolen.messages == []
    finally:
        other.close()


def test_entries_a_dead_processor_left_pending_are_taken_over(queue, app_id, settings, engine):
    publish(queue, message(app_id, event_ids=["orphan"]))
    dead = open_redis_queue(settings, engine)
    with pytest.raises(SystemExit), dead.consume(10) as delivery:
        assert delivery.messages
        raise SystemExit  # dies holding the entry; never acknowledges it
    survivor = open_redis_queue(settings, engine, redis_claim_idle=0.05)
    try:

        def take_over():
            with survivor.consume(10) as delivery:
                return [m.event_ids for m in delivery.messages]

        taken = []
        while not taken:  # the entry becomes claimable once idle for 50 ms
            taken = take_over()
        assert taken == [["orphan"]]
        assert queue.depth() == 0
    finally:
        survivor.close()
        dead.close()


def test_a_full_stream_refuses_a_request_whole(settings, engine, app_id):
    queue = open_redis_queue(settings, engine, redis_max_length=3)
    try:
        publish(queue, message(app_id), message(app_id))
        with pytest.raises(QueueUnavailable, match="full"):
            publish(queue, message(app_id), message(app_id))
        assert queue.depth() == 2
        assert queue.received_total() == 2
        publish(queue, message(app_id))
        with pytest.raises(QueueUnavailable):
            publish(queue, message(app_id))
        assert queue.depth() == 3
        with queue.consume(10):
            pass
        publish(queue, message(app_id))  # room again once processed
    finally:
        queue.close()


def test_requests_queued_before_any_processor_ran_are_processed(settings, engine, app_id):
    publisher = open_redis_queue(settings, engine)
    publish(publisher, message(app_id, event_ids=["early"]))
    publisher.close()
    consumer = open_redis_queue(settings, engine)
    try:
        with consumer.consume(10) as delivery:
            assert [m.event_ids for m in delivery.messages] == [["early"]]
    finally:
        consumer.close()


def test_a_lost_stream_and_group_are_recreated(queue, app_id, settings):
    publish(queue, message(app_id))
    with queue.consume(10):
        pass
    delete_stream(settings)  # as when Redis restarts without its data
    publish(queue, message(app_id, event_ids=["after"]))
    with queue.consume(10) as delivery:
        assert [m.event_ids for m in delivery.messages] == [["after"]]


def test_an_entry_not_written_by_the_eye_becomes_an_error_record(queue, settings, engine):
    client = redis.Redis.from_url(settings.queue_url)
    client.xadd(settings.redis_stream, {"something": "else"})
    client.close()
    processor = Processor(engine, queue, EventChecker())
    assert processor.drain() == 1
    with engine.connect() as conn:
        (row,) = conn.execute(sa.select(errors.c.reason, errors.c.payload)).all()
    assert row.reason == "invalid_json" and "something" in row.payload
    assert queue.depth() == 0


def test_a_message_delivered_again_after_the_store_commit_changes_nothing(settings, engine, app_id):
    """A processor dies between the store commit and XACK: the next one gets the message
    again, and neither events, sessions, errors nor the errored count change."""
    body = msgspec.json.encode(
        [
            make_event(session="again", event_id="ok-1"),
            make_event(session="again", event_id="bad-1", data={}),
            make_event(session="again", event_id="ok-2"),
        ]
    )
    first = Processor.from_settings(settings.model_copy(update={"redis_claim_idle": 0.05}))
    publish(first.queue, message(app_id, body, ["ok-1", "bad-1", "ok-2"]))
    publish(first.queue, message(app_id, b"{broken", [], kind=INVALID_BODY))

    def die(ids):
        raise SystemExit("killed after the commit")

    first.queue._acknowledge = die  # the crash point: committed, not acknowledged
    with pytest.raises(SystemExit):
        first.run_once()
    assert first.queue.depth() == 2
    first.close()

    second = Processor.from_settings(settings.model_copy(update={"redis_claim_idle": 0.05}))
    try:
        while second.queue.depth():
            second.run_once()
    finally:
        second.close()
    assert count_rows(engine, events) == 2
    assert count_rows(engine, errors) == 2
    with engine.connect() as conn:
        count = conn.execute(sa.select(sessions.c.event_count)).scalar_one()
        values = dict(conn.execute(sa.select(counters.c.name, counters.c.value)).all())
    assert count == 2
    assert values["stored"] == 2 and values["errored"] == 1 and values["rejected"] == 1


def test_an_unreachable_redis_makes_every_call_unavailable(settings, engine, app_id):
    queue = open_redis_queue(
        settings, engine, queue_url=f"redis://127.0.0.1:{free_port()}/0", redis_timeout=1
    )
    try:
        with pytest.raises(QueueUnavailable):
            publish(queue, message(app_id))
        for call in (queue.ping, queue.depth, queue.oldest_received_at, queue.received_total):
            with pytest.raises(QueueUnavailable):
                call()
        with pytest.raises(QueueUnavailable), queue.consume(10):
            pass
    finally:
        queue.close()


def test_a_refused_redis_connection_becomes_queue_unavailable_after_its_hook():
    client = redis.Redis(port=free_port(), socket_connect_timeout=1)
    hooked = []
    try:
        with (
            pytest.raises(QueueUnavailable, match=r"^Redis: ") as raised,
            redis_errors_as_unavailable(lambda: hooked.append(True)),
        ):
            client.ping()
    finally:
        client.close()
    assert isinstance(raised.value.__cause__, redis.ConnectionError)
    assert hooked == [True]


def test_concurrent_requests_share_round_trips_and_each_is_kept_or_refused_whole(
    settings, engine, app_id
):
    """Requests published at once go out together; the bound still applies per request."""
    queue = open_redis_queue(settings, engine, redis_max_length=7)

    async def many() -> list:
        requests = [[message(app_id, event_ids=[f"r{r}-{i}"]) for i in range(2)] for r in range(5)]
        return await asyncio.gather(
            *(queue.publish(request) for request in requests), return_exceptions=True
        )

    try:
        outcomes = asyncio.run(many())
        kept = [o for o in outcomes if o is None]
        refused = [o for o in outcomes if isinstance(o, QueueUnavailable)]
        assert (len(kept), len(refused)) == (3, 2)  # 3 requests of 2 fit under 7, whole
        assert queue.depth() == 6
        assert queue.received_total() == 6
        with queue.consume(10) as delivery:
            ids = sorted(i for m in delivery.messages for i in m.event_ids)
        assert ids == sorted(f"r{r}-{i}" for r in range(3) for i in range(2))
    finally:
        queue.close()


def test_delivery_counts_are_those_of_the_entries_taken_not_of_others_between(
    queue, app_id, settings
):
    """Entries taken together may have others of this consumer pending between them: each
    taken entry gets its own count, none defaults to a first delivery."""
    publish(queue, *(message(app_id, event_ids=[f"e-{i}"]) for i in range(3)))
    client = redis.Redis.from_url(settings.queue_url)
    try:
        client.xgroup_create(settings.redis_stream, settings.redis_group, id="0")
        reply = client.xreadgroup(
            settings.redis_group, queue.consumer, {settings.redis_stream: ">"}
        )
        first, _between, last = [eid.decode() for eid, _ in reply[0][1]]
        client.xclaim(
            settings.redis_stream, settings.redis_group, queue.consumer, 0, [last], retrycount=5
        )
    finally:
        client.close()
    assert queue._delivery_counts([first, last]) == {first: 1, last: 5}
