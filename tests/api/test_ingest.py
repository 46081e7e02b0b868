"""`POST /events/`: body shapes, credentials, limits, and that the answer means durably queued."""

from __future__ import annotations

import base64
import gzip
import re
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import httpx
import msgspec
import pytest
from sqlalchemy.engine import Engine
from starlette.applications import Starlette

from tests.helpers import (
    REDIS_URL,
    LiveServer,
    client_as,
    delete_stream,
    fetch_all,
    inbox_database,
    make_event,
    queue_depth,
)
from tests.processes import free_port
from the_eye.api.auth import CachedLookup
from the_eye.api.routes.ingest import Ingest
from the_eye.api.state import app_state
from the_eye.config import Settings
from the_eye.store.credentials import application_for_key, create_application
from the_eye.store.engine import create_engine


def store_with_application(settings: Settings, name: str) -> tuple[Engine, str]:
    """An engine on the settings' (migrated) store, and the write key of a new application."""
    engine = create_engine(settings)
    with engine.begin() as conn:
        return engine, create_application(conn, name).write_key


def retry_after(response: httpx.Response) -> int:
    """The seconds a 503 asks to wait, checked to be the same in its header and message."""
    assert response.status_code == 503
    error = response.json()["error"]
    assert error["code"] == "unavailable"
    stated = re.search(r"retry in (\d+) s\.", error["message"])
    assert stated, error["message"]
    assert response.headers["Retry-After"] == stated.group(1)
    return int(stated.group(1))


def test_single_event_is_queued_and_answered_with_its_id(sender, settings, engine):
    response = sender.post("/events/", json=make_event())
    assert response.status_code == 202
    body = response.json()
    assert body["accepted"] == 1 and len(body["event_ids"]) == 1
    assert queue_depth(settings, engine) == 1  # durable before the answer


def test_array_and_batch_bodies(sender):
    events = [make_event(event_id=f"e{i}") for i in range(3)]
    array = sender.post("/events/", json=events)
    assert array.json() == {"accepted": 3, "event_ids": ["e0", "e1", "e2"]}
    batch = sender.post("/events", json={"batch": events[:2], "sent_at": "2021-01-01T09:16:00Z"})
    assert batch.status_code == 202
    assert batch.json()["event_ids"] == ["e0", "e1"]


def test_event_ids_keep_the_order_sent_and_fill_in_missing_ones(sender):
    events = [make_event(event_id="mine"), make_event(), make_event(event_id=7)]
    ids = sender.post("/events/", json=events).json()["event_ids"]
    assert ids[0] == "mine"
    assert ids[1] != ids[2] and "mine" not in ids[1:]


def test_write_key_in_body_and_basic_auth(server, creds, processor, admin):
    with httpx.Client(base_url=server.url) as anonymous:
        in_body = anonymous.post(
            "/events/", json={"writeKey": creds.write_key, "batch": [make_event()]}
        )
        assert in_body.status_code == 202
        basic = base64.b64encode(f"{creds.write_key}:".encode()).decode()
        as_basic = anonymous.post(
            "/events/", json=make_event(), headers={"Authorization": f"Basic {basic}"}
        )
        assert as_basic.status_code == 202
    processor.drain()
    events = fetch_all(admin, "/events/")
    assert {e["application"] for e in events} == {"web"}
    assert len(events) == 2


