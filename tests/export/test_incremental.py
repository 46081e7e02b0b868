"""`the-eye export DIR`: Hive partitions by day that read back as the store, each event exactly
once across runs, late commits, crashes, edits and deletes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as ds
import pytest
import sqlalchemy as sa

from tests.helpers import PG_URL, generate_events, seed_events
from tests.processes import wait_until
from the_eye.config import Settings
from the_eye.export.incremental import CHUNK, STAGING, ExportRefused, export_events
from the_eye.processor.checker import EventChecker
from the_eye.services import corrections
from the_eye.store import queries
from the_eye.store.engine import create_engine, write_transaction
from the_eye.store.sessions import delete_session
from the_eye.store.tables import events, exports
from the_eye.store.writes import store_events
from the_eye.timestamps import format_timestamp


def stored(engine) -> dict[int, dict]:
    """Every stored event as an export holds it, by id: times in UTC, data as JSON."""
    with engine.connect() as conn:
        names = queries.application_names(conn)
        rows = conn.execute(sa.select(*queries.EVENT_FIELDS)).all()
    return {
        row.id: {
            "id": row.id,
            "event_id": row.event_id,
            "session_id": row.session_id,
            "application": names.get(row.application_id),
            "category": row.category,
            "name": row.name,
            "data": row.data,
            "timestamp": row.timestamp.replace(tzinfo=UTC),
            "received_at": row.received_at.replace(tzinfo=UTC),
        }
        for row in rows
    }


def read_parquet(directory: Path) -> list[dict]:
    """Every exported event, read as one Hive-partitioned dataset, its `date` checked
    against its timestamp and then left out; `data` decoded."""
    dataset = ds.dataset(directory / "events", format="parquet", partitioning="hive")
    table = dataset.to_table()
    assert table.schema.field("id").type == pa.int64()
    assert table.schema.field("timestamp").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("received_at").type == pa.timestamp("us", tz="UTC")
    assert table.schema.field("data").type == pa.string()
    rows = []
    for row in table.to_pylist():
        assert str(row.pop("date")) == row["timestamp"].date().isoformat()
        assert row["timestamp"].utcoffset() == timedelta(0)
        row["timestamp"] = row["timestamp"].astimezone(UTC)
        row["received_at"] = row["received_at"].astimezone(UTC)
        row["data"] = json.loads(row["data"])
        rows.append(row)
    return rows


def read_ndjson(directory: Path) -> list[dict]:
    rows = []
    for path in sorted((directory / "events").glob("date=*/*.ndjson")):
        day = path.parent.name.removeprefix("date=")
        for line in path.read_text().splitlines():
            row = json.loads(line)
            assert row["timestamp"].startswith(day)
            for key in ("timestamp", "received_at"):
                row[key] = datetime.fromisoformat(row[key])
            rows.append(row)
    return rows


def assert_exactly_the_store(rows: list[dict], engine) -> None:
    """The exported rows are the stored events, each once, field for field."""
    ids = [row["id"] for row in rows]
    assert len(ids) == len(set(ids)), "an event was exported twice"
    expected = stored(engine)
    missing, extra = set(expected) - set(ids), set(ids) - set(expected)
    assert not missing and not extra, f"missing {sorted(missing)[:10]}, extra {sorted(extra)[:10]}"
    for row in rows:
        assert row == expected[row["id"]]


@pytest.mark.parametrize("file_format", ["parquet", "ndjson"])
def test_export_reads_back_as_the_store_event_by_event(engine, creds, tmp_path, file_format):
    # Over three days, from two applications, with data of every JSON kind.
    seed_events(engine, creds.application_id, 700)
    with engine.begin() as conn:
        store_events(
            conn,
            [
                {
                    "application_id": 999,  # an application since deleted: no name
                    "event_id": "odd",
                    "session_id": "s-odd",
                    "category": 'c,with "quotes"',
                    "name": "n\nline",
                    "data": {"big": 2**62, "f": 1.5, "n": None, "l": [1, "a", {"b": []}]},
                    "timestamp": datetime(2020, 12, 31, 23, 59, 59, 999999),
                    "received_at": datetime(2021, 1, 1),
                }
            ],
        )
    report = export_events(engine, tmp_path, file_format)
    assert report.exported == 701
    read = read_parquet if file_format == "parquet" else read_ndjson
    assert_exactly_the_store(read(tmp_path), engine)
    days = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert days == [
        "date=2020-12-31",
        "date=2021-01-01",
        "date=2021-01-02",
        "date=2021-01-03",
        "date=2021-01-04",
    ]
    assert not (tmp_path / STAGING).exists()


def test_runs_export_only_what_arrived_since_and_each_event_once(engine, creds, tmp_path):
    seed_events(engine, creds.application_id, 300, prefix="a")
    assert export_events(engine, tmp_path).exported == 300
    assert export_events(engine, tmp_path).exported == 0
    # New events, some on days already exported, some on a new one.
    seed_events(engine, creds.application_id, 250, prefix="b", start=datetime(2021, 1, 1, 12))
    seed_events(engine, creds.application_id, 5, prefix="c", start=datetime(2022, 6, 1))
    report = export_events(engine, tmp_path)
    assert report.exported == 255
    assert report.rewritten_days == []
    assert_exactly_the_store(read_parquet(tmp_path), engine)


def test_edits_and_deletes_rewrite_their_days_whole(settings, engine, creds, tmp_path):
    seed_events(engine, creds.application_id, 600)  # 2021-01-01 to 2021-01-03
    export_events(engine, tmp_path)
    by_event_id = {row["event_id"]: row_id for row_id, row in stored(engine).items()}
    checker = EventChecker.from_settings(settings, engine)
    # Moved from the third day to the first, and a change of data only.
    corrections.edit_event(
        engine,
        by_event_id["seed-500"],
        {"timestamp": "2021-01-01 10:00:00"},
        checker,
        replace=False,
    )
    corrections.edit_event(
        engine, by_event_id["seed-4"], {"data": {"edited": True}}, checker, replace=False
    )
    corrections.delete_event(engine, by_event_id["seed-5"])
    with write_transaction(engine) as conn:
        delete_session(conn, "s-7")  # erasure: every event of the session, on every day
    seed_events(engine, creds.application_id, 20, prefix="late", start=datetime(2021, 1, 2))
    report = export_events(engine, tmp_path)
    assert report.rewritten_days == [datetime(2021, 1, d).date() for d in (1, 2, 3)]
    assert_exactly_the_store(read_parquet(tmp_path), engine)
    # Each day is one file again, and nothing changed since: the next run writes nothing.
    assert all(len(list(day.iterdir())) == 1 for day in (tmp_path / "events").iterdir())
    report = export_events(engine, tmp_path)
    assert (report.exported, report.rewritten_days) == (0, [])


def test_a_day_left_without_events_leaves_the_dataset(engine, creds, tmp_path):
    seed_events(engine, creds.application_id, 3, start=datetime(2021, 5, 5))
    export_events(engine, tmp_path)
    for row_id in stored(engine):
        corrections.delete_event(engine, row_id)
    export_events(engine, tmp_path)
    assert list((tmp_path / "events").iterdir()) == []


def test_an_application_filter_exports_only_its_events(engine, creds, tmp_path):
    seed_events(engine, creds.application_id, 40)
    seed_events(engine, creds.application_id + 1, 30, prefix="other")
    report = export_events(engine, tmp_path, application="web")
    assert report.exported == 40
    assert {row["application"] for row in read_parquet(tmp_path)} == {"web"}


def test_a_directory_keeps_its_format_and_application(engine, creds, tmp_path):
    seed_events(engine, creds.application_id, 3)
    export_events(engine, tmp_path, "ndjson")
    with pytest.raises(ExportRefused, match="ndjson, all applications"):
        export_events(engine, tmp_path, "parquet")
    with pytest.raises(ExportRefused, match="no application named 'nope'"):
        export_events(engine, tmp_path / "other", application="nope")


def test_an_event_committed_late_with_a_lower_id_is_not_skipped(store, tmp_path):
    """Ids are taken before commit (a PostgreSQL sequence): a transaction that took a lower
    id and commits last must still be exported, once."""
    late = store.connect()
    transaction = late.begin()
    store_events(late, [_event("late", datetime(2021, 1, 1))])  # takes the lower id
    if store.dialect.name == "sqlite":
        # One writer at a time: the others wait for this one, in id order.
        transaction.commit()
    else:
        with store.begin() as conn:  # higher ids, committed first
            store_events(conn, [_event(f"early-{i}", datetime(2021, 1, 2)) for i in range(5)])
    outcome: dict = {}
    export = threading.Thread(target=lambda: outcome.update(report=export_events(store, tmp_path)))
    export.start()
    try:
        if store.dialect.name == "postgresql":
            # The export waits for the open transaction rather than read past it.
            wait_until(lambda: _waiting_for_a_lock(store), timeout=10)
            transaction.commit()
    finally:
        late.close()  # rolls back what a failure left open
        export.join(30)
    assert sorted(_exported_ids(tmp_path)) == _stored_ids(store)
    assert outcome["report"].exported == len(_stored_ids(store))


def _event(event_id: str, moment: datetime) -> dict:
    return {
        "application_id": 1,
        "event_id": event_id,
        "session_id": event_id,  # its own: concurrent writers never wait on each other's
        "category": "c",
        "name": "n",
        "data": {"k": 1},
        "timestamp": moment,
        "received_at": moment,
    }


def _waiting_for_a_lock(engine) -> bool:
    with engine.connect() as conn:
        return bool(
            conn.exec_driver_sql(
                "SELECT count(*) FROM pg_locks WHERE NOT granted AND relation = 'events'::regclass"
            ).scalar()
        )


@pytest.fixture(
    params=[
        "sqlite",
        pytest.param("postgresql", marks=pytest.mark.skipif(not PG_URL, reason="no PostgreSQL")),
    ]
)
def store_url(request, empty_store_url) -> str:
    """An empty store of each backend (the queue plays no part in exports)."""
    return empty_store_url(request.param)


@pytest.fixture
def store(store_url):
    engine = create_engine(Settings(database_url=store_url, _env_file=None))
    yield engine
    engine.dispose()


def test_a_run_killed_midway_leaves_no_partial_data_and_the_next_run_finishes_once(
    store_url, store, tmp_path
):
    total = 4 * CHUNK  # killed once the first chunk is saved, with three still to write
    generate_events(store, 1, total)
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "the_eye", "export", str(out)],
        env={**os.environ, "THE_EYE_DATABASE_URL": store_url},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _saved_progress(store) > 0 or run.poll() is not None, timeout=120)
        run.send_signal(signal.SIGKILL)
    finally:
        run.wait(30)
    saved = _saved_progress(store)
    assert 0 < saved < total, "the run was not killed in the middle"
    # What a reader sees now: whole files only (each one reads), no event twice.
    visible = _exported_ids(out)
    assert len(visible) == len(set(visible)) and set(range(1, saved + 1)) <= set(visible)
    report = export_events(store, out)
    assert report.exported == total - saved
    exported = _exported_ids(out)
    assert sorted(exported) == _stored_ids(store)
    assert not (out / STAGING).exists()


def _exported_ids(directory: Path) -> list[int]:
    dataset = ds.dataset(directory / "events", format="parquet", partitioning="hive")
    return dataset.to_table(columns=["id"]).column("id").to_pylist()


def _stored_ids(engine) -> list[int]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(events.c.id).order_by(events.c.id)).scalars())


def _saved_progress(engine) -> int:
    with engine.connect() as conn:
        return conn.execute(sa.select(exports.c.last_event_id)).scalar() or 0


def test_timestamps_keep_their_microseconds_and_zone(engine, creds, tmp_path):
    seed_events(engine, creds.application_id, 1, start=datetime(2021, 1, 1, 9, 15, 27, 243860))
    export_events(engine, tmp_path, "ndjson")
    (line,) = (tmp_path / "events" / "date=2021-01-01").glob("*.ndjson")
    row = json.loads(line.read_text())
    assert row["timestamp"] == format_timestamp(datetime(2021, 1, 1, 9, 15, 27, 243860))
    assert row["timestamp"].endswith(".243860Z")
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar() == 1
