"""`the-eye bench`: a quick run reports every number, and its events are valid ones."""

from __future__ import annotations

import json
import os
import re
import shutil
import sqlite3
import subprocess
import sys

import msgspec
import pytest
import sqlalchemy as sa

from tests.helpers import PG_URL
from the_eye.config import Settings
from the_eye.processor.checks import Limits, ValidEvent, check_event
from the_eye.store.engine import create_engine
from the_eye.store.migrate import migrate
from the_eye.store.tables import events
from the_eye.timestamps import utcnow
from the_eye_bench.cpu import (
    CpuMeter,
    ProcessCpu,
    cpu_spent,
    is_local,
    postgresql_processes,
    service_meter,
)
from the_eye_bench.floor import floor_rows, measure_floor, sqlite_floor
from the_eye_bench.processes import EyeProcess
from the_eye_bench.report import Report
from the_eye_bench.traffic import write_bodies

ISSUE_KEYS = (
    "limit_rps",
    "single_rps",
    "single_p50_ms",
    "single_p99_ms",
    "batch_events_per_s",
    "e2e_events_per_s",
    "lag_p99_ms",
    "query_session_ms",
    "query_range_ms",
    "rss_mb",
    "cpu",
    "generator",
)
CPU_KEYS = (
    "limit_cpu_us_per_request",
    "api_cpu_us_per_request",
    "api_cpu_us_per_event",
    "processor_cpu_us_per_event",
    "floor_cpu_us_per_event",
    "processor_cpu_floor_ratio",
    "api_cpu_limit_ratio",
)


