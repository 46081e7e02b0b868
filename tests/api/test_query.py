"""The query API: filters, keyset pagination, sessions, errors, applications."""

from __future__ import annotations

import httpx
import pytest

from tests.helpers import LiveServer, client_as, fetch_all, make_event


@pytest.fixture
def stored(sender, processor):
    """Three sessions' worth of the brief's three event shapes."""
    events = []
    for s in range(3):
        for i in range(4):
            name, category = [
                ("pageview", "page interaction"),
                ("cta click", "page interaction"),
                ("submit", "form interaction"),
                ("pageview", "page interaction"),
            ][i]
            events.append(
                make_event(
                    session=f"session-{s}",
                    category=category,
                    name=name,
                    timestamp=f"2021-01-0{s + 1} 09:0{i}:00",
                    event_id=f"{s}-{i}",
                )
            )
    assert sender.post("/events/", json=events).status_code == 202
    processor.drain()
    return events


def ids(results) -> list[str]:
    return [r["event_id"] for r in results]


def test_event_shape(stored, reader):
    (event,) = fetch_all(reader, "/events/", session="session-0", name="submit")
    assert set(event) == {
        "id",
        "event_id",
        "session_id",
        "application",
        "category",
        "name",
        "data",
        "timestamp",
        "received_at",
    }
    assert event["timestamp"] == "2021-01-01T09:02:00.000000Z"
    assert event["received_at"].endswith("Z")
    assert reader.get(f"/events/{event['id']}/").json() == event
    assert reader.get(f"/events/{event['id']}").json() == event


def test_filters(stored, reader):
    assert ids(fetch_all(reader, "/events/", session="session-1", ordering="timestamp")) == [
        "1-0",
        "1-1",
        "1-2",
        "1-3",
    ]
    assert sorted(ids(fetch_all(reader, "/events/", category="form interaction"))) == [
        "0-2",
        "1-2",
        "2-2",
    ]
    ranged = fetch_all(
        reader,
        "/events/",
        timestamp__gte="2021-01-02T00:00:00Z",
        timestamp__lte="2021-01-02 09:01:00",
    )
    assert ids(ranged) == ["1-1", "1-0"]  # newest first by default
    assert len(fetch_all(reader, "/events/", application="web")) == 12
    assert fetch_all(reader, "/events/", application="nobody") == []


def test_session_endpoints(stored, reader):
    session = reader.get("/sessions/session-2/").json()
    assert session == {
        "id": "session-2",
        "first_seen": "2021-01-03T09:00:00.000000Z",
        "last_seen": "2021-01-03T09:03:00.000000Z",
        "event_count": 4,
    }
    timeline = fetch_all(reader, "/sessions/session-2/events/")
    assert ids(timeline) == ["2-0", "2-1", "2-2", "2-3"]
    recent = fetch_all(reader, "/sessions/", last_seen__gte="2021-01-02T00:00:00Z")
    assert sorted(s["id"] for s in recent) == ["session-1", "session-2"]
    assert len(fetch_all(reader, "/sessions/", application="web")) == 3
    assert reader.get("/sessions/nope/").status_code == 404


def test_server_made_session_ids(server, creds, reader):
    with httpx.Client(base_url=server.url) as client:
        made = client.post("/sessions/", headers={"Authorization": f"Bearer {creds.write_key}"})
    assert made.status_code == 201
    session_id = made.json()["id"]
    assert reader.get(f"/sessions/{session_id}/").json()["event_count"] == 0
    assert session_id in [s["id"] for s in fetch_all(reader, "/sessions/")]


def test_delete_session_erases_its_events(stored, reader, admin):
    denied = reader.delete("/sessions/session-0/")
    assert denied.status_code == 403
    assert admin.delete("/sessions/session-0/").status_code == 204
    assert admin.get("/sessions/session-0/").status_code == 404
    assert fetch_all(admin, "/events/", session="session-0") == []
    assert len(fetch_all(admin, "/events/")) == 8
    assert admin.delete("/sessions/session-0/").status_code == 404


def test_pagination_walks_2500_events_without_gap_or_repeat(sender, processor, reader):
    # Many events share a timestamp, so the id must break ties for the cursor.
    events = [
        make_event(
            session=f"p-{i % 7}", timestamp=f"2021-02-01 10:{i % 60:02d}:00", event_id=str(i)
        )
        for i in range(2500)
    ]
    for start in range(0, 2500, 500):
        assert sender.post("/events/", json=events[start : start + 500]).status_code == 202
    processor.drain()
    for ordering in ("timestamp", "-timestamp"):
        pages, results = 0, []
        body = reader.get("/events/", params={"ordering": ordering, "limit": 100}).json()
        while True:
            pages += 1
            assert len(body["results"]) <= 100
            results.extend(body["results"])
            if body["next"] is None:
                break
            body = reader.get(body["next"]).json()
        assert pages == 25
        assert sorted(int(r["event_id"]) for r in results) == list(range(2500))
        keys = [(r["timestamp"], r["id"]) for r in results]
        assert keys == sorted(keys, reverse=ordering.startswith("-"))


def test_limit_is_capped_at_1000(sender, processor, reader):
    sender.post("/events/", json=[make_event(event_id=str(i)) for i in range(1005)])
    processor.drain()
    body = reader.get("/events/", params={"limit": 5000}).json()
    assert len(body["results"]) == 1000 and body["next"]


