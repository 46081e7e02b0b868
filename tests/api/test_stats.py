"""`/stats/`: counts from the rollups equal counts made independently from the stored rows."""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime, timedelta

import pytest
import sqlalchemy as sa

from tests.consistency import assert_rollups_match_rows
from tests.helpers import fetch_all, make_event
from the_eye.store.tables import errors, events
from the_eye.timestamps import format_timestamp, utcnow

START = datetime(2021, 1, 1, 22, 0, 0)
TYPES = [("page interaction", "pageview"), ("page interaction", "cta click"), ("form", "submit")]


def floor(moment: datetime, bucket: str) -> datetime:
    if bucket == "minute":
        return moment.replace(second=0, microsecond=0)
    if bucket == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def expected(engine, gte, lte, bucket=None, application_id=None) -> dict:
    """What /stats/ should say, counted here from the events and errors themselves."""
    with engine.connect() as conn:
        ev = conn.execute(
            sa.select(events.c.timestamp, events.c.category, events.c.name, events.c.application_id)
        ).all()
        er = conn.execute(
            sa.select(errors.c.received_at, errors.c.reason, errors.c.application_id).where(
                ~errors.c.replayed
            )
        ).all()
    ev_counts: dict = {}
    er_counts: dict = {}
    for moment, category, name, app in ev:
        if gte <= moment <= lte and application_id in (None, app):
            key = format_timestamp(floor(moment, bucket)) if bucket else None
            ev_counts.setdefault(key, Counter())[(category, name)] += 1
    for moment, reason, app in er:
        if gte <= moment <= lte and application_id in (None, app):
            key = format_timestamp(floor(moment, bucket)) if bucket else None
            er_counts.setdefault(key, Counter())[reason] += 1
    return {"events": ev_counts, "errors": er_counts}


def answered(body: dict) -> dict:
    """The /stats/ answer in the shape `expected` makes."""
    parts = body["buckets"] if body["bucket"] else [{"start": None, **body["totals"]}]
    ev_counts: dict = {}
    er_counts: dict = {}
    for part in parts:
        for e in part["events"]:
            ev_counts.setdefault(part["start"], Counter())[(e["category"], e["name"])] = e["count"]
        for e in part["errors"]:
            er_counts.setdefault(part["start"], Counter())[e["reason"]] = e["count"]
    return {"events": ev_counts, "errors": er_counts}


@pytest.fixture
def seeded(sender, processor, admin, creds):
    """600 events over 3 days at odd seconds, of 3 types and 2 applications, and errors."""
    rng = random.Random(5)
    other = admin.post("/applications/", json={"name": "mobile"}).json()["write_key"]
    for key in (creds.write_key, other):
        batch = []
        for i in range(300):
            category, name = rng.choice(TYPES)
            moment = START + timedelta(seconds=rng.randrange(3 * 24 * 3600))
            batch.append(
                make_event(
                    session=f"s-{i % 7}",
                    category=category,
                    name=name,
                    timestamp=moment.isoformat(sep=" "),
                )
            )
        batch += [make_event(data={})] * 3 + [make_event(timestamp="someday")] * 2
        answer = sender.post("/events/", json=batch, headers={"Authorization": f"Bearer {key}"})
        assert answer.status_code == 202
    processor.drain()


def test_stats_equal_counts_made_from_the_events(seeded, reader, engine):
    rng = random.Random(11)
    end = START + timedelta(days=3)
    received = utcnow()
    for bucket in (None, "minute", "hour", "day"):
        for _ in range(4):
            # Ranges that start and end mid-minute, and ranges on whole minutes.
            gte = START + timedelta(
                seconds=rng.randrange(2 * 24 * 3600), microseconds=rng.choice([0, 7])
            )
            width = timedelta(hours=2) if bucket == "minute" else timedelta(days=2)
            lte = gte + timedelta(seconds=rng.randrange(int(width.total_seconds())))
            if rng.random() < 0.3:
                gte, lte = floor(gte, "minute"), floor(lte, "minute")
            params = {
                "timestamp__gte": format_timestamp(gte),
                "timestamp__lte": format_timestamp(lte),
            }
            if bucket:
                params["bucket"] = bucket
            body = reader.get("/stats/", params=params).json()
            assert answered(body) == expected(engine, gte, lte, bucket), params
    # Errors count by when they were received.
    around_now = {
        "timestamp__gte": format_timestamp(received - timedelta(minutes=5)),
        "timestamp__lte": format_timestamp(received + timedelta(minutes=5)),
    }
    body = reader.get("/stats/", params=around_now).json()
    assert body["totals"]["errors"] == [
        {"reason": "invalid_data", "count": 6},
        {"reason": "invalid_timestamp", "count": 4},
    ]
    assert reader.get("/stats/").json()["totals"]["events"] == [
        {"category": c, "name": n, "count": k}
        for (c, n), k in sorted(
            expected(engine, START, end + timedelta(days=1))["events"][None].items(),
            key=lambda item: (-item[1], item[0]),
        )
    ]


