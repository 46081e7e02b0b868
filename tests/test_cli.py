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
    # On Redis, a batch the killed processor held is taken over after the claim time.
    return the_eye_env(settings, redis_claim_idle=2)


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
