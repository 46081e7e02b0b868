"""A processor that dies is restarted by `serve`, and one that is down or stuck shows on
`/ready/` and `/metrics` through its heartbeat."""

from __future__ import annotations

import os
import re
import signal

import httpx
import psutil
import pytest

from tests.helpers import LiveServer, fetch_all, make_event
from tests.processes import ServeProcess, the_eye_env, wait_until
from the_eye.processor.worker import Processor


def test_ready_says_the_processor_is_down_while_work_waits(settings, creds):
    settings = settings.model_copy(update={"heartbeat_seconds": 0.2})
    headers = {"Authorization": f"Bearer {creds.write_key}"}
    with LiveServer(settings) as server, httpx.Client(base_url=server.url) as client:
        idle = client.get("/ready/")
        assert idle.status_code == 200 and idle.json()["processors"] == 0
        assert client.post("/events/", json=make_event(), headers=headers).status_code == 202
        down = client.get("/ready/")
        assert down.status_code == 503
        assert down.json()["error"]["code"] == "processor_down"
        assert "the_eye_processors_alive 0" in client.get("/metrics").text

        processor = Processor.from_settings(settings)
        try:
            processor.beat()  # alive, not yet through the queue
            up = client.get("/ready/")
            assert up.status_code == 200 and up.json()["processors"] == 1
            metrics = client.get("/metrics").text
            assert "the_eye_processors_alive 1" in metrics
            assert "the_eye_processor_last_heartbeat_seconds " in metrics
            # Silent for three intervals (dead, or stuck in a batch): down again.
            wait_until(lambda: client.get("/ready/").status_code == 503, timeout=10)
        finally:
            processor.close()


@pytest.mark.slow
def test_serve_restarts_a_processor_killed_with_sigkill(settings):
    env = the_eye_env(settings, heartbeat_seconds=0.5, inbox_claim_idle=2, redis_claim_idle=2)
    serve = ServeProcess(env).start()
    try:
        credentials = serve.read_first_start()
        (first,) = wait_until(lambda: re.findall(r"processor started \(pid (\d+)", serve.log()))
        # Beside the API, a processor yields the CPU to it.
        api_nice = psutil.Process(serve.pid).nice()
        assert psutil.Process(int(first)).nice() == api_nice + settings.serve_processor_nice
        os.kill(int(first), signal.SIGKILL)
        wait_until(lambda: "processor restarted" in serve.log(), timeout=30)
        (restarted,) = re.findall(r"processor restarted \(pid (\d+)", serve.log())
        assert restarted != first
        sent = {"Authorization": f"Bearer {credentials['write_key']}"}
        read = {"Authorization": f"Bearer {credentials['admin_token']}"}
        with httpx.Client(base_url=serve.url, timeout=30) as client:
            batch = [make_event(event_id=f"after-kill-{i}") for i in range(50)]
            assert client.post("/events/", json=batch, headers=sent).status_code == 202
            client.headers.update(read)
            wait_until(lambda: len(fetch_all(client, "/events/")) == 50, timeout=60)
            wait_until(lambda: client.get("/ready/").json().get("processors") == 1, timeout=10)
        assert f"processor (pid {first}) exited with code -9" in serve.log()
    finally:
        serve.stop()


@pytest.mark.slow
def test_serve_without_processors_is_not_ready_once_work_waits(settings):
    serve = ServeProcess(the_eye_env(settings), "--processors", "0").start()
    try:
        key = serve.read_first_start()["write_key"]
        with httpx.Client(base_url=serve.url, timeout=30) as client:
            assert client.get("/ready/").status_code == 200
            headers = {"Authorization": f"Bearer {key}"}
            assert client.post("/events/", json=make_event(), headers=headers).status_code == 202
            answer = client.get("/ready/")
        assert answer.status_code == 503
        assert answer.json()["error"]["code"] == "processor_down"
    finally:
        serve.stop()
