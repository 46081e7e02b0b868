"""From 202 to stored: every accepted event ends as exactly one event or one error."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import msgspec
import sqlalchemy as sa

from tests.helpers import client_as, count_rows, fetch_all, make_event, queue_depth
from the_eye.processor.worker import Processor
from the_eye.queue import EVENTS, Message
from the_eye.store.tables import errors, events, sessions
from the_eye.timestamps import utcnow


def test_each_reason_becomes_an_error_and_good_events_of_the_batch_are_stored(
    sender, processor, admin
):
    batch = [
        make_event(event_id="good-1"),
        "not an object",
        make_event(event_id="too-big", data={"blob": "x" * 70_000}),
        make_event(event_id="bad-data", data=[]),
        make_event(event_id="bad-time", timestamp="someday"),
        make_event(event_id="future", timestamp="2999-01-01T00:00:00Z"),
        make_event(event_id="good-2", session_id="s-2"),
    ]
    assert sender.post("/events/", json=batch).status_code == 202
    processor.drain()
    stored = fetch_all(admin, "/events/", ordering="timestamp")
    assert sorted(e["event_id"] for e in stored) == ["good-1", "good-2"]
    reasons = {e["event_id"]: e["reason"] for e in fetch_all(admin, "/errors/")}
    assert sorted(reasons.values()) == sorted(
        [
            "invalid_event",
            "event_too_large",
            "invalid_data",
            "invalid_timestamp",
            "future_timestamp",
        ]
    )
    assert reasons["future"] == "future_timestamp"
    assert reasons["bad-data"] == "invalid_data"
    one = fetch_all(admin, "/errors/", reason="invalid_timestamp")[0]
    detail = admin.get(f"/errors/{one['id']}/").json()
    assert "someday" in detail["payload"]
    assert detail["details"] == {"field": "timestamp"}


def test_every_accepted_event_ends_as_exactly_one_event_or_error(
    server, creds, processor, settings, engine
):
    """5,000 mixed events from 8 threads, processed while they arrive."""
    stop = threading.Event()
    background = threading.Thread(target=processor.run, args=(stop, 0.01))
    background.start()
    rng = random.Random(7)

    def post_some(worker: int) -> int:
        accepted = 0
        with client_as(server, creds.write_key, timeout=60) as client:
            for request in range(25):
                batch = []
                for i in range(25):
                    kind = rng.random()
                    if kind < 0.7:
                        batch.append(make_event(session=f"s-{rng.randrange(50)}"))
                    elif kind < 0.8:
                        batch.append(make_event(data={}))
                    elif kind < 0.9:
                        batch.append(make_event(timestamp="2999-01-01T00:00:00"))
                    else:
                        batch.append([worker, request, i])
                response = client.post("/events/", json=batch)
                assert response.status_code == 202, response.text
                accepted += response.json()["accepted"]
        return accepted

    with ThreadPoolExecutor(8) as pool:
        accepted = sum(pool.map(post_some, range(8)))
    stop.set()
    background.join()
    processor.drain()
    assert accepted == 5000
    assert count_rows(engine, events) + count_rows(engine, errors) == 5000
    assert queue_depth(settings, engine) == 0
    with engine.connect() as conn:
        counted = conn.execute(sa.select(sa.func.sum(sessions.c.event_count))).scalar_one()
    assert counted == count_rows(engine, events)


def test_same_event_id_three_times_is_stored_once(sender, processor, admin):
    for _ in range(3):
        sender.post("/events/", json=make_event(session="once", event_id="k-1"))
    sender.post("/events/", json=[make_event(session="once", event_id="k-1")] * 2)
    processor.drain()
    assert len(fetch_all(admin, "/events/", session="once")) == 1
    assert admin.get("/sessions/once/").json()["event_count"] == 1
    metrics = admin.get("/metrics").text
    assert "the_eye_events_duplicates_total 4" in metrics


def test_same_event_id_from_two_applications_are_two_events(sender, processor, admin, engine):
    other = admin.post("/applications/", json={"name": "mobile"}).json()["write_key"]
    sender.post("/events/", json=make_event(event_id="shared"))
    sender.post(
        "/events/", json=make_event(event_id="shared"), headers={"Authorization": f"Bearer {other}"}
    )
    processor.drain()
    assert {e["application"] for e in fetch_all(admin, "/events/")} == {"web", "mobile"}


def test_concurrent_first_events_of_one_session_make_one_row(server, creds, settings, admin):
    """20 threads post to one new session while two processors run."""
    from the_eye.processor.worker import Processor

    stop = threading.Event()
    processors = [Processor.from_settings(settings) for _ in range(2)]
    threads = [threading.Thread(target=p.run, args=(stop, 0.005)) for p in processors]
    for t in threads:
        t.start()

    def post(i: int) -> None:
        with client_as(server, creds.write_key) as client:
            for j in range(10):
                event = make_event(
                    session="shared-session", timestamp=f"2021-01-01 09:{i:02d}:{j:02d}"
                )
                assert client.post("/events/", json=event).status_code == 202

    with ThreadPoolExecutor(20) as pool:
        list(pool.map(post, range(20)))
    stop.set()
    for t in threads:
        t.join()
    processors[0].drain()
    for p in processors:
        p.close()
    session = admin.get("/sessions/shared-session/").json()
    assert session["event_count"] == 200
    assert session["first_seen"] == "2021-01-01T09:00:00.000000Z"
    assert session["last_seen"] == "2021-01-01T09:19:09.000000Z"
    assert len(fetch_all(admin, "/sessions/")) == 1


def test_a_poison_message_becomes_an_error_and_does_not_block_the_queue(
    sender, processor, admin, creds
):
    import asyncio

    # A message whose ids do not match its events cannot come from the API; it stands for
    # any message that breaks processing.
    poison = Message(creds.application_id, EVENTS, utcnow(), ["a", "b"], b"[1, 2, 3")
    asyncio.run(processor.queue.publish([poison]))
    sender.post("/events/", json=make_event(event_id="after"))
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["after"]
    assert [e["reason"] for e in fetch_all(admin, "/errors/")] == ["invalid_json"]


class BreaksOnOneRequest(Processor):
    """Checks like any processor, but turns the request whose body says BREAK into a row the
    store refuses (an event without a session), as a bug or an unforeseen input would."""

    def _prepare(self, messages):
        rows = super()._prepare(messages)
        if rows is not None and any(b"BREAK" in m.body for m in messages):
            rows.events.append({**rows.events[0], "session_id": None, "event_id": "broken"})
        return rows


def test_a_request_the_store_refuses_is_isolated_as_an_error(sender, admin, settings, engine):
    """The batch around it is stored; it is kept whole, and the queue moves on."""
    sender.post("/events/", json=make_event(event_id="before"))
    poison = msgspec.json.encode([make_event(event_id="doomed", data={"note": "BREAK"})])
    assert sender.post("/events/", content=poison).status_code == 202
    sender.post("/events/", json=make_event(event_id="after"))
    processor = BreaksOnOneRequest.from_settings(settings)
    try:
        processor.drain()
    finally:
        processor.close()
    assert sorted(e["event_id"] for e in fetch_all(admin, "/events/")) == ["after", "before"]
    (error,) = fetch_all(admin, "/errors/")
    assert error["reason"] == "processing_failed"
    assert admin.get(f"/errors/{error['id']}/").json()["payload"] == poison.decode()
    assert queue_depth(settings, engine) == 0


def test_integers_beyond_64_bits_are_invalid_data_on_every_store(sender, processor, admin):
    big = b'{"session_id": "p", "category": "c", "name": "n", "timestamp": "2021-01-01",'
    big += b' "event_id": "big", "data": {"ok": [1, -9223372036854775808, 9223372036854775807],'
    big += b' "n": {"deep": [0, 1180591620717411303424]}}}'
    fits = make_event(event_id="fits", data={"n": 2**63 - 1, "m": -(2**63), "id": "1" * 40})
    assert sender.post("/events/", content=b"[" + big + b"," + msgspec.json.encode(fits) + b"]")
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["fits"]
    (error,) = fetch_all(admin, "/errors/")
    detail = admin.get(f"/errors/{error['id']}/").json()
    assert (detail["reason"], detail["event_id"]) == ("invalid_data", "big")
    assert detail["details"] == {"field": "data", "path": "$.data.n.deep[1]"}
    assert "1180591620717411303424" in detail["payload"]


def test_a_body_with_a_nul_byte_becomes_an_error_and_does_not_block_the_queue(
    sender, processor, admin, settings, engine
):
    assert sender.post("/events/", content=b"\x00{").status_code == 400
    sender.post("/events/", json=make_event(event_id="after"))
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/events/")] == ["after"]
    (error,) = fetch_all(admin, "/errors/")
    assert error["reason"] == "invalid_json"
    assert queue_depth(settings, engine) == 0


def test_nul_characters_are_rejected_on_every_backend(sender, processor, admin):
    sender.post("/events/", json=[make_event(data={"q": "a\x00b"}), make_event(name="x\x00")])
    processor.drain()
    assert sorted(e["reason"] for e in fetch_all(admin, "/errors/")) == [
        "invalid_data",
        "invalid_event",
    ]


def test_batches_are_sized_by_events_not_requests(sender, settings):
    """A processor learns the size of requests and takes about `batch_events` at a time."""
    from the_eye.processor.worker import Processor

    for r in range(30):
        batch = [make_event(event_id=f"{r}-{i}") for i in range(100)]
        assert sender.post("/events/", json=batch).status_code == 202
    processor = Processor.from_settings(settings.model_copy(update={"batch_events": 1000}))
    try:
        taken = [processor.run_once() for _ in range(4)]
    finally:
        processor.close()
    assert taken == [1, 10, 10, 9]


def test_an_invalid_event_retried_with_its_event_id_is_one_error(sender, processor, admin):
    for _ in range(3):
        sender.post("/events/", json=make_event(event_id="bad-1", data={}))
    processor.drain()
    assert [e["event_id"] for e in fetch_all(admin, "/errors/")] == ["bad-1"]
    assert "the_eye_events_errored_total 1" in admin.get("/metrics").text


def test_an_oversized_event_keeps_a_bounded_prefix_and_its_size(sender, admin, settings, creds):
    limits = {"max_body_bytes": 8 * 1024 * 1024, "max_event_bytes": 1000}
    limits["max_error_payload_bytes"] = 4096
    processor = Processor.from_settings(settings.model_copy(update=limits))
    blob = "x" * 3_000_000
    assert sender.post("/events/", json=make_event(event_id="huge", data={"b": blob})).is_success
    try:
        processor.drain()
    finally:
        processor.close()
    (error,) = fetch_all(admin, "/errors/")
    detail = admin.get(f"/errors/{error['id']}/").json()
    assert detail["reason"] == "event_too_large"
    assert len(detail["payload"]) == 4096
    assert detail["payload"].startswith("{")
    size = detail["details"]["size"]
    assert size > 3_000_000 and detail["details"]["payload_bytes"] == size


def test_an_unreadable_body_keeps_a_bounded_prefix_and_its_whole_size(
    sender, admin, processor, settings
):
    body = b'[{"note": "' + "é".encode() * 60_000 + b'"'  # not JSON: the array never closes
    answer = sender.post("/events/", content=body)
    assert answer.status_code == 400 and answer.json()["error"]["code"] == "invalid_json"
    processor.drain()
    (error,) = fetch_all(admin, "/errors/")
    detail = admin.get(f"/errors/{error['id']}/").json()
    assert detail["reason"] == "invalid_json"
    assert detail["details"]["payload_bytes"] == len(body)
    kept = detail["payload"].encode()
    assert len(kept) <= settings.max_error_payload_bytes and body.startswith(kept)