def test_gzip_and_text_plain_bodies(sender, processor, admin):
    body = gzip.compress(msgspec.json.encode([make_event(event_id="gz")]))
    gz = sender.post(
        "/events/",
        content=body,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert gz.status_code == 202 and gz.json()["event_ids"] == ["gz"]
    beacon = sender.post(
        "/events/",
        content=msgspec.json.encode(make_event(event_id="beacon")),
        headers={"Content-Type": "text/plain;charset=UTF-8"},
    )
    assert beacon.status_code == 202
    processor.drain()
    assert {e["event_id"] for e in fetch_all(admin, "/events/")} == {"gz", "beacon"}


@pytest.mark.parametrize(
    "body", [b"{not json", b'"a string"', b"42", b"", b"[" * 5000 + b"]" * 5000]
)
def test_invalid_json_is_400_and_kept_as_an_error(sender, processor, admin, body):
    response = sender.post("/events/", content=body)
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"
    processor.drain()
    errors = fetch_all(admin, "/errors/")
    assert [e["reason"] for e in errors] == ["invalid_json"]
    detail = admin.get(f"/errors/{errors[0]['id']}/").json()
    assert detail["payload"] == body.decode()
    assert detail["application"] == "web"


def test_corrupt_gzip_is_400(sender):
    response = sender.post("/events/", content=b"not gzip", headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "invalid_json"


def test_missing_unknown_and_revoked_keys_are_401(server, sender, admin, creds):
    with httpx.Client(base_url=server.url) as anonymous:
        missing = anonymous.post("/events/", json=make_event())
        unknown = anonymous.post(
            "/events/", json=make_event(), headers={"Authorization": "Bearer eye_wk_nope"}
        )
        bad_in_body = anonymous.post("/events/", json={"writeKey": "nope", "batch": []})
    for response in (missing, unknown, bad_in_body):
        assert response.status_code == 401
        assert response.json()["error"]["code"] == "unauthorized"
    assert sender.post("/events/", json=make_event()).status_code == 202
    assert admin.delete(f"/applications/{creds.application_id}/").status_code == 204
    revoked = sender.post("/events/", json=make_event())
    assert revoked.status_code == 401


def test_write_key_on_a_read_endpoint_is_403(sender):
    response = sender.get("/events/")
    assert response.status_code == 403
    assert response.json()["error"]["code"] == "forbidden"


def test_body_over_the_limit_is_413(server, creds, settings):
    limit = settings.max_body_bytes
    with client_as(server, creds.write_key) as client:
        big = client.post("/events/", content=b"[" + b" " * limit + b"]")
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "payload_too_large"
        # Measured after decoding: a small gzip body that inflates past the limit.
        bomb = gzip.compress(b"[" + b" " * (limit + 10) + b"]")
        assert len(bomb) < limit
        inflated = client.post("/events/", content=bomb, headers={"Content-Encoding": "gzip"})
        assert inflated.status_code == 413


def test_locked_queue_answers_503_with_retry_after_and_accepts_nothing(empty_store_url):
    """A store that cannot take the write (here: another connection holds SQLite's lock)."""
    settings = Settings(
        database_url=empty_store_url("sqlite"), sqlite_busy_timeout_ms=100, _env_file=None
    )
    engine, key = store_with_application(settings, "locked")
    with LiveServer(settings) as live, httpx.Client(base_url=live.url) as client:
        headers = {"Authorization": f"Bearer {key}"}
        assert client.post("/events/", json=make_event(), headers=headers).status_code == 202
        with inbox_database(settings, engine) as inbox_db:
            blocker = inbox_db.raw_connection()
            blocker.execute("BEGIN IMMEDIATE")
            try:
                response = client.post("/events/", json=make_event(), headers=headers)
            finally:
                blocker.rollback()
                blocker.close()
        assert response.status_code == 503
        assert response.headers["Retry-After"]
        assert response.json()["error"]["code"] == "unavailable"
        assert retry_after(response) == 1
        assert client.post("/events/", json=make_event(), headers=headers).status_code == 202
    assert queue_depth(settings, engine) == 2
    engine.dispose()


@pytest.mark.skipif(not REDIS_URL, reason="THE_EYE_TEST_REDIS_URL is not set")
@pytest.mark.parametrize("trouble", ["full", "unreachable"])
def test_a_redis_queue_that_cannot_take_events_answers_503_saying_when_to_retry(
    empty_store_url, trouble
):
    settings = Settings(
        database_url=empty_store_url("sqlite"),
        queue_url=REDIS_URL if trouble == "full" else f"redis://127.0.0.1:{free_port()}/0",
        redis_stream=f"the-eye-test:{uuid.uuid4().hex}",
        redis_max_length=1,
        redis_timeout=1,
        _env_file=None,
    )
    engine, key = store_with_application(settings, "redis")
    engine.dispose()
    try:
        with LiveServer(settings) as live, httpx.Client(base_url=live.url) as client:
            headers = {"Authorization": f"Bearer {key}"}
            if trouble == "full":
                assert (
                    client.post("/events/", json=make_event(), headers=headers).status_code == 202
                )
            response = client.post("/events/", json=make_event(), headers=headers)
            assert retry_after(response) == 1
            message = response.json()["error"]["message"]
            assert "127.0.0.1" not in message and "Redis" not in message, message
            assert ("full" in message) == (trouble == "full")
            ready = client.get("/ready/")
            # A full queue is reachable: what is wrong is that no processor drains it.
            assert ready.status_code == 503
            code = "processor_down" if trouble == "full" else "unavailable"
            assert ready.json()["error"]["code"] == code
            if trouble == "unreachable":
                assert retry_after(ready) == 5
    finally:
        if trouble == "full":
            delete_stream(settings)


def test_a_store_that_fails_the_write_key_lookup_answers_503_saying_when_to_retry(
    empty_store_url,
):
    settings = Settings(database_url=empty_store_url("sqlite"), _env_file=None)
    engine, key = store_with_application(settings, "lost")
    with LiveServer(settings) as live, httpx.Client(base_url=live.url) as client:
        with engine.begin() as conn:  # the lookup now fails inside the store
            conn.exec_driver_sql("ALTER TABLE applications RENAME TO applications_away")
        headers = {"Authorization": f"Bearer {key}"}
        response = client.post("/events/", json=make_event(), headers=headers)
        assert retry_after(response) == 5
    assert queue_depth(settings, engine) == 0
    engine.dispose()


def test_cors_answers_for_configured_origins(empty_store_url):
    settings = Settings(
        database_url=empty_store_url("sqlite"),
        cors_origins="https://shop.example, https://blog.example",
        _env_file=None,
    )
    engine, key = store_with_application(settings, "site")
    engine.dispose()
    with LiveServer(settings) as live, httpx.Client(base_url=live.url) as client:
        preflight = client.options(
            "/events/",
            headers={
                "Origin": "https://shop.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization, content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == "https://shop.example"
        allowed = client.post(
            "/events/",
            json=make_event(),
            headers={"Authorization": f"Bearer {key}", "Origin": "https://blog.example"},
        )
        assert allowed.headers["access-control-allow-origin"] == "https://blog.example"
        other = client.post(
            "/events/",
            json=make_event(),
            headers={"Authorization": f"Bearer {key}", "Origin": "https://evil.example"},
        )
        assert other.status_code == 202
        assert "access-control-allow-origin" not in other.headers


def test_a_client_that_disconnects_mid_body_leaves_nothing_behind(server, creds, settings, engine):
    """Half a body is not a request: no error record, nothing queued."""
    import socket
    import time
    from urllib.parse import urlsplit

    address = urlsplit(server.url)
    with socket.create_connection((address.hostname, address.port)) as sock:
        sock.sendall(
            b"POST /events/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"Authorization: Bearer {creds.write_key}\r\n".encode()
            + b"Content-Length: 1000\r\n\r\n"
            + b'[{"session_id": "s", "cat'
        )
        time.sleep(0.2)
    time.sleep(0.3)
    assert queue_depth(settings, engine) == 0


def zeros_bomb(elements: int) -> bytes:
    """A few kilobytes of gzip that inflate to a JSON array of `elements` zeros."""
    return gzip.compress(b"[" + b"0," * (elements - 1) + b"0]", 9)


def test_a_gzip_bomb_without_a_key_is_refused_before_it_is_read(server):
    """Millions of elements, no key: a 401 that never decompresses or parses the body, while
    `/health/` keeps answering at once."""
    bomb = zeros_bomb(2_500_000)  # 5 MB inflated, under THE_EYE_MAX_BODY_BYTES
    assert len(bomb) < 10_000
    headers = {"Content-Encoding": "gzip", "Content-Type": "application/json"}
    health_seconds: list[float] = []
    with (
        httpx.Client(base_url=server.url, timeout=30) as attacker,
        httpx.Client(base_url=server.url, timeout=30) as monitor,
    ):

        def attack() -> list[httpx.Response]:
            return [attacker.post("/events/", content=bomb, headers=headers) for _ in range(10)]

        with ThreadPoolExecutor(1) as pool:
            answers = pool.submit(attack)
            while not answers.done():
                started = time.perf_counter()
                assert monitor.get("/health/").status_code == 200
                health_seconds.append(time.perf_counter() - started)
            refused = answers.result()
    for response in refused:
        assert response.status_code == 401
        error = response.json()["error"]
        assert error["code"] == "unauthorized"
        assert "in the header" in error["message"]
    print(f"/health/ during the bombs: max {max(health_seconds) * 1000:.1f} ms")
    assert max(health_seconds) < 0.25  # parsing one bomb held the event loop for 0.5 s


def test_a_large_body_with_its_key_inside_is_told_to_send_the_key_in_the_header(
    server, creds, settings
):
    events = [make_event(event_id=f"e{i}") for i in range(600)]
    body = msgspec.json.encode({"writeKey": creds.write_key, "batch": events})
    assert len(body) > settings.body_key_max_bytes
    with httpx.Client(base_url=server.url) as anonymous:
        response = anonymous.post("/events/", content=body)
        small = anonymous.post("/events/", json={"writeKey": creds.write_key, "batch": events[:1]})
    assert response.status_code == 401
    assert "must send its write key in the header" in response.json()["error"]["message"]
    assert small.status_code == 202


def test_too_many_events_in_one_request_is_413_and_queues_nothing(sender, settings, engine):
    limit = settings.max_events_per_request
    over = sender.post("/events/", json=[0] * (limit + 1))
    assert over.status_code == 413
    assert over.json()["error"]["code"] == "too_many_events"
    segment = sender.post("/v1/batch", json={"batch": [{}] * (limit + 1)})
    assert segment.status_code == 413
    assert segment.json()["error"]["code"] == "too_many_events"
    assert queue_depth(settings, engine) == 0
    at_limit = sender.post("/events/", json=[make_event() for _ in range(limit)])
    assert at_limit.status_code == 202 and at_limit.json()["accepted"] == limit


def test_large_bodies_are_parsed_off_the_event_loop(sender):
    """A body past the inline size (here gzip inflating past it) is read whole and right."""
    events = [make_event(event_id=f"big-{i}", data={"pad": "x" * 200}) for i in range(400)]
    raw = msgspec.json.encode(events)
    assert len(raw) > 64 * 1024
    response = sender.post(
        "/events/", content=gzip.compress(raw), headers={"Content-Encoding": "gzip"}
    )
    assert response.status_code == 202
    assert response.json()["event_ids"] == [f"big-{i}" for i in range(400)]


def test_server_made_event_ids_are_random_after_the_time_they_were_made(sender):
    first = sender.post("/events/", json=[make_event(), make_event()]).json()["event_ids"]
    time.sleep(0.002)
    second = sender.post("/events/", json=make_event()).json()["event_ids"]
    ids = first + second
    assert all(re.fullmatch(r"[0-9a-f]{32}", event_id) for event_id in ids), ids
    assert len(set(ids)) == 3
    # The time in ms first, so that ids made later sort later...
    made = [int(event_id[:12], 16) / 1000 for event_id in ids]
    assert all(abs(at - time.time()) < 60 for at in made), made
    assert max(first) < second[0]
    # ...then 80 random bits each: no shared prefix a counter would leave.
    assert len({event_id[12:20] for event_id in ids}) == 3


def next_ids_a_counter_would_make(event_id: str, count: int) -> list[str]:
    """The ids a server of `<per-process prefix><hex counter>-<index>` would make next, and
    the id read as one hex number plus one, for a server of any other counter."""
    guesses = []
    counter = re.fullmatch(r"([0-9a-f]{16})([0-9a-f]+)-(\d+)", event_id)
    if counter:
        prefix, serial = counter.group(1), int(counter.group(2), 16)
        guesses += [f"{prefix}{serial + n:x}-0" for n in range(1, count + 1)]
    if re.fullmatch(r"[0-9a-f]+", event_id):
        guesses += [f"{int(event_id, 16) + n:0{len(event_id)}x}" for n in range(1, count + 1)]
    return guesses


def test_a_key_holder_cannot_take_the_ids_the_server_makes_next(sender, processor, reader):
    seen = sender.post("/events/", json=make_event()).json()["event_ids"][0]
    squatted = [
        make_event(event_id=guess, name="squatter")
        for guess in next_ids_a_counter_would_make(seen, 30)
    ]
    assert sender.post("/events/", json=squatted).status_code == 202
    honest = [sender.post("/events/", json=make_event(name="honest")) for _ in range(5)]
    honest_ids = {r.json()["event_ids"][0] for r in honest}
    processor.drain()
    stored = {e["event_id"]: e["name"] for e in fetch_all(reader, "/events/")}
    assert all(stored.get(event_id) == "honest" for event_id in honest_ids), stored


def test_bytes_after_a_gzip_body_are_refused(sender):
    body = gzip.compress(msgspec.json.encode(make_event())) + b"trailing"
    response = sender.post("/events/", content=body, headers={"Content-Encoding": "gzip"})
    assert response.status_code == 400
    assert "after its gzip stream" in response.json()["error"]["message"]


def test_failed_authentications_from_one_address_turn_to_429(empty_store_url):
    settings = Settings(
        database_url=empty_store_url("sqlite"),
        auth_failures_per_address=5,
        _env_file=None,
    )
    engine, key = store_with_application(settings, "web")
    engine.dispose()
    with LiveServer(settings) as live, httpx.Client(base_url=live.url) as client:
        good = {"Authorization": f"Bearer {key}"}
        assert client.post("/events/", json=make_event(), headers=good).status_code == 202
        answers = [
            client.post(
                "/events/",
                json=make_event(),
                headers={"Authorization": f"Bearer eye_wk_guess{i}"},
            ).status_code
            for i in range(5)
        ]
        assert answers == [401] * 5
        limited = client.post(
            "/events/", json=make_event(), headers={"Authorization": "Bearer eye_wk_guess"}
        )
        anonymous = client.post("/events/", json={"batch": []})
        token = client.get("/events/", headers={"Authorization": "Bearer eye_tk_guess"})
        for response in (limited, anonymous, token):
            assert response.status_code == 429
            assert response.json()["error"]["code"] == "rate_limited"
            seconds = int(response.headers["Retry-After"])
            assert 1 <= seconds <= 60
            assert f"retry in {seconds} s" in response.json()["error"]["message"]
        # A key this process has seen valid is still taken from that address.
        assert client.post("/events/", json=make_event(), headers=good).status_code == 202


def test_a_write_key_over_its_rate_is_429(empty_store_url):
    settings = Settings(
        database_url=empty_store_url("sqlite"),
        rate_limit_per_key=0.5,
        rate_limit_burst=3,
        _env_file=None,
    )
    engine, key = store_with_application(settings, "web")
    with LiveServer(settings) as live, httpx.Client(base_url=live.url) as client:
        headers = {"Authorization": f"Bearer {key}"}
        answers = [client.post("/events/", json=make_event(), headers=headers) for _ in range(4)]
    assert [r.status_code for r in answers] == [202, 202, 202, 429]
    assert answers[3].json()["error"]["code"] == "rate_limited"
    assert answers[3].headers["Retry-After"] == "2"
    assert queue_depth(settings, engine) == 3
    engine.dispose()


def test_unknown_write_keys_are_looked_up_once_while_cached(engine, creds):
    fetched: list[str] = []

    def counted(conn, key):
        fetched.append(key)
        return application_for_key(conn, key)

    keys = CachedLookup(engine, 60, counted)
    assert [keys.lookup("eye_wk_nope") for _ in range(3)] == [None, None, None]
    assert keys.lookup(creds.write_key) == keys.lookup(creds.write_key) == creds.application_id
    assert fetched == ["eye_wk_nope", creds.write_key]
    bounded = CachedLookup(engine, 60, counted, max_keys=100)
    for i in range(1000):
        bounded.lookup(f"eye_wk_random{i}")
    assert len(bounded._misses) <= 100


def _raw_post(url: str, key: str, declared: int, body: bytes) -> socket.socket:
    """A connection that sent a `POST /events/` declaring `declared` body bytes, and `body`."""
    address = urlsplit(url)
    sock = socket.create_connection((address.hostname, address.port), timeout=10)
    sock.sendall(
        b"POST /events/ HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        + f"Authorization: Bearer {key}\r\nContent-Length: {declared}\r\n\r\n".encode()
        + body
    )
    return sock


def _answer(sock: socket.socket) -> tuple[int, bytes]:
    """The status and body of the next answer on a connection."""
    data = b""
    while True:
        head, blank, body = data.partition(b"\r\n\r\n")
        if blank:
            length = re.search(rb"content-length: *(\d+)", head.lower())
            if length and len(body) >= int(length.group(1)):
                return int(head.split(b" ", 2)[1]), body[: int(length.group(1))]
        chunk = sock.recv(65536)
        assert chunk, f"the connection closed after {data!r}"
        data += chunk


def _ingest_of(live: LiveServer) -> Ingest:
    app = live.server.config.app
    while not isinstance(app, Starlette):
        app = app.app
    return app_state(app).ingest


def test_request_bodies_in_flight_are_bounded_and_released(empty_store_url):
    """Bodies still arriving hold memory: past `THE_EYE_MAX_BODY_BYTES_IN_FLIGHT` declared
    bytes, a new request answers 503 at once, and the slow one still completes."""
    settings = Settings(
        database_url=empty_store_url("sqlite"), max_body_bytes_in_flight=100_000, _env_file=None
    )
    engine, key = store_with_application(settings, "bodies")
    event = msgspec.json.encode([make_event(event_id="slow")])
    declared = 60_000
    body = event + b" " * (declared - len(event))
    with LiveServer(settings) as live:
        body_bytes = _ingest_of(live).body_bytes
        with _raw_post(live.url, key, declared, body[:-10]) as slow:
            deadline = time.monotonic() + 10
            while body_bytes.held != declared and time.monotonic() < deadline:
                time.sleep(0.01)
            assert body_bytes.held == declared
            with _raw_post(live.url, key, declared, b"") as refused:
                status, answer = _answer(refused)
            assert status == 503
            assert msgspec.json.decode(answer)["error"]["code"] == "unavailable"
            slow.sendall(body[-10:])
            status, answer = _answer(slow)
            assert status == 202, answer
            assert msgspec.json.decode(answer)["event_ids"] == ["slow"]
        assert body_bytes.held == 0
        with client_as(live, key) as client:
            assert client.post("/events/", content=body).status_code == 202
        assert body_bytes.held == 0
    assert queue_depth(settings, engine) == 2
    engine.dispose()