def run_bench(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "the_eye", "bench", *args],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=600,
    )


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("wrk") is None, reason="the benchmark needs wrk")
def test_quick_bench_writes_a_complete_and_sane_report(tmp_path):
    path = tmp_path / "bench.json"
    done = run_bench("--quick", "--json", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(path.read_text())

    assert set(ISSUE_KEYS) <= set(report)
    for key in ISSUE_KEYS[:-1]:
        assert isinstance(report[key], int | float) and report[key] > 0, key
    assert report["single_p50_ms"] <= report["single_p99_ms"]
    assert report["generator"] == "wrk"
    assert report["rss_mb"] > 0
    assert all(p["peak_mb"] > 0 for p in report["rss_mb_by_process"])
    assert {p["role"] for p in report["rss_mb_by_process"]} >= {"api", "processor"}
    assert report["serve"]["workers"] == 1
    assert report["e2e_events"] >= 30_000
    assert report["store_events"] == 100_000
    assert report["query_session_rows"] >= 10
    assert report["query_range_rows"] > 0
    # Everything the generator sends is valid and every request was answered 2xx.
    assert report["errored_events"] == 0
    assert report["failed_requests"] == {"single": 0, "batch": 0, "steady": 0}
    assert "single_rps" in done.stdout

    for key in CPU_KEYS:
        assert isinstance(report[key], float) and report[key] > 0, key
    # The processor does more than a bare insert; The Eye's API more than an empty app.
    assert report["processor_cpu_us_per_event"] > report["floor_cpu_us_per_event"]
    assert report["limit_cpu_us_per_request"] < report["api_cpu_us_per_request"]
    assert report["postgres_cpu_us_per_event"] is None  # SQLite runs inside the processor
    assert report["floor_events"] == 100_000
    assert report["floor_rounds_cpu_us_per_event"][0] == round(report["floor_cpu_us_per_event"], 1)
    assert set(report["cpu_seconds_by_role"]) == {"limit", "single", "batch", "e2e"}
    assert report["cpu_seconds_by_role"]["e2e"]["processor"] > 0
    assert "processor_cpu_us_per_event" in done.stdout and "x floor" in done.stdout


def test_production_profile_without_postgresql_and_redis_says_what_it_needs():
    done = run_bench(
        "--profile",
        "production",
        "--quick",
        env={"THE_EYE_DATABASE_URL": "sqlite:///unused.db", "THE_EYE_QUEUE_URL": "db"},
    )
    assert done.returncode == 2
    assert "production profile needs PostgreSQL and Redis" in done.stderr
    assert "THE_EYE_DATABASE_URL" in done.stderr and "THE_EYE_QUEUE_URL" in done.stderr


def test_without_wrk_the_bench_says_how_to_install_it():
    done = run_bench("--quick", env={"PATH": "/nonexistent"})
    assert done.returncode == 1
    assert "wrk, which is not on PATH" in done.stderr and "apt-get install wrk" in done.stderr


def test_without_its_extra_the_bench_says_how_to_install_it(tmp_path):
    # A psutil that cannot be imported, as on an installation without the extra.
    (tmp_path / "psutil.py").write_text("raise ModuleNotFoundError('psutil', name='psutil')\n")
    done = run_bench("--quick", env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 1
    assert "needs psutil" in done.stderr and "pip install 'the-eye[bench]'" in done.stderr


@pytest.mark.parametrize("events_per_body", [1, 10, 100])
def test_generated_events_pass_every_processing_check(tmp_path, events_per_body):
    now = utcnow()
    bodies = write_bodies(tmp_path / "bodies.txt", 50, events_per_body, now, seed=5)
    events = []
    for body in bodies.path.read_bytes().splitlines():
        document = msgspec.json.decode(body)
        events += document["batch"] if events_per_body > 1 else [document]
    assert len(events) == 50 * events_per_body
    outcomes = [check_event(e, "id", now, Limits()) for e in events]
    assert all(isinstance(o, ValidEvent) for o in outcomes), outcomes
    assert {(e["category"], e["name"]) for e in events} <= {
        ("page interaction", "pageview"),
        ("page interaction", "cta click"),
        ("form interaction", "submit"),
    }
    assert len({e["session_id"] for e in events}) > 1
    assert 150 <= bodies.mean_event_bytes <= 600


@pytest.mark.slow
def test_only_queries_times_the_api_queries_and_every_console_page_there_is(tmp_path):
    path = tmp_path / "bench.json"
    # No wrk on the PATH: timing queries sends no load.
    done = run_bench(
        "--quick",
        "--only",
        "queries",
        "--json",
        str(path),
        env={"PATH": os.path.dirname(sys.executable)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(path.read_text())

    assert set(ISSUE_KEYS) <= set(report)  # every key kept, the load's left at zero
    assert report["single_rps"] == 0 and report["only"] == "queries"
    assert report["query_session_ms"] > 0 and report["query_range_ms"] > 0
    pages = report["console_ms"]
    assert {"overview", "live", "live_poll", "live_filtered"} <= set(pages)
    for page in pages.values():
        assert 0 < page["median"] <= page["p95"], page
    # Every page of the console is either timed or listed by its path, never left out.
    timed_or_missing = set(pages) | set(report["console_pages_missing"])
    every_page = {"events", "event", "session", "errors", "error", "types", "type", "tokens"}
    assert every_page <= timed_or_missing
    assert all(p.startswith("/console/") for p in report["console_pages_missing"].values())
    assert "console overview" in done.stdout


@pytest.mark.slow
def test_only_export_reports_the_parquet_export_of_the_store(tmp_path):
    path = tmp_path / "bench.json"
    # No server and no load: wrk is not needed.
    done = run_bench(
        "--only",
        "export",
        "--store-events",
        "3000",
        "--json",
        str(path),
        env={"PATH": os.path.dirname(sys.executable)},
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(path.read_text())
    assert set(ISSUE_KEYS) <= set(report)  # every key kept, the load's left at zero
    assert report["only"] == "export"
    assert report["export_events"] == report["store_events"] == 3000
    assert report["export_events_per_s"] > 0
    assert 0 < report["export_rss_mb"] < 1000
    assert report["export_files"] >= 1
    assert "export_events_per_s" in done.stdout
    assert "single_rps" not in done.stdout


def test_floor_rows_are_the_batch_events_as_the_processor_maps_them(tmp_path):
    now = utcnow()
    batch = write_bodies(tmp_path / "batch.txt", 10, 100, now, seed=2)
    rows = floor_rows(batch, 2_500, 7, now)

    assert len(rows) == 2_500
    # Repeated events get fresh ids: the idempotency key never repeats.
    assert len({row["event_id"] for row in rows}) == 2_500
    assert all(re.fullmatch("[0-9a-f]{32}", row["event_id"]) for row in rows)
    first = msgspec.json.decode(batch.path.read_bytes().splitlines()[0])["batch"][0]
    assert rows[0] == check_event(first, rows[0]["event_id"], now, Limits(), None, 7).row()
    assert rows[1_000]["session_id"] == rows[0]["session_id"]
    assert {row["application_id"] for row in rows} == {7}


def migrated_store(path) -> str:
    url = f"sqlite:///{path}"
    engine = create_engine(Settings(database_url=url, _env_file=None))
    migrate(engine)
    engine.dispose()
    return url


def test_the_sqlite_floor_stores_every_row_into_the_store_as_it_reads_them(tmp_path):
    now = utcnow()
    rows = floor_rows(write_bodies(tmp_path / "batch.txt", 5, 100, now, seed=2), 1_200, 1, now)
    url = migrated_store(tmp_path / "store.db")

    floor = sqlite_floor(tmp_path / "store.db", rows)

    assert floor.events == 1_200 and floor.cpu_s > 0 and floor.server_cpu_s is None
    assert "synchronous=NORMAL" in floor.method and "WAL" in floor.method
    assert "store's events" in floor.method
    conn = sqlite3.connect(tmp_path / "store.db")
    assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()
    engine = create_engine(Settings(database_url=url, _env_file=None))
    with engine.connect() as conn:
        stored = conn.execute(sa.select(events).order_by(events.c.id)).mappings().all()
    engine.dispose()
    assert len(stored) == 1_200
    assert {k: v for k, v in stored[5].items() if k != "id"} == rows[5]


def test_measure_floor_gives_its_rounds_least_first_each_with_ids_of_its_own(tmp_path):
    now = utcnow()
    rows = floor_rows(write_bodies(tmp_path / "batch.txt", 2, 100, now, seed=2), 500, 1, now)
    url = migrated_store(tmp_path / "store.db")

    floors = measure_floor(url, rows, rounds=3)

    assert len(floors) == 3
    assert [f.cpu_s for f in floors] == sorted(f.cpu_s for f in floors)
    # Each round inserts into the store as the rounds before it left it.
    before = {re.search(r"about ([\d,]+) rows", f.method).group(1) for f in floors}
    assert before == {"0", "500", "1,000"}
    engine = create_engine(Settings(database_url=url, _env_file=None))
    with engine.connect() as conn:
        ids = conn.execute(sa.select(events.c.event_id)).scalars().all()
    engine.dispose()
    assert len(ids) == len(set(ids)) == 1_500


@pytest.mark.skipif(not PG_URL, reason="THE_EYE_TEST_DATABASE_URL is not set")
def test_the_postgresql_floor_copies_the_rows_and_leaves_the_store_as_it_was(
    tmp_path, empty_store_url
):
    url = empty_store_url("postgresql")
    now = utcnow()
    rows = floor_rows(write_bodies(tmp_path / "batch.txt", 5, 100, now, seed=2), 25_000, 1, now)

    [floor] = measure_floor(url, rows, rounds=1)

    assert floor.events == 25_000 and floor.cpu_s > 0
    assert "rolled back" in floor.method and "store's events" in floor.method
    if is_local(url):  # the backend is read too, and is most of the work
        assert floor.server_cpu_s is not None and 0 < floor.server_cpu_s <= floor.cpu_s
    engine = create_engine(Settings(database_url=url, _env_file=None))
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(events)) == 0
    engine.dispose()


@pytest.mark.skipif(not PG_URL or not is_local(PG_URL), reason="needs a local PostgreSQL")
def test_postgresql_processes_leave_out_other_databases_backends(empty_store_url):
    import psycopg

    url = sa.make_url(empty_store_url("postgresql"))
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(False)) as conn:
        row = conn.execute("SELECT pg_backend_pid()").fetchone()
        assert row is not None
        ours = {p.pid for p, _ in postgresql_processes(url.database or "")}
        others = {p.pid for p, _ in postgresql_processes("some_other_database")}
    assert row[0] in ours and row[0] not in others
    # The server's own processes (the postmaster, its writers) count for every database.
    assert ours & others


def test_cpu_spent_sums_roles_and_counts_processes_that_came_or_went():
    before = [
        ProcessCpu(1, "api", 1.0, 0.0),
        ProcessCpu(2, "processor", 2.0, 0.5),
        ProcessCpu(3, "processor", 4.0, 0.0),  # exits: its parent's reaped time has it all
        ProcessCpu(9, "postgres", 3.0, None),  # exits, not reaped by anyone read
    ]
    after = [
        ProcessCpu(1, "api", 1.5, 0.0),
        ProcessCpu(2, "processor", 2.5, 0.5 + 4.0 + 0.25),
        ProcessCpu(4, "processor", 0.75, 0.0),  # started in between
    ]
    assert cpu_spent(before, after) == {"api": 0.5, "processor": 0.5 + 0.25 + 0.75}


def test_a_role_is_charged_for_the_children_it_waited_for(tmp_path):
    go = tmp_path / "go"
    burn = "import time\nwhile time.process_time() < 0.3: pass"
    script = (
        "import os, subprocess, sys, time\n"
        "print('ready', flush=True)\n"
        f"while not os.path.exists({str(go)!r}): time.sleep(0.01)\n"
        f"subprocess.run([sys.executable, '-c', {burn!r}])\n"
        "print('done', flush=True)\n"
        "time.sleep(60)\n"
    )
    parent = EyeProcess("cpu parent", [sys.executable, "-c", script], dict(os.environ))
    meter = CpuMeter([(parent, ("parent", "child"))])
    parent.start()
    try:
        parent.wait_log("ready")
        before = meter.read()
        go.touch()
        parent.wait_log("done")
        spent = meter.spent_since(before)
    finally:
        parent.stop()
    # The child ran and exited between the readings: its CPU is in the parent's role
    # (whose accounting counts in clock ticks, so a little less than the child's own clock).
    assert set(spent) == {"parent"}
    assert spent["parent"] >= 0.25


def test_servers_on_another_machine_are_said_not_measured():
    meter = service_meter(
        [], "postgresql://eye@db.example.com/the_eye", "redis://cache.example.com:6379/0"
    )
    assert meter.postgres_database is None and not meter.redis
    assert set(meter.services) == {"postgres", "redis"}
    assert all("not on this machine" in how for how in meter.services.values())
    assert service_meter([], "sqlite:///eye.db", "db").services == {}


@pytest.mark.parametrize(
    ("profile", "batch", "e2e", "met"),
    [
        ("embedded", 160_000, 31_000, True),
        ("embedded", 140_000, 29_000, False),
        ("production", 160_000, 45_000, False),
        ("production", 210_000, 52_000, True),
    ],
)
def test_each_profile_is_held_to_its_own_throughput_targets(profile, batch, e2e, met):
    """Embedded: batches accepted at 150,000 events/s and 30,000 end to end; production
    (PostgreSQL, Redis, workers): 200,000 and 50,000."""
    report = Report(batch_events_per_s=batch, e2e_events_per_s=e2e, limit_rps=100.0)
    report.details = {"profile": profile}
    rows = {name: ok for name, _, _, ok, _ in report._load_rows()}
    assert rows["batch_events_per_s"] is met
    assert rows["e2e_events_per_s"] is met


def test_single_events_are_held_to_half_the_empty_apps_rate():
    report = Report(limit_rps=10_000.0, single_rps=5_000.0)
    report.details = {"profile": "embedded"}
    assert {name: ok for name, _, _, ok, _ in report._load_rows()}["single_rps"] is True
    report.single_rps = 4_900.0
    assert {name: ok for name, _, _, ok, _ in report._load_rows()}["single_rps"] is False