def test_stats_for_one_application(seeded, reader, engine, creds):
    gte, lte = START, START + timedelta(days=1, seconds=17)
    params = {
        "timestamp__gte": format_timestamp(gte),
        "timestamp__lte": format_timestamp(lte),
        "application": "mobile",
        "bucket": "hour",
    }
    body = reader.get("/stats/", params=params).json()
    mobile = expected(engine, gte, lte, "hour", creds.application_id + 1)
    assert answered(body) == mobile
    assert mobile["events"]
    nobody = reader.get("/stats/", params={**params, "application": "nobody"}).json()
    assert nobody["buckets"] == [] and nobody["totals"] == {"events": [], "errors": []}


def test_stats_buckets_are_named_by_their_start(seeded, reader):
    body = reader.get(
        "/stats/",
        params={
            "timestamp__gte": "2021-01-02T00:00:00Z",
            "timestamp__lte": "2021-01-03T23:59:59.999999Z",
            "bucket": "day",
        },
    ).json()
    assert [b["start"] for b in body["buckets"]] == [
        "2021-01-02T00:00:00.000000Z",
        "2021-01-03T00:00:00.000000Z",
    ]


@pytest.mark.parametrize(
    "params",
    [
        {"bucket": "week"},
        {"bucket": "minute"},
        {"bucket": "minute", "timestamp__gte": "2021-01-01", "timestamp__lte": "2021-03-01"},
        {"timestamp__gte": "yesterday"},
    ],
)
def test_bad_stats_parameters_are_400(reader, params):
    answer = reader.get("/stats/", params=params)
    assert answer.status_code == 400
    assert answer.json()["error"]["code"] in ("invalid_request", "invalid_filter")


def test_erasing_a_session_takes_its_events_out_of_the_stats(seeded, admin, engine):
    before = answered(admin.get("/stats/").json())["events"][None]
    erased = fetch_all(admin, "/events/", session="s-3")
    assert admin.delete("/sessions/s-3/").status_code == 204
    after = answered(admin.get("/stats/").json())["events"][None]
    assert sum(before.values()) - sum(after.values()) == len(erased) > 0
    assert_rollups_match_rows(engine)


@pytest.mark.parametrize(
    "params",
    [
        {"timestamp__lte": "9999-12-31T23:59:59.999999"},
        {"timestamp__gte": "9999-12-31T23:59:59.999999"},
        {"timestamp__gte": "9999-12-31T23:59:30", "bucket": "hour"},
        {"timestamp__gte": "0001-01-01T00:00:00", "timestamp__lte": "9999-12-31T23:59:59.999999"},
        {"timestamp__gte": "9999-12-31T23:58:00", "timestamp__lte": "9999-12-31T23:59:59.999999"},
    ],
)
def test_stats_at_the_ends_of_time_answer(sender, processor, reader, params):
    sender.post("/events/", json=make_event())
    processor.drain()
    answer = reader.get("/stats/", params=params)
    assert answer.status_code == 200, answer.text
    reaches_2021 = params.get("timestamp__gte", "0001") < "2021"
    total = sum(e["count"] for e in answer.json()["totals"]["events"])
    assert total == (1 if reaches_2021 else 0)


def test_the_bucket_cap_holds_when_a_bound_is_missing(sender, processor, reader, admin):
    # Events 4.6 years apart: 40,000 hours between them.
    first = datetime(2016, 1, 1)
    last = first + timedelta(hours=40_000)
    sender.post(
        "/events/",
        json=[
            make_event(event_id="a", timestamp=first.isoformat()),
            make_event(event_id="b", timestamp=last.isoformat()),
        ],
    )
    processor.drain()
    for params in (
        {"bucket": "hour"},
        {"bucket": "hour", "timestamp__gte": "2015-12-31T00:00:00"},
        {"bucket": "hour", "timestamp__lte": "2021-01-01T00:00:00"},
    ):
        answer = reader.get("/stats/", params=params)
        assert answer.status_code == 400, params
        assert answer.json()["error"]["code"] == "invalid_filter"
        assert "10000 hours" in answer.json()["error"]["message"]
    days = reader.get("/stats/", params={"bucket": "day"}).json()["buckets"]
    assert len(days) == 2
    hours = reader.get("/stats/", params={"bucket": "hour", "timestamp__gte": "2020-01-01"})
    assert hours.status_code == 200 and len(hours.json()["buckets"]) == 1
    # An application with nothing counted has no range to cap.
    admin.post("/applications/", json={"name": "quiet"})
    quiet = reader.get("/stats/", params={"bucket": "hour", "application": "quiet"})
    assert quiet.status_code == 200 and quiet.json()["buckets"] == []
