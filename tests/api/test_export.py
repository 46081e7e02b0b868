"""`GET /events/export/` and `GET /errors/export/`: every row the list's filters match, in
one streamed answer, as NDJSON, CSV or Parquet."""

from __future__ import annotations

import csv
import io
import json
import sys
import threading
from datetime import UTC, datetime

import psutil
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tests.helpers import client_as, fetch_all, generate_events, make_event, seed_events
from tests.processes import ServeProcess, the_eye_env
from the_eye.store.writes import store_events


def ndjson(response) -> list[dict]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/x-ndjson"
    return [json.loads(line) for line in response.text.splitlines()]


@pytest.fixture
def many(engine, creds):
    """More events than one page of the export, of every shape `seed_events` makes."""
    seed_events(engine, creds.application_id, 300)
    generate_events(engine, creds.application_id, 5_200, start=datetime(2021, 2, 1))


def test_ndjson_export_is_every_event_as_the_list_shows_it(reader, many):
    listed = fetch_all(reader, "/events/", ordering="timestamp", limit=1000)
    exported = ndjson(reader.get("/events/export/"))
    assert len(exported) == 5_500
    assert exported == listed


def test_csv_export_holds_the_same_rows_with_data_as_json_text(reader, many):
    listed = fetch_all(reader, "/events/", ordering="timestamp", limit=1000)
    response = reader.get("/events/export/", params={"format": "csv"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/csv; charset=utf-8"
    assert 'filename="events.csv"' in response.headers["content-disposition"]
    rows = list(csv.DictReader(io.StringIO(response.text)))
    assert [row["id"] for row in rows] == [str(event["id"]) for event in listed]
    for row, event in zip(rows, listed, strict=True):
        assert json.loads(row.pop("data")) == event["data"]
        assert row == {k: str(v) for k, v in event.items() if k != "data"}


def test_parquet_export_has_typed_columns_in_utc(reader, many):
    listed = fetch_all(reader, "/events/", ordering="timestamp", limit=1000)
    response = reader.get("/events/export/", params={"format": "parquet"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/vnd.apache.parquet"
    table = pq.read_table(io.BytesIO(response.content))
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("received_at").type == pa.timestamp("us", tz="UTC")
    assert table.num_rows == len(listed)
    for row, event in zip(table.to_pylist(), listed, strict=True):
        assert json.loads(row.pop("data")) == event.pop("data")
        for key in ("timestamp", "received_at"):
            assert row.pop(key) == datetime.fromisoformat(event.pop(key)).astimezone(UTC)
        assert row == event


def test_export_takes_the_filters_of_the_list(reader, many):
    filters = {
        "category": "form interaction",
        "name": "submit",
        "session": "s-3",
        "timestamp__gte": "2021-01-01T03:00:00Z",
        "timestamp__lte": "2021-01-02 00:00:00",
    }
    listed = fetch_all(reader, "/events/", ordering="timestamp", **filters)
    assert listed
    assert ndjson(reader.get("/events/export/", params=filters)) == listed
    assert ndjson(reader.get("/events/export/", params={"application": "web"}))
    assert ndjson(reader.get("/events/export/", params={"application": "nope"})) == []
    empty = reader.get("/events/export/", params={"application": "nope", "format": "parquet"})
    assert pq.read_table(io.BytesIO(empty.content)).num_rows == 0
    bad = reader.get("/events/export/", params={"timestamp__gte": "yesterday"})
    assert bad.status_code == 400
    assert bad.json()["error"]["code"] == "invalid_filter"
    assert reader.get("/events/export/", params={"format": "xlsx"}).status_code == 400


def test_errors_export_is_every_error_as_the_list_shows_it(sender, reader, processor):
    bad = [make_event(event_id=f"bad-{i}", data=[]) for i in range(3)]
    future = [make_event(event_id="late", timestamp="2999-01-01 00:00:00")]
    assert sender.post("/events/", json=bad + future).status_code == 202
    assert sender.post("/events/", content=b"{not json").status_code == 400
    processor.drain()
    listed = fetch_all(reader, "/errors/")[::-1]  # the list is newest first
    assert len(listed) == 5
    assert ndjson(reader.get("/errors/export/")) == listed
    only = ndjson(reader.get("/errors/export/", params={"reason": "future_timestamp"}))
    assert [error["event_id"] for error in only] == ["late"]
    table = pq.read_table(io.BytesIO(reader.get("/errors/export/?format=parquet").content))
    assert table.column("id").to_pylist() == [error["id"] for error in listed]
    assert table.schema.field("replayed").type == pa.bool_()


def test_parquet_without_the_export_extra_is_a_clear_400(reader, monkeypatch):
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # as if the extra were not installed
    response = reader.get("/events/export/", params={"format": "parquet"})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "unsupported_format"
    assert "pip install 'the-eye[export]'" in error["message"]
    assert reader.get("/events/export/", params={"format": "csv"}).status_code == 200


def test_the_export_path_is_never_taken_for_an_event_id(admin, sender):
    assert admin.get("/events/export/").status_code == 200
    refused = admin.patch("/events/export/", json={"name": "x"})
    assert refused.status_code == 405
    assert refused.headers["allow"] == "GET"
    assert admin.get("/events/123/").status_code == 404
    assert sender.get("/events/export/").status_code == 403


@pytest.mark.slow
def test_a_large_export_streams_in_bounded_server_memory(empty_store_url, tmp_path):
    from the_eye.config import Settings
    from the_eye.store.credentials import create_application, create_token
    from the_eye.store.engine import create_engine

    settings = Settings(database_url=empty_store_url("sqlite"), _env_file=None)
    engine = create_engine(settings)
    with engine.begin() as conn:
        app_id = create_application(conn, "web").id
        token = create_token(conn, "analyst", "read")
    # 100,000 events of about 1 KB each: a body far larger than the bound below.
    generate_events(engine, app_id, 100_000, pad=1000)
    serve = ServeProcess(the_eye_env(settings), "--no-processor").start()
    try:
        server = psutil.Process(serve.pid)
        with client_as(serve.url, token, timeout=120) as client:
            # Warm: every module the export loads, loaded.
            warm = client.get("/events/export/", params={"timestamp__lte": "2021-01-01 00:01:00"})
            assert warm.status_code == 200
            baseline = server.memory_info().rss
            peak = [baseline]
            done = threading.Event()

            def sample() -> None:
                while not done.wait(0.02):
                    peak[0] = max(peak[0], server.memory_info().rss)

            sampler = threading.Thread(target=sample)
            sampler.start()
            lines = 0
            size = 0
            last = b""
            try:
                with client.stream("GET", "/events/export/") as response:
                    assert response.status_code == 200
                    chunks = response.iter_bytes()
                    first = next(chunks)
                    # Stored after the first bytes arrived, with the latest timestamp: in the
                    # answer only if the server had not yet read its last row.
                    with engine.begin() as conn:
                        store_events(conn, [_latest_event(app_id)])
                    for chunk in [first, *chunks]:
                        size += len(chunk)
                        lines += chunk.count(b"\n")
                        last = (last + chunk)[-4096:]
            finally:
                done.set()
                sampler.join()
    finally:
        serve.stop()
        engine.dispose()
    assert lines == 100_001
    assert json.loads(last.splitlines()[-1])["event_id"] == "after-the-first-bytes"
    growth = peak[0] - baseline
    assert size > 100_000_000
    # Held whole, the answer would grow the server by more than its size; streamed, by
    # about a page (measured: 12 MB for 124 MB).
    assert growth < size / 3, f"the server grew by {growth / 1e6:.0f} MB for {size / 1e6:.0f} MB"


def _latest_event(application_id: int) -> dict:
    moment = datetime(2030, 1, 1)
    return {
        "application_id": application_id,
        "event_id": "after-the-first-bytes",
        "session_id": "s",
        "category": "c",
        "name": "n",
        "data": {"k": 1},
        "timestamp": moment,
        "received_at": moment,
    }
