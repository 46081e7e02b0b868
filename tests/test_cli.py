"""The command line and `the-eye serve` as a real process, including a SIGKILL after a 202."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import (
    PATH_SCHEMA,
    client_as,
    count_rows,
    make_event,
    seed_pageviews,
    write_schema_file,
)
from tests.processes import ServeProcess, wait_until
from the_eye.store.tables import applications, errors, events
from the_eye.store.writes import store_events
from the_eye.timestamps import utcnow

pytestmark = pytest.mark.slow


def run_the_eye(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """`the-eye ARGS` run to its end in the test's environment, its output captured."""
    return subprocess.run(
        [sys.executable, "-m", "the_eye", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def the_eye(env: dict[str, str], *args: str) -> str:
    """What `the-eye ARGS` prints; it must succeed."""
    result = run_the_eye(env, *args)
    result.check_returncode()
    return result.stdout.strip()


@pytest.fixture
def schemas_dir(tmp_path) -> Path:
    return tmp_path / "schemas"


def test_apps_create_prints_a_working_write_key(process_env, server):
    key = the_eye(process_env, "apps", "create", "cli-app")
    assert key.startswith("eye_wk_")
    with client_as(server, key) as client:
        assert client.post("/events/", json=make_event()).status_code == 202


def test_apps_create_refuses_a_name_that_exists(process_env):
    the_eye(process_env, "apps", "create", "cli-app")
    duplicate = run_the_eye(process_env, "apps", "create", "cli-app")
    assert duplicate.returncode != 0 and "exists already" in duplicate.stderr


def test_tokens_create_prints_a_read_token_that_cannot_administer(process_env, server):
    token = the_eye(process_env, "tokens", "create", "cli-reader", "--scope", "read")
    assert token.startswith("eye_tk_")
    with client_as(server, token) as client:
        assert client.get("/events/").status_code == 200
        # The command line's tokens are what the read scope says: no administration.
        assert client.get("/applications/").status_code == 403


def test_apps_create_strict_makes_a_strict_application(process_env, engine):
    the_eye(process_env, "apps", "create", "strict-app", "--strict")
    with engine.connect() as conn:
        strict = conn.execute(sa.select(applications.c.strict)).scalar_one()
    assert strict is True


def test_schemas_load_makes_a_version_only_for_a_changed_file(process_env, schemas_dir):
    write_schema_file(
        schemas_dir / "page interaction" / "pageview.json", {"type": "object", "required": ["path"]}
    )
    assert "1 new version(s)" in the_eye(process_env, "schemas", "load", str(schemas_dir))
    assert "0 new version(s), 1 unchanged" in the_eye(
        process_env, "schemas", "load", str(schemas_dir)
    )


def test_errors_replay_stores_what_a_new_schema_version_accepts_with_a_progress_bar(
    process_env, schemas_dir, sender, processor, engine
):
    pageview = schemas_dir / "page interaction" / "pageview.json"
    write_schema_file(pageview, {"type": "object", "required": ["path"]})
    the_eye(process_env, "schemas", "load", str(schemas_dir))
    processor.checker.refresh(force=True)
    batch = [make_event(event_id=f"e-{i}", data={"host": "h"}) for i in range(1200)]
    batch += [make_event("other", event_id=f"o-{i}", data={"host": "h"}) for i in range(5)]
    assert sender.post("/events/", json=batch).status_code == 202
    processor.drain()
    assert count_rows(engine, errors, errors.c.reason == "schema_violation") == 1205

    write_schema_file(pageview, {"type": "object"})
    the_eye(process_env, "schemas", "load", str(schemas_dir))
    replay = ("errors", "replay", "--reason", "schema_violation", "--session", "s-1")
    out = the_eye({**process_env, "COLUMNS": "100"}, *replay)
    assert "replayed: 1200, still failing: 0, skipped: 0" in out
    assert "1200/1200" in out  # the progress bar's last state
    assert count_rows(engine, events) == 1200
    assert count_rows(engine, errors, ~errors.c.replayed, errors.c.session_id == "other") == 5


def test_schemas_dry_run_prints_the_counts_and_exits_1_when_some_would_fail(
    process_env, tmp_path, sender, processor, engine
):
    ids = seed_pageviews(sender, processor, engine)
    candidate = tmp_path / "pageview.json"
    write_schema_file(candidate, PATH_SCHEMA)
    failing = run_the_eye(
        process_env, "schemas", "dry-run", "page interaction", "pageview", str(candidate)
    )
    assert failing.returncode == 1, failing.stderr
    assert "events: 10 checked, 6 would pass, 4 would fail" in failing.stdout
    assert "errors: 7 checked, 4 would pass, 3 would fail" in failing.stdout
    assert f"event {ids['bad-path']}: schema_violation at $.data.path:" in failing.stdout
    assert f"error {ids['err-future']}: future_timestamp at $.timestamp:" in failing.stdout

    write_schema_file(candidate, {"required": ["x"]})
    clicks = ("schemas", "dry-run", "page interaction", "cta click", str(candidate), "--limit", "1")
    passing = run_the_eye(process_env, *clicks)
    assert passing.returncode == 0, passing.stderr
    assert "events: 1 checked, 1 would pass, 0 would fail" in passing.stdout
    assert "errors: 0 checked, 0 would pass, 0 would fail" in passing.stdout

    write_schema_file(candidate, {"type": "objekt"})
    unusable = run_the_eye(
        process_env, "schemas", "dry-run", "page interaction", "pageview", str(candidate)
    )
    assert unusable.returncode == 2
    assert "invalid schema" in unusable.stderr and "objekt" in unusable.stderr


def test_purge_removes_only_what_is_older_than_the_retention(
    process_env, sender, processor, engine, creds
):
    recent = (utcnow() - timedelta(hours=1)).isoformat()
    batch = [make_event(event_id=f"e-{i}", timestamp=recent) for i in range(12)]
    batch += [make_event(event_id=f"bad-{i}", data={}) for i in range(3)]
    assert sender.post("/events/", json=batch).status_code == 202
    processor.drain()
    old = utcnow() - timedelta(days=40)
    with engine.begin() as conn:
        store_events(
            conn,
            [
                {
                    "application_id": creds.application_id,
                    "event_id": f"old-{i}",
                    "session_id": "old",
                    "category": "c",
                    "name": "n",
                    "data": {"i": i},
                    "timestamp": old,
                    "received_at": old,
                }
                for i in range(5)
            ],
        )
    with pytest.raises(subprocess.CalledProcessError):
        the_eye(process_env, "purge")  # neither --days nor THE_EYE_RETENTION_DAYS
    out = the_eye({**process_env, "THE_EYE_RETENTION_DAYS": "30"}, "purge")
    assert "5 events, 0 errors, 1 sessions" in out
    assert count_rows(engine, events) == 12
    assert count_rows(engine, errors) == 3


def test_sigkill_right_after_202_loses_nothing(process_env):
    """Kill serve and its processor the moment a batch is accepted; restart; all are stored."""
    serve = ServeProcess(process_env).start()
    credentials = serve.read_first_start()
    assert set(credentials) == {"write_key", "admin_token"}
    batch = [make_event(session=f"k-{i % 10}", event_id=f"kill-{i}") for i in range(2000)]
    with client_as(serve.url, credentials["write_key"]) as client:
        response = client.post("/events/", json=batch)
    serve.kill()
    assert response.status_code == 202

    restarted = ServeProcess(process_env, port=serve.port).start()
    try:
        # Not the first start any more: nothing new is printed or created.
        with client_as(restarted.url, credentials["admin_token"]) as client:

            def stored() -> int | None:
                total = sum(
                    client.get(f"/sessions/k-{s}/").json().get("event_count", 0) for s in range(10)
                )
                return total if total == 2000 else None

            assert wait_until(stored, timeout=60) == 2000
            events = client.get("/events/", params={"session": "k-3", "limit": 1000}).json()
            assert len(events["results"]) == 200
            assert len(client.get("/applications/").json()["results"]) == 1
    finally:
        restarted.stop()


def test_serve_loads_the_schemas_directory_at_start(process_env, schemas_dir):
    submit = schemas_dir / "form interaction" / "submit.json"
    write_schema_file(submit, {"required": ["form"]})
    env = {**process_env, "THE_EYE_SCHEMAS_DIR": str(schemas_dir)}
    serve = ServeProcess(env).start()
    try:
        token = serve.read_first_start()["admin_token"]
        with client_as(serve.url, token) as c:
            (schema,) = c.get("/schemas/").json()["results"]
        assert (schema["category"], schema["name"], schema["version"]) == (
            "form interaction",
            "submit",
            1,
        )
        assert schema["source"] == "file:form interaction/submit.json"
    finally:
        serve.stop()
    submit.write_text("{broken")
    broken = run_the_eye(env, "serve", "--port", "1")
    assert broken.returncode != 0 and "submit.json: not JSON" in broken.stderr


def test_tokens_are_listed_and_revoked_on_the_command_line(process_env):
    token = the_eye(process_env, "tokens", "create", "cli-reader", "--scope", "read")
    the_eye(process_env, "tokens", "create", "cli-admin", "--scope", "admin")
    listed = [line.split("\t") for line in the_eye(process_env, "tokens", "list").splitlines()]
    assert [(row[1], row[2], row[4]) for row in listed] == [
        ("read", "active", "cli-reader"),
        ("admin", "active", "cli-admin"),
    ]
    assert token not in the_eye(process_env, "tokens", "list")
    assert (
        the_eye(process_env, "tokens", "revoke", listed[0][0])
        == f"API token {listed[0][0]} revoked"
    )
    assert the_eye(process_env, "tokens", "list").splitlines()[0].split("\t")[2] == "revoked"
    serve = ServeProcess(process_env).start()
    try:
        with client_as(serve.url, token) as revoked:
            assert revoked.get("/events/").status_code == 401
    finally:
        serve.stop()
    missing = run_the_eye(process_env, "tokens", "revoke", "999")
    assert missing.returncode != 0 and "no API token with id 999" in missing.stderr


def listed_apps(env: dict[str, str]) -> list[list[str]]:
    """`apps list`'s rows: id, state, mode, created, name."""
    return [line.split("\t") for line in the_eye(env, "apps", "list").splitlines()]


def test_apps_list_shows_state_and_mode_but_no_write_key(process_env):
    key = the_eye(process_env, "apps", "create", "web")
    the_eye(process_env, "apps", "create", "shop", "--strict")
    the_eye(process_env, "apps", "revoke", "web")
    rows = listed_apps(process_env)
    assert [(row[1], row[2], row[4]) for row in rows] == [
        ("revoked", "lenient", "web"),
        ("active", "strict", "shop"),
    ]
    assert key not in the_eye(process_env, "apps", "list")


def test_apps_rotate_key_by_name_refuses_the_old_key(process_env, server):
    old_key = the_eye(process_env, "apps", "create", "web")
    new_key = the_eye(process_env, "apps", "rotate-key", "web")
    assert new_key.startswith("eye_wk_") and new_key != old_key
    with client_as(server, old_key) as old, client_as(server, new_key) as new:
        assert new.post("/events/", json=make_event()).status_code == 202
        # The server caches keys for 0.5 s.
        wait_until(lambda: old.post("/events/", json=make_event()).status_code == 401, timeout=5)


def test_apps_revoke_by_id_refuses_the_key_until_a_rotation(process_env, server):
    key = the_eye(process_env, "apps", "create", "web")
    (app_id,) = [row[0] for row in listed_apps(process_env)]
    assert (
        the_eye(process_env, "apps", "revoke", app_id) == f"application 'web' (id {app_id}) revoked"
    )
    with client_as(server, key) as revoked:
        assert revoked.post("/events/", json=make_event()).status_code == 401
    new_key = the_eye(process_env, "apps", "rotate-key", app_id)
    assert listed_apps(process_env)[0][1] == "active"
    with client_as(server, new_key) as restored:
        assert restored.post("/events/", json=make_event()).status_code == 202


def test_apps_strict_switches_the_mode_by_name_or_id(process_env, engine):
    the_eye(process_env, "apps", "create", "web")
    (app_id,) = [row[0] for row in listed_apps(process_env)]

    def strict() -> bool:
        with engine.connect() as conn:
            return bool(conn.execute(sa.select(applications.c.strict)).scalar_one())

    assert the_eye(process_env, "apps", "strict", "web", "on") == (
        f"application 'web' (id {app_id}) is strict"
    )
    assert strict()
    the_eye(process_env, "apps", "strict", app_id, "off")
    assert not strict()
    assert listed_apps(process_env)[0][2] == "lenient"
    wrong = run_the_eye(process_env, "apps", "strict", "web", "maybe")
    assert wrong.returncode != 0 and "'on', 'off'" in wrong.stderr


def test_an_application_named_like_an_id_is_found_by_its_name(process_env):
    the_eye(process_env, "apps", "create", "first")
    the_eye(process_env, "apps", "create", "1")
    the_eye(process_env, "apps", "revoke", "1")
    assert [(row[1], row[4]) for row in listed_apps(process_env)] == [
        ("active", "first"),
        ("revoked", "1"),
    ]


@pytest.mark.parametrize(
    "command",
    [("rotate-key", "nobody"), ("revoke", "42"), ("strict", "9" * 30, "on")],
    ids=["rotate-key", "revoke", "strict"],
)
def test_apps_commands_name_an_unknown_application(process_env, command):
    missing = run_the_eye(process_env, "apps", *command)
    assert missing.returncode != 0
    assert f"No application is named {command[1]!r} or has that id." in missing.stderr
    assert "Traceback" not in missing.stderr
