"""The command line and `the-eye serve` as a real process, including a SIGKILL after a 202."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.conftest import make_event
from tests.processes import ServeProcess, the_eye_env, wait_until

pytestmark = pytest.mark.slow


def the_eye(env: dict[str, str], *args: str) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "the_eye", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        check=True,
    )
    return result.stdout.strip()


@pytest.fixture
def env(settings) -> dict[str, str]:
    # A batch the killed processor held is taken over after the claim time.
    return the_eye_env(settings, redis_claim_idle=2, inbox_claim_idle=2)


def test_apps_and_tokens_created_on_the_command_line_work(env):
    key = the_eye(env, "apps", "create", "cli-app")
    token = the_eye(env, "tokens", "create", "cli-reader", "--scope", "read")
    assert key.startswith("eye_wk_") and token.startswith("eye_tk_")
    serve = ServeProcess(env).start()
    try:
        with httpx.Client(base_url=serve.url) as client:
            sent = client.post(
                "/events/", json=make_event(), headers={"Authorization": f"Bearer {key}"}
            )
            assert sent.status_code == 202
            read = client.get("/events/", headers={"Authorization": f"Bearer {token}"})
            assert read.status_code == 200
            # The command line's tokens are what the read scope says: no administration.
            admin = client.get("/applications/", headers={"Authorization": f"Bearer {token}"})
            assert admin.status_code == 403
    finally:
        serve.stop()
    duplicate = subprocess.run(
        [sys.executable, "-m", "the_eye", "apps", "create", "cli-app"],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
    )
    assert duplicate.returncode != 0 and "exists already" in duplicate.stderr


def test_sigkill_right_after_202_loses_nothing(env):
    """Kill serve and its processor the moment a batch is accepted; restart; all are stored."""
    serve = ServeProcess(env).start()
    credentials = serve.read_first_start()
    assert set(credentials) == {"write_key", "admin_token"}
    batch = [make_event(session=f"k-{i % 10}", event_id=f"kill-{i}") for i in range(2000)]
    with httpx.Client(base_url=serve.url, timeout=30) as client:
        response = client.post(
            "/events/", json=batch, headers={"Authorization": f"Bearer {credentials['write_key']}"}
        )
    serve.kill()
    assert response.status_code == 202

    restarted = ServeProcess(env, port=serve.port).start()
    try:
        # Not the first start any more: nothing new is printed or created.
        headers = {"Authorization": f"Bearer {credentials['admin_token']}"}
        with httpx.Client(base_url=restarted.url, headers=headers) as client:

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


def test_strict_apps_schema_files_replay_and_purge_on_the_command_line(
    env, engine, tmp_path, settings
):
    """`apps create --strict`, `schemas load`, `errors replay` with its progress bar, `purge`."""
    import json
    from datetime import datetime, timedelta

    import sqlalchemy as sa

    from the_eye.processor.worker import Processor
    from the_eye.store.tables import applications, errors, events
    from the_eye.store.writes import store_events

    the_eye(env, "apps", "create", "strict-app", "--strict")
    with engine.connect() as conn:
        strict = conn.execute(sa.select(applications.c.strict)).scalar_one()
    assert strict is True

    root = tmp_path / "schemas"
    (root / "page interaction").mkdir(parents=True)
    schema_file = root / "page interaction" / "pageview.json"
    schema_file.write_text(json.dumps({"type": "object", "required": ["path"]}))
    assert "1 new version(s)" in the_eye(env, "schemas", "load", str(root))
    assert "0 new version(s), 1 unchanged" in the_eye(env, "schemas", "load", str(root))

    key = the_eye(env, "apps", "create", "web")
    serve = ServeProcess(env, "--no-processor").start()
    try:
        with httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {key}"}) as c:
            recent = (datetime.utcnow() - timedelta(hours=1)).isoformat()
            batch = [
                make_event(event_id=f"e-{i}", data={"host": "h"}, timestamp=recent)
                for i in range(1200)
            ]
            assert c.post("/events/", json=batch).status_code == 202
    finally:
        serve.stop()
    processor = Processor.from_settings(settings)
    processor.drain()
    processor.close()

    schema_file.write_text(json.dumps({"type": "object"}))
    the_eye(env, "schemas", "load", str(root))
    result = subprocess.run(
        [sys.executable, "-m", "the_eye", "errors", "replay", "--reason", "schema_violation"],
        env={**os.environ, **env, "COLUMNS": "100"},
        capture_output=True,
        text=True,
        check=True,
    )
    assert "replayed: 1200, still failing: 0, skipped: 0" in result.stdout
    assert "1200/1200" in result.stdout  # the progress bar's last state
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 1200

    old = datetime.utcnow() - timedelta(days=40)
    with engine.begin() as conn:
        store_events(
            conn,
            [
                {
                    "application_id": 2,
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
        the_eye(env, "purge")  # neither --days nor THE_EYE_RETENTION_DAYS
    out = the_eye({**env, "THE_EYE_RETENTION_DAYS": "30"}, "purge")
    assert "5 events, 0 errors, 1 sessions" in out
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(events)).scalar_one() == 1200
        assert conn.execute(sa.select(sa.func.count()).select_from(errors)).scalar_one() == 1200


def test_serve_loads_the_schemas_directory_at_start(env, tmp_path):
    import json

    root = tmp_path / "schemas"
    (root / "form interaction").mkdir(parents=True)
    (root / "form interaction" / "submit.json").write_text(json.dumps({"required": ["form"]}))
    serve = ServeProcess({**env, "THE_EYE_SCHEMAS_DIR": str(root)}).start()
    try:
        token = serve.read_first_start()["admin_token"]
        with httpx.Client(base_url=serve.url, headers={"Authorization": f"Bearer {token}"}) as c:
            (schema,) = c.get("/schemas/").json()["results"]
        assert (schema["category"], schema["name"], schema["version"]) == (
            "form interaction",
            "submit",
            1,
        )
        assert schema["source"] == "file:form interaction/submit.json"
    finally:
        serve.stop()
    (root / "form interaction" / "submit.json").write_text("{broken")
    broken = subprocess.run(
        [sys.executable, "-m", "the_eye", "serve", "--port", "1"],
        env={**os.environ, **env, "THE_EYE_SCHEMAS_DIR": str(root)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert broken.returncode != 0 and "submit.json: not JSON" in broken.stderr