@pytest.mark.parametrize(
    ("path", "params", "code"),
    [
        ("/events/", {"timestamp__gte": "last tuesday"}, "invalid_filter"),
        ("/events/", {"cursor": "garbage!"}, "invalid_cursor"),
        ("/events/", {"limit": "ten"}, "invalid_request"),
        ("/events/", {"limit": "0"}, "invalid_request"),
        ("/events/", {"ordering": "name"}, "invalid_request"),
        ("/sessions/", {"last_seen__lte": "soon"}, "invalid_filter"),
        ("/errors/", {"received_at__gte": "x"}, "invalid_filter"),
        ("/errors/", {"replayed": "maybe"}, "invalid_request"),
        ("/events/", {"timestamp__gte": "0001-01-01T00:00:00+01:00"}, "invalid_filter"),
        # A well-formed cursor whose id is not an id of this list.
        ("/events/", {"cursor": "WyJkIiwiMjAyMS0wMS0wMVQwMDowMDowMCIsW11d"}, "invalid_cursor"),
        ("/sessions/", {"cursor": "WyJkIiwiMjAyMS0wMS0wMVQwMDowMDowMCIsMV0"}, "invalid_cursor"),
        ("/events/99999999999999999999/", {}, "invalid_request"),
    ],
)
def test_bad_query_parameters_are_400_with_the_error_body(reader, path, params, code):
    response = reader.get(path, params=params)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == code and error["message"]


def test_a_cursor_of_one_ordering_is_refused_by_the_other(sender, processor, reader):
    sender.post("/events/", json=[make_event(event_id=str(i)) for i in range(3)])
    processor.drain()
    next_url = reader.get("/events/", params={"limit": 1}).json()["next"]
    cursor = httpx.URL(next_url).params["cursor"]
    response = reader.get("/events/", params={"cursor": cursor, "ordering": "timestamp"})
    assert response.status_code == 400


def test_errors_filters(sender, processor, reader):
    sender.post("/events/", json=[make_event(data={}), make_event(timestamp="bad")])
    processor.drain()
    assert [e["reason"] for e in fetch_all(reader, "/errors/", reason="invalid_data")] == [
        "invalid_data"
    ]
    assert len(fetch_all(reader, "/errors/", replayed="false")) == 2
    assert fetch_all(reader, "/errors/", received_at__gte="2999-01-01") == []
    assert reader.get("/errors/999999/").status_code == 404


def test_read_token_reads_but_cannot_administer(server, reader):
    assert reader.get("/events/").status_code == 200
    assert reader.get("/applications/").status_code == 403
    assert reader.post("/applications/", json={"name": "x"}).status_code == 403
    with httpx.Client(base_url=server.url) as client:
        assert client.get("/events/").status_code == 401
        assert client.get("/events/", headers={"Authorization": "Bearer nope"}).status_code == 401


def test_admin_token_from_the_environment(empty_store_url):
    from tests.helpers import LiveServer
    from the_eye.config import Settings

    settings = Settings(
        database_url=empty_store_url("sqlite"), admin_token="s3cret", _env_file=None
    )
    with LiveServer(settings) as live, httpx.Client(base_url=live.url) as client:
        assert (
            client.get("/applications/", headers={"Authorization": "Bearer s3cret"}).status_code
            == 200
        )
        assert (
            client.get("/applications/", headers={"Authorization": "Bearer other"}).status_code
            == 401
        )


def test_application_lifecycle(server, admin):
    created = admin.post("/applications/", json={"name": "shop"})
    assert created.status_code == 201
    app = created.json()
    assert set(app) == {"id", "name", "active", "strict", "created_at", "write_key"}
    listed = admin.get("/applications/").json()["results"]
    assert "write_key" not in listed[-1] and listed[-1]["name"] == "shop"
    assert admin.post("/applications/", json={"name": "shop"}).status_code == 409
    assert admin.post("/applications/", json={}).status_code == 400

    def send(key: str) -> int:
        with httpx.Client(base_url=server.url) as client:
            return client.post(
                "/events/", json=make_event(), headers={"Authorization": f"Bearer {key}"}
            ).status_code

    assert send(app["write_key"]) == 202
    rotated = admin.post(f"/applications/{app['id']}/rotate-key/").json()
    assert rotated["write_key"] != app["write_key"]
    assert send(app["write_key"]) == 401
    assert send(rotated["write_key"]) == 202
    assert admin.delete(f"/applications/{app['id']}/").status_code == 204
    assert send(rotated["write_key"]) == 401
    assert admin.post("/applications/9999/rotate-key/").status_code == 404


def test_next_links_do_not_follow_the_host_header(stored, reader):
    page = reader.get(
        "/events/",
        params={"limit": 5, "category": "page interaction"},
        headers={"Host": "evil.example"},
    ).json()
    assert page["next"].startswith("/events/?")
    assert "evil.example" not in page["next"]
    assert "category=page+interaction" in page["next"] and "limit=5" in page["next"]
    following = reader.get(page["next"]).json()
    assert following["results"] and following["results"][0] not in page["results"]


def test_next_links_use_the_public_url_when_set(settings, creds, sender, processor):
    for i in range(3):
        sender.post("/events/", json=make_event(event_id=f"p-{i}"))
    processor.drain()
    public = settings.model_copy(update={"public_url": "https://eye.example.com/"})
    with LiveServer(public) as live, client_as(live, creds.read_token) as reader:
        page = reader.get("/events/", params={"limit": 1}, headers={"host": "evil.example"})
    assert page.status_code == 200, page.text
    assert page.json()["next"].startswith("https://eye.example.com/events/?limit=1&cursor=")
