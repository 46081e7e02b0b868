"""`the-eye bench`: a quick run reports every number, and its events are valid ones."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import msgspec
import pytest

from the_eye.processor.checks import Limits, ValidEvent, check_event
from the_eye.timestamps import utcnow
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
